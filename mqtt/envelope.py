"""Signed envelopes: a canonical JSON body and its Ed25519 signature.

Wire form (itself canonical JSON, UTF-8)::

    {"body":{...},"sig":"<base64url, no padding, of Ed25519(canonical_json(body))>"}

Every body carries `v` (protocol version), `kid` (which key signed it), `device_id` (the device it
is for, or from), `iat` and `exp` (integer epoch seconds). The server signs `cmd` and `desired`
with its key; a kiosk signs `ack` and `reported` with the device key registered at enrolment.
`open_envelope` checks, in this order: size, JSON shape, known kid, signature, device id, time
window; each failure is its own `EnvelopeError` subclass with a stable `reason` code. Replay
(seq and seen-set) is the receiver's job, helped by `check_fresh` and `ReplayGuard`.

Canonical JSON follows RFC 8785 for the values we allow (objects with string keys, arrays,
strings, integers within ±(2**53 - 1), booleans, null): keys sorted, no whitespace, UTF-8, no
escaping beyond JSON's own. Floats are refused because their text form differs between
languages; Python sorts keys by code point rather than UTF-16 unit, which only differs for
keys outside the Basic Multilingual Plane.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mqtt.errors import (
    BadSignatureError,
    ExpiredError,
    MalformedError,
    NotYetValidError,
    OversizedError,
    ReplayedError,
    UnknownKidError,
    WrongDeviceError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SKEW",
    "MAX_SAFE_INTEGER",
    "PROTOCOL_VERSION",
    "ReplayGuard",
    "Sealed",
    "canonical_json",
    "check_fresh",
    "decode_public_key",
    "encode_public_key",
    "key_id",
    "open_envelope",
    "plain_copy",
    "raw_public_key",
    "read_envelope",
    "sign",
    "unverified_body",
]

PROTOCOL_VERSION = 1
DEFAULT_SKEW = 300
DEFAULT_MAX_BYTES = 65536
DEFAULT_REPLAY_WINDOW = 256

# RFC 8785 / I-JSON: integers outside this range lose precision in JavaScript and friends.
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 32
_SIGNATURE_LEN = 64
_PUBLIC_KEY_LEN = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEADER_INTS = ("iat", "exp")


# --- canonical JSON ---------------------------------------------------------------------------


# Where a value sits, as `$`, or (parent, key or index): the text is built for an error only, as
# formatting a path for every value cost more than checking it.
_Path = str | tuple["_Path", str | int]


def _at(path: _Path) -> str:
    """The JSON path of a value, for an error message: `$.result.files[2]`."""
    if isinstance(path, str):
        return path
    parent, step = path
    return f"{_at(parent)}[{step}]" if isinstance(step, int) else f"{_at(parent)}.{step}"


def _plain(value: object, path: _Path, depth: int) -> object:
    """A plain dict/list copy of `value`, refusing anything canonical JSON cannot carry."""
    if depth > _MAX_DEPTH:
        raise MalformedError(f"{_at(path)}: nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise MalformedError(f"{_at(path)}: integer outside ±(2**53 - 1)")
        return int(value)
    if isinstance(value, float):
        raise MalformedError(f"{_at(path)}: floats are not allowed in signed bodies; use integers")
    if isinstance(value, Mapping):
        result: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedError(f"{_at(path)}: object keys must be strings, not {key!r}")
            result[key] = _plain(item, (path, key), depth + 1)
        return result
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_plain(item, (path, index), depth + 1) for index, item in enumerate(value)]
    raise MalformedError(f"{_at(path)}: {type(value).__name__} cannot be encoded as canonical JSON")


def plain_copy(obj: object) -> Any:
    """A deep copy of `obj` as plain dicts and lists, checked against the canonical JSON rules."""
    return _plain(obj, "$", 0)


def canonical_json(obj: object) -> bytes:
    """The canonical UTF-8 JSON encoding of `obj`; `MalformedError` for floats and the like."""
    return _encode(_plain(obj, "$", 0))


# One encoder for every message: `json.dumps` with options builds a new one each call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _encode(plain: object) -> bytes:
    """The canonical encoding of a value `_plain` has already checked and copied."""
    try:
        return _CANONICAL.encode(plain).encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate in a string has no UTF-8 form.
        raise MalformedError("$: string is not valid Unicode") from exc


# --- keys ---------------------------------------------------------------------------------------


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id of a public key: the first 16 hex digits of SHA-256 over its raw 32 bytes."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


def _b64url(data: bytes) -> str:
    """Unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str, expected_len: int, what: str) -> bytes:
    """Decode unpadded base64url of an exact decoded length, or raise `MalformedError`."""
    encoded_len = (expected_len * 4 + 2) // 3
    if len(text) != encoded_len or not _BASE64URL.fullmatch(text):
        raise MalformedError(f"{what} must be {encoded_len} characters of unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"{what} is not valid base64url") from exc
    # Refuse non-zero padding bits so that one value has exactly one text form.
    if _b64url(data) != text:
        raise MalformedError(f"{what} is not canonical base64url")
    return data


def encode_public_key(public_key: Ed25519PublicKey) -> str:
    """A public key as 43 characters of unpadded base64url (the enrolment wire form)."""
    return _b64url(raw_public_key(public_key))


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Parse `encode_public_key` output; raise `MalformedError` if it is not a key."""
    if not isinstance(text, str):
        raise MalformedError("public key must be text")
    raw = _b64url_decode(text, _PUBLIC_KEY_LEN, "public key")
    # A point of small order (or off the prime-order group) is never a real key; with one, a
    # lax verifier would accept the same signature for every message.
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise MalformedError("public key is not a point an Ed25519 key can be")
    return Ed25519PublicKey.from_public_bytes(raw)


# --- signing and opening ----------------------------------------------------------------------


# Each signing key met, as libsodium's secret key and the key id: libsodium signs in two thirds
# of OpenSSL's time (the same signature: Ed25519 is deterministic), and the id is worked out once
# rather than for every message. Keyed by the object, which is kept so its id is not reused.
_SIGNERS: dict[int, tuple[Ed25519PrivateKey, bytes, str]] = {}
_SIGNERS_KEPT = 16


def _signer(private_key: Ed25519PrivateKey) -> tuple[bytes, str]:
    """libsodium's secret key for `private_key`, and its key id."""
    known = _SIGNERS.get(id(private_key))
    if known is None or known[0] is not private_key:
        seed = private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        if len(_SIGNERS) >= _SIGNERS_KEPT:
            _SIGNERS.clear()
        known = (private_key, secret, hashlib.sha256(public).hexdigest()[:16])
        _SIGNERS[id(private_key)] = known
    return known[1], known[2]


def sign(body: Mapping[str, Any], private_key: Ed25519PrivateKey) -> bytes:
    """The envelope bytes for `body` signed by `private_key`; `body["kid"]` must name that key."""
    plain = _plain(body, "$", 0)
    if not isinstance(plain, dict):
        raise MalformedError("body must be an object")
    secret, expected_kid = _signer(private_key)
    if plain.get("kid") != expected_kid:
        # Catch the mistake here: the receiver would only report a bad signature.
        raise MalformedError(f"body kid {plain.get('kid')!r} is not the signing key {expected_kid}")
    canonical = _encode(plain)
    signature = nacl.bindings.crypto_sign(canonical, secret)[: nacl.bindings.crypto_sign_BYTES]
    return _wire(canonical, _b64url(signature).encode("ascii"))


class _Refused(ValueError):
    """Raised inside the JSON parser for input canonical JSON cannot contain."""


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing duplicate keys (parsers disagree on which one wins)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_float(text: str) -> Any:
    """Refuse a JSON number with a fraction or exponent."""
    raise _Refused(f"floats are not allowed ({text})")


def _refuse_constant(text: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON at all."""
    raise _Refused(f"{text} is not JSON")


def _parse(raw: bytes, max_bytes: int) -> tuple[dict[str, Any], bytes, bytes]:
    """Size and shape checks: return the body, the signature and the body's canonical bytes."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedError("envelope must be bytes")
    if len(raw) > max_bytes:
        raise OversizedError(f"{len(raw)} bytes exceeds the limit of {max_bytes}")
    raw = bytes(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"not JSON: {exc}") from exc
    found = _canonical_envelope(raw, text)
    canonical: bytes | None = None
    if found is None:
        # The full checks, in their order: duplicate keys and the rest while parsing, then
        # shape, signature text, header, and the body walked for its canonical form.
        try:
            envelope = json.loads(
                text,
                object_pairs_hook=_object_without_duplicates,
                parse_float=_refuse_float,
                parse_constant=_refuse_constant,
            )
        except (ValueError, RecursionError) as exc:
            raise MalformedError(f"not JSON: {exc}") from exc
        body, sig = _shape(envelope)
    else:
        body, sig, canonical = found
    signature = _b64url_decode(sig, _SIGNATURE_LEN, "sig")
    _check_header(body)
    return body, signature, canonical_json(body) if canonical is None else canonical


# Built once: `json.loads` with options builds a decoder every call.
_DECODER = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_constant)


def _canonical_envelope(raw: bytes, text: str) -> tuple[dict[str, Any], str, bytes] | None:
    """Body, signature text and canonical body of an envelope that is canonical JSON within
    `_plain`'s limits, as every sender here writes it; None for anything else.

    Such an envelope needs neither a hook per object nor a walk of its body (together two
    thirds of opening an ack): re-encoding what the C parser read gives back the very bytes,
    which also rules out duplicate keys and whitespace.
    """
    try:
        envelope = _DECODER.decode(text)
        body, sig = _shape(envelope)
        canonical = _encode(body)
    except (ValueError, RecursionError, MalformedError):
        return None
    if raw != _wire(canonical, sig.encode()) or not _plainly_within_limits(canonical):
        return None
    return body, sig, canonical


def _shape(envelope: object) -> tuple[dict[str, Any], str]:
    """The body object and signature text of an envelope of the right shape."""
    if not isinstance(envelope, dict) or set(envelope) != {"body", "sig"}:
        raise MalformedError('envelope must be an object with exactly "body" and "sig"')
    body, sig = envelope["body"], envelope["sig"]
    if not isinstance(body, dict):
        raise MalformedError("body must be an object")
    if not isinstance(sig, str):
        raise MalformedError("sig must be a string")
    return body, sig


def _wire(canonical: bytes, signature: bytes) -> bytes:
    """The envelope around a canonical body: itself canonical, as "body" sorts before "sig"."""
    return b'{"body":' + canonical + b',"sig":"' + signature + b'"}'


# Sixteen digits in a row may be an integer past ±(2**53 - 1): found as sixteen zeros once every
# digit reads as one (a sixth of a regular expression's time).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 16


def _plainly_within_limits(canonical: bytes) -> bool:
    """Whether canonical bytes certainly keep to `_plain`'s integer and depth limits.

    Conservative: digits inside strings and brackets inside strings count too, and then the
    caller walks the body instead.
    """
    if canonical.count(b"{") + canonical.count(b"[") > _MAX_DEPTH:
        return False
    return _LONG_DIGITS not in canonical.translate(_DIGITS_AS_ZERO)


def _is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_header(body: Mapping[str, Any]) -> None:
    """The fields every body carries, with their types."""
    version = body.get("v")
    if not _is_int(version) or version != PROTOCOL_VERSION:
        raise MalformedError(f"v must be {PROTOCOL_VERSION}, not {version!r}")
    for name in ("kid", "device_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise MalformedError(f"{name} must be a non-empty string")
    for name in _HEADER_INTS:
        if not _is_int(body.get(name)):
            raise MalformedError(f"{name} must be an integer (epoch seconds)")
    if body["exp"] <= body["iat"]:
        raise MalformedError("exp must be after iat")


def unverified_body(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The body of a well-shaped envelope, signature NOT checked: for logs and rejections only."""
    return read_envelope(raw, max_bytes=max_bytes).body


@dataclass(frozen=True, slots=True)
class Sealed:
    """An envelope read and shaped but not opened: until `open` says so, its body is a claim."""

    body: dict[str, Any]
    signature: bytes
    canonical: bytes

    def open(
        self,
        keys: Mapping[str, Ed25519PublicKey | bytes],
        *,
        device_id: str,
        now: int,
        skew: int = DEFAULT_SKEW,
    ) -> dict[str, Any]:
        """The verified body, or the `EnvelopeError` of the first failed check after shape."""
        body = self.body
        kid = body["kid"]
        public_key = keys.get(kid)
        if public_key is None:
            raise UnknownKidError(f"key {kid!r} is not trusted here")
        try:
            # libsodium, not OpenSSL: a third of the time (the worker checks two acks per
            # command) and it lets other threads run meanwhile; it is also the stricter of the two.
            nacl.bindings.crypto_sign_open(
                self.signature + self.canonical,
                public_key if isinstance(public_key, bytes) else raw_public_key(public_key),
            )
        except nacl.exceptions.BadSignatureError:
            raise BadSignatureError(f"signature does not verify with key {kid!r}") from None
        if body["device_id"] != device_id:
            raise WrongDeviceError(f"body is for {body['device_id']!r}, expected {device_id!r}")
        if now >= body["exp"]:
            raise ExpiredError(f"expired at {body['exp']}, now {now}")
        if now < body["iat"] - skew:
            raise NotYetValidError(f"issued at {body['iat']}, now {now}, allowed skew {skew}s")
        return body


def read_envelope(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Sealed:
    """Size and shape checks only (`MalformedError`, `OversizedError`): what `open` then checks."""
    return Sealed(*_parse(raw, max_bytes))


def open_envelope(
    raw: bytes,
    keys: Mapping[str, Ed25519PublicKey | bytes],
    *,
    device_id: str,
    now: int,
    skew: int = DEFAULT_SKEW,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Return the verified body, or raise the `EnvelopeError` of the first failed check.

    `keys` maps key ids to public keys, or to their 32 raw bytes (`raw_public_key`), which a
    receiver opening many messages keeps rather than asking the key object each time.
    """
    return read_envelope(raw, max_bytes=max_bytes).open(
        keys, device_id=device_id, now=now, skew=skew
    )


# --- replay -------------------------------------------------------------------------------------


def check_fresh(
    cmd_id: str,
    seq: int,
    seen: AbstractSet[str],
    last_seq: int,
    *,
    window: int = DEFAULT_REPLAY_WINDOW,
) -> None:
    """Raise `ReplayedError` if `cmd_id` was seen or `seq` is too old to be judged.

    `last_seq` is the highest sequence number accepted so far. Commands may arrive out of order
    (the worker re-publishes un-acked ones), so any `seq` above `last_seq - window` is judged by
    the seen-set alone; older ones are refused because the seen-set may have forgotten them.
    """
    if cmd_id in seen:
        raise ReplayedError(f"command {cmd_id} was already received")
    if seq <= last_seq - window:
        raise ReplayedError(f"sequence {seq} is older than the window (last accepted {last_seq})")


class ReplayGuard:
    """An in-memory seen-set and high-water mark; persist `state()` before acting on a command."""

    def __init__(
        self,
        *,
        last_seq: int = 0,
        seen: Mapping[str, int] | None = None,
        window: int = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        """Start from persisted state: `seen` maps cmd_id to its seq."""
        if window < 0:
            raise ValueError("window must not be negative")
        self.window = window
        self.last_seq = last_seq
        self._seen: dict[str, int] = dict(seen or {})

    def check(self, cmd_id: str, seq: int) -> None:
        """Raise `ReplayedError` unless the command is fresh."""
        check_fresh(cmd_id, seq, self._seen.keys(), self.last_seq, window=self.window)

    def record(self, cmd_id: str, seq: int) -> None:
        """Remember an accepted command and forget ids that fell out of the window."""
        self._seen[cmd_id] = seq
        self.last_seq = max(self.last_seq, seq)
        floor = self.last_seq - self.window
        for old in [key for key, old_seq in self._seen.items() if old_seq <= floor]:
            del self._seen[old]

    def accept(self, cmd_id: str, seq: int) -> None:
        """Check, then record."""
        self.check(cmd_id, seq)
        self.record(cmd_id, seq)

    def state(self) -> tuple[int, dict[str, int]]:
        """(last_seq, seen) for persisting."""
        return self.last_seq, dict(self._seen)
