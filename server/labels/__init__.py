"""Printable QR asset labels for devices, trolleys, safes and other places (P-REG-3)."""
