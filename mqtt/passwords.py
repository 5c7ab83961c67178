"""The broker password file, shared by the embedded broker and Mosquitto.

Format: one `username:hash` line per user (`#` comments and blank lines ignored), where the hash
is Mosquitto 2's `sha512-pbkdf2` form, `$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>`
(standard base64 with padding, 12-byte salt, 64-byte digest). `mosquitto_passwd` writes the same
lines, so the one file the server writes works for both brokers.

PBKDF2 is used rather than argon2 because Mosquitto reads nothing else, and because the secrets
are random 256-bit tokens issued at enrolment: stretching adds nothing to a secret that cannot be
guessed, while each broker login pays for it. The iteration count is therefore modest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mqtt.errors import PasswordFileError

__all__ = [
    "DEFAULT_ITERATIONS",
    "USERNAME_PATTERN",
    "format_password_file",
    "generate_secret",
    "hash_password",
    "parse_password_file",
    "read_password_file",
    "verify_password",
    "write_password_file",
]

logger = logging.getLogger(__name__)

DEFAULT_ITERATIONS = 1000
_SALT_LEN = 12
_DIGEST_LEN = 64
_MAX_ITERATIONS = 10_000_000
# What may appear as a username: device ids plus the server's own names (e.g. `trolley_server`).
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HASH_PATTERN = re.compile(r"\$7\$([0-9]{1,8})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})")


def generate_secret() -> str:
    """A fresh random broker password for a device (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def _check_username(username: str) -> str:
    """A username that is safe in the file, in ACL substitutions and in topics."""
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        raise PasswordFileError(
            f"invalid broker username {username!r}: 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'"
        )
    return username


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """The `$7$` PBKDF2-SHA512 hash of `password` (a random salt unless one is given)."""
    if not isinstance(password, str) or not password:
        raise PasswordFileError("password must be a non-empty string")
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise PasswordFileError(f"iterations must be between 1 and {_MAX_ITERATIONS}")
    salt = os.urandom(_SALT_LEN) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    encode = base64.b64encode
    return f"$7${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def _decode_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a `$7$` hash; raise `PasswordFileError` if malformed."""
    match = _HASH_PATTERN.fullmatch(encoded)
    if match is None:
        raise PasswordFileError("password hash is not in the $7$ (sha512-pbkdf2) format")
    iterations = int(match.group(1))
    try:
        salt = base64.b64decode(match.group(2), validate=True)
        digest = base64.b64decode(match.group(3), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PasswordFileError("password hash has invalid base64") from exc
    if not 1 <= iterations <= _MAX_ITERATIONS or not salt or len(digest) != _DIGEST_LEN:
        raise PasswordFileError("password hash has an invalid iteration count, salt or digest")
    return iterations, salt, digest


def verify_password(password: str | None, encoded: str) -> bool:
    """Whether `password` matches the `$7$` hash (False for a malformed hash, never an error)."""
    if not password:
        return False
    try:
        iterations, salt, digest = _decode_hash(encoded)
    except PasswordFileError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def parse_password_file(text: str) -> dict[str, str]:
    """Username -> hash from the file's text; raise `PasswordFileError` naming the bad line."""
    users: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, encoded = line.partition(":")
        if not sep:
            raise PasswordFileError(f"line {number}: expected 'username:hash'")
        try:
            _check_username(username)
            _decode_hash(encoded)
        except PasswordFileError as exc:
            raise PasswordFileError(f"line {number}: {exc}") from None
        if username in users:
            raise PasswordFileError(f"line {number}: user {username!r} appears twice")
        users[username] = encoded
    return users


def read_password_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Username -> hash from a password file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileError(f"cannot read password file {os.fspath(path)!r}: {exc}") from exc
    return parse_password_file(text)


def format_password_file(
    passwords: Mapping[str, str] | None = None,
    *,
    hashes: Mapping[str, str] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> str:
    """The file's text for plain `passwords` (hashed here) and/or ready `hashes`, sorted by user."""
    entries: dict[str, str] = {}
    for username, encoded in (hashes or {}).items():
        try:
            _decode_hash(encoded)
        except PasswordFileError as exc:
            raise PasswordFileError(f"user {username!r}: {exc}") from None
        entries[_check_username(username)] = encoded
    for username, password in (passwords or {}).items():
        if username in entries:
            raise PasswordFileError(f"user {username!r} given both a password and a hash")
        entries[_check_username(username)] = hash_password(password, iterations=iterations)
    return "".join(f"{username}:{entries[username]}\n" for username in sorted(entries))


def write_password_file(
    path: str | os.PathLike[str],
    passwords: Mapping[str, str] | None = None,
    *,
    hashes: Mapping[str, str] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> Path:
    """Write the password file atomically (mode 0600) from plain `passwords` and/or ready `hashes`.

    The file is replaced in one rename, so a broker reloading it never sees half a file.
    """
    text = format_password_file(passwords, hashes=hashes, iterations=iterations)
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=".passwd-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("wrote %d broker user(s) to %s", text.count("\n"), target)
    return target
