"""Authenticated encryption of secrets at rest, with key rotation (newest key first)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretUnreadable(Exception):
    """A stored secret was tampered with or was sealed under a key we no longer hold."""


class SecretBox:
    """Seals and opens short secrets (PINs, TOTP seeds) with Fernet (AES-CBC + HMAC)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("at least one data key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            # Never return garbage: a failed MAC means tampering or a missing key.
            raise SecretUnreadable("the stored secret failed its integrity check") from exc

    def rotate(self, token: str) -> str:
        """Re-seal under the newest key, so old keys can be retired."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("the stored secret failed its integrity check") from exc


def new_data_key() -> str:
    return Fernet.generate_key().decode()
