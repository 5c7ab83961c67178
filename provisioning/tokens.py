"""Enrolment tokens: one-time secrets a technician hands to a device, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from provisioning.errors import ProvisioningError
from provisioning.keys import decode_public_key, encode_public_key, new_device_key

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "TOKEN_BYTES",
    "decode_public_key",
    "encode_public_key",
    "hash_token",
    "new_device_key",
    "new_token",
    "token_expires_at",
    "token_is_expired",
    "token_matches",
]

DEFAULT_TOKEN_LIFETIME = timedelta(hours=24)
# 32 random bytes = 256 bits, well above the 128 needed to make guessing hopeless.
TOKEN_BYTES = 32
_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def new_token() -> str:
    """A fresh enrolment token: 256 random bits as URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: what the database keeps instead of the token itself."""
    # A plain hash is enough here: the token is random and long, so there is nothing to
    # brute-force (unlike a password, which needs a slow hash).
    # surrogatepass: a lone surrogate from a JSON body must give "no match", not a crash.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether `token` hashes to `stored_hash`, compared in constant time."""
    if not _HASH_PATTERN.fullmatch(stored_hash):
        # A corrupt stored hash can never match; refusing it early leaks nothing secret.
        return False
    return hmac.compare_digest(hash_token(token).encode("ascii"), stored_hash.encode("ascii"))


def token_expires_at(issued_at: datetime, lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> datetime:
    """When a token issued at `issued_at` stops working."""
    if issued_at.tzinfo is None:
        raise ProvisioningError("token times must be timezone-aware")
    if lifetime <= timedelta(0):
        raise ProvisioningError("a token lifetime must be positive")
    return issued_at + lifetime


def token_is_expired(expires_at: datetime, now: datetime) -> bool:
    """Whether a token with this expiry is no longer usable at `now`."""
    if expires_at.tzinfo is None or now.tzinfo is None:
        raise ProvisioningError("token times must be timezone-aware")
    return now >= expires_at
