"""Benchmarks: each measures Trolley against a baseline in the same run and prints the ratio."""
