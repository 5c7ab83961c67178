"""Loans: teachers scan devices out of and back into trolleys; photos are wiped on return."""
