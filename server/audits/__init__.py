"""The computing lead's termly audit, the half-termly photo check and random GDPR spot checks."""
