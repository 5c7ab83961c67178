"""Sealing a backup: a file key, reached by the school's passphrase (scrypt) or its private key
(age), encrypts the archive with AES-256-GCM in numbered chunks.

The layout follows the STREAM construction (as age and Tink do): a random file key encrypts
1 MiB chunks, each nonce carries the chunk's number and whether it is the last, and the header
(which names the KDF and its parameters) is authenticated with every chunk. So a wrong
passphrase or key, a changed header, a chunk moved or removed, and a file cut short are all refused.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from server.backups.services.keypairs import Identities, Recipients, is_recipient, short
from server.errors import ValidationFailed

MAGIC = b"trolley-backup/1\n"
CHUNK = 1 << 20
TAG = 16
# 128 MiB of memory and about half a second per try on a small server.
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
# Parameters read from a header are bounded, so a forged one cannot exhaust the machine.
SCRYPT_LIMITS = {"n": 2**20, "r": 32, "p": 16}
MIN_PASSPHRASE = 12
_HEADER_LIMIT = 64 * 1024
_KEY_WRAP_NONCE = bytes(12)  # one use per salt: the wrapping key is never used twice
_KEY_WRAP_AAD = b"trolley-backup file key"
_MAX_RECIPIENTS = 20

# What seals a backup, and what opens it: a passphrase, or public keys and their private keys.
Lock = str | Recipients
Opener = str | Identities


@dataclass(frozen=True)
class Header:
    """What a backup says about itself before it is opened (nothing secret)."""

    about: dict[str, Any]
    kdf: dict[str, Any] | None  # sealed with a passphrase
    recipients: tuple[str, ...]  # or to these public keys
    wrapped_key: bytes
    nonce_prefix: bytes
    raw: bytes


def check_passphrase(passphrase: str) -> None:
    """A passphrase strong enough to stand for every key the school has."""
    if len(passphrase.strip()) < MIN_PASSPHRASE:
        raise ValidationFailed(
            f"The backup passphrase must be at least {MIN_PASSPHRASE} characters; "
            "four or five random words are easy to keep and hard to guess."
        )


def seal(plain: BinaryIO, out: BinaryIO, lock: Lock, about: Mapping[str, Any]) -> None:
    """Encrypt everything `plain` holds into `out` under a passphrase or to public keys."""
    file_key, prefix = AESGCM.generate_key(256), os.urandom(7)
    header: dict[str, Any] = {
        "about": dict(about),
        "cipher": "AES-256-GCM",
        "chunk": CHUNK,
        "nonce_prefix": _b64(prefix),
    }
    if isinstance(lock, Recipients):
        header["recipients"] = list(lock.keys)
        header["file_key"] = _b64(lock.wrap(file_key))
    else:
        check_passphrase(lock)
        salt = os.urandom(16)
        wrapping = _derive(lock, salt, **SCRYPT)
        header["kdf"] = {"name": "scrypt", "salt": _b64(salt), **SCRYPT}
        header["file_key"] = _b64(
            AESGCM(wrapping).encrypt(_KEY_WRAP_NONCE, file_key, _KEY_WRAP_AAD)
        )
    raw = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
    out.write(raw)
    aead = AESGCM(file_key)
    current, number = _read_full(plain, CHUNK), 0
    while True:
        # One chunk ahead, so the last one is marked and a file cut short is refused.
        following = _read_full(plain, CHUNK)
        last = not following
        out.write(aead.encrypt(_nonce(prefix, number, last), current, raw))
        if last:
            return
        current, number = following, number + 1


def read_header(source: BinaryIO, name: str) -> Header:
    """The header of a backup file; refuses anything that is not one."""
    if source.read(len(MAGIC)) != MAGIC:
        raise ValidationFailed(f"{name} is not a Trolley backup.", code="not_a_backup")
    line = source.readline(_HEADER_LIMIT)
    try:
        header = json.loads(line)
        if header["cipher"] != "AES-256-GCM" or header["chunk"] != CHUNK:
            raise ValueError("unknown cipher")
        if ("kdf" in header) == ("recipients" in header):
            raise ValueError("sealed with neither a passphrase nor public keys, or both")
        kdf = header.get("kdf")
        recipients = tuple(header.get("recipients", ()))
        if kdf is not None:
            _check_kdf(kdf)
        elif not 0 < len(recipients) <= _MAX_RECIPIENTS or not all(
            isinstance(key, str) and is_recipient(key) for key in recipients
        ):
            raise ValueError("unknown recipients")
        parsed = Header(
            about=dict(header["about"]),
            kdf=kdf,
            recipients=recipients,
            wrapped_key=_unb64(header["file_key"]),
            nonce_prefix=_unb64(header["nonce_prefix"]),
            raw=MAGIC + line,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(
            f"{name} is damaged or was made by a newer Trolley: its header cannot be read.",
            code="damaged_backup",
        ) from exc
    return parsed


def _check_kdf(kdf: dict[str, Any]) -> None:
    if kdf["name"] != "scrypt" or any(
        not isinstance(kdf[k], int) or not 0 < kdf[k] <= SCRYPT_LIMITS[k] for k in SCRYPT
    ):
        raise ValueError("unknown key derivation")
    if kdf["n"] < 2 or kdf["n"] & (kdf["n"] - 1):
        raise ValueError("scrypt's cost must be a power of two")


def _unwrap(header: Header, opener: Opener, name: str) -> bytes:
    """The key the chunks are sealed with; a wrong passphrase or key, or the wrong kind, refused."""
    if header.kdf is None:
        if not isinstance(opener, Identities):
            keys = ", ".join(short(k) for k in header.recipients)
            raise ValidationFailed(
                f"{name} is sealed to a key pair ({keys}), not a passphrase: give its private "
                "key with --identity. Nothing was changed.",
                code="needs_identity",
            )
        key = opener.unwrap(header.wrapped_key, header.recipients, name)
        if len(key) != 32:
            raise ValidationFailed(f"{name} is damaged: its key is not one.", code="damaged_backup")
        return key
    if isinstance(opener, Identities):
        raise ValidationFailed(
            f"{name} is sealed with a passphrase, not to a key pair: give the passphrase. "
            "Nothing was changed.",
            code="needs_passphrase",
        )
    kdf = header.kdf
    wrapping = _derive(opener, _unb64(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"])
    try:
        return AESGCM(wrapping).decrypt(_KEY_WRAP_NONCE, header.wrapped_key, _KEY_WRAP_AAD)
    except InvalidTag:
        raise ValidationFailed(
            f"That passphrase does not open {name}. Nothing was changed.",
            code="wrong_passphrase",
        ) from None


def unseal(source: BinaryIO, out: BinaryIO, opener: Opener, name: str) -> Header:
    """Decrypt a backup into `out`; a wrong passphrase or key is refused before writing anything."""
    header = read_header(source, name)
    aead = AESGCM(_unwrap(header, opener, name))
    current, number = _read_full(source, CHUNK + TAG), 0
    while True:
        following = _read_full(source, CHUNK + TAG)
        last = not following
        try:
            out.write(aead.decrypt(_nonce(header.nonce_prefix, number, last), current, header.raw))
        except InvalidTag:
            raise ValidationFailed(
                f"{name} was altered or is incomplete (part {number + 1} fails its check). "
                "Nothing was changed.",
                code="damaged_backup",
            ) from None
        if last:
            return header
        current, number = following, number + 1


def _derive(passphrase: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + struct.pack(">I?", number, last)


def _read_full(source: BinaryIO, size: int) -> bytes:
    """Exactly `size` bytes unless the end comes first (a pipe may return less per read)."""
    parts, wanted = [], size
    while wanted:
        part = source.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
