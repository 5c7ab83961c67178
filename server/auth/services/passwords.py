"""Password hashing and the strength rule."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.errors import ValidationFailed

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verifying against this keeps unknown e-mails as slow as known ones (no user enumeration);
    made on first use, so a process that never checks a password never pays for it."""
    return hasher.hash("not-a-real-password-but-the-same-cost")


def password_matches(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; with no stored hash it costs the same and fails."""
    try:
        return bool(_hasher.verify(stored or _dummy_hash(_hasher), password)) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def check_password_strength(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Passwords need at least {MIN_PASSWORD_LENGTH} characters. "
            "Three random words make a strong one that is easy to remember."
        )
    if password.lower() == email.lower() or password.lower() in {
        "password123",
        "password1234",
        "qwertyuiop",
        "1234567890",
    }:
        raise ValidationFailed("That password is too easy to guess. Please choose another.")


def normalise_email(email: str) -> str:
    return email.strip().lower()
