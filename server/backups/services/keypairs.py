"""Backups sealed to a public key (age, X25519), so the server that writes them cannot open them.

Only the file key is sealed with age; the archive itself keeps the chunked AES-256-GCM of
`sealing`. The key files are age's own (`age-keygen` writes the same), so a school may make its
key pair with either tool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyrage
from pyrage import x25519

from server.errors import ValidationFailed

RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"


@dataclass(frozen=True)
class Recipients:
    """The public keys a backup is sealed to: any one of their private keys opens it."""

    keys: tuple[str, ...]

    def wrap(self, file_key: bytes) -> bytes:
        """The file key sealed to every recipient."""
        return pyrage.encrypt(file_key, [x25519.Recipient.from_str(k) for k in self.keys])


@dataclass(frozen=True)
class Identities:
    """Private keys read from a file, kept apart from the server that writes the backups."""

    source: str
    keys: tuple[x25519.Identity, ...]

    @property
    def public(self) -> tuple[str, ...]:
        return tuple(str(key.to_public()) for key in self.keys)

    def unwrap(self, wrapped: bytes, sealed_to: tuple[str, ...], name: str) -> bytes:
        """The file key, or a refusal that names which key the backup wants."""
        try:
            return pyrage.decrypt(wrapped, list(self.keys))
        except pyrage.DecryptError:
            raise ValidationFailed(
                f"The private key in {self.source} ({short(self.public[0])}) does not open "
                f"{name}, which is sealed to {', '.join(short(k) for k in sealed_to)}. "
                "Nothing was changed.",
                code="wrong_identity",
            ) from None


def short(key: str) -> str:
    """Enough of a public key to tell two apart when reading it aloud."""
    return f"{key[:12]}…{key[-6:]}"


def _key_lines(path: Path, what: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"Cannot read the {what} file {path}: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def is_recipient(text: str) -> bool:
    """An age X25519 public key."""
    try:
        x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        return False
    return text.startswith(RECIPIENT_PREFIX)


def read_recipients(path: Path) -> Recipients:
    """The public keys in a file, one a line (as `age -R` reads them)."""
    keys = _key_lines(path, "public key")
    if any(key.startswith(IDENTITY_PREFIX) for key in keys):
        raise ValidationFailed(
            f"{path} holds a private key. Give the public key (age1…) here, and keep the "
            "private key off this server."
        )
    bad = [key for key in keys if not is_recipient(key)]
    if bad or not keys:
        raise ValidationFailed(
            f"{path} should hold age public keys (age1…), one a line"
            + (f"; this is not one: {bad[0][:20]}" if bad else "; it holds none.")
        )
    return Recipients(tuple(keys))


def read_identities(path: Path) -> Identities:
    """The private keys in a file `trolley backup-keygen` or `age-keygen` wrote."""
    keys = []
    for line in _key_lines(path, "private key"):
        try:
            keys.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ValidationFailed(
                f"{path} should hold an age private key (AGE-SECRET-KEY-1…); it holds "
                "something else."
            ) from None
    if not keys:
        raise ValidationFailed(f"{path} holds no private key.")
    return Identities(str(path), tuple(keys))


def generate(identity_file: Path, recipient_file: Path, now: datetime) -> str:
    """Write a new key pair (the private half readable by its owner only); its public key."""
    for path in (identity_file, recipient_file):
        if path.exists():
            raise ValidationFailed(f"{path} exists already; a key pair is never overwritten.")
        if not path.parent.is_dir():
            raise ValidationFailed(f"There is no folder {path.parent} to write {path.name} in.")
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    fd = os.open(identity_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"# created: {now.isoformat()}\n# public key: {public}\n{identity}\n")
    recipient_file.write_text(f"{public}\n", encoding="utf-8")
    return public
