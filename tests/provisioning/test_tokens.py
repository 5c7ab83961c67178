"""Enrolment tokens and the device's Ed25519 key encoding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioning import tokens
from provisioning.errors import KeyFormatError, PassphraseError, ProvisioningError
from provisioning.keys import (
    decode_public_key,
    encode_public_key,
    load_private_key_pem,
    new_device_key,
    private_key_to_pem,
)
from provisioning.tokens import (
    DEFAULT_TOKEN_LIFETIME,
    hash_token,
    new_token,
    token_expires_at,
    token_is_expired,
    token_matches,
)
from tests.provisioning.support import NOW, fixed_ed25519_key


def test_tokens_are_unique_url_safe_and_carry_at_least_128_bits() -> None:
    issued = {new_token() for _ in range(2000)}
    assert len(issued) == 2000
    for token in issued:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128


def test_the_hash_is_sha256_hex_and_does_not_reveal_the_token() -> None:
    token = new_token()
    stored = hash_token(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert token not in stored
    assert hash_token(token) == stored  # deterministic, so the server can look it up


def test_the_right_token_matches_and_any_other_does_not() -> None:
    token = new_token()
    stored = hash_token(token)
    assert token_matches(token, stored)
    assert not token_matches(new_token(), stored)
    assert not token_matches(token[:-1], stored)
    assert not token_matches(token + "x", stored)
    assert not token_matches("", stored)
    assert not token_matches(stored, stored)  # the hash is not a credential


@pytest.mark.parametrize("stored", ["", "abc", "Z" * 64, "A" * 64, "é" * 64])
def test_a_corrupt_stored_hash_never_matches(stored: str) -> None:
    assert not token_matches("anything", stored)


def test_a_lone_surrogate_does_not_crash_the_check() -> None:
    assert not token_matches("\ud800", hash_token(new_token()))


def test_matching_uses_a_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = new_token()
    assert token_matches(token, hash_token(token))
    assert not token_matches("wrong", hash_token(token))
    assert len(calls) == 2


def test_token_lifetime_defaults_to_a_day() -> None:
    assert DEFAULT_TOKEN_LIFETIME == timedelta(hours=24)
    expires = token_expires_at(NOW)
    assert expires == NOW + timedelta(hours=24)
    assert not token_is_expired(expires, NOW + timedelta(hours=23, minutes=59))
    assert token_is_expired(expires, expires)
    assert token_expires_at(NOW, timedelta(minutes=10)) == NOW + timedelta(minutes=10)


def test_token_times_must_be_timezone_aware_and_lifetimes_positive() -> None:
    naive = datetime(2025, 9, 1)
    with pytest.raises(ProvisioningError, match="timezone-aware"):
        token_expires_at(naive)
    with pytest.raises(ProvisioningError, match="timezone-aware"):
        token_is_expired(NOW, naive)
    with pytest.raises(ProvisioningError, match="positive"):
        token_expires_at(NOW, timedelta(0))


# --- the device's Ed25519 key ----------------------------------------------------------------


def test_device_keys_are_fresh_ed25519_keys() -> None:
    first, second = new_device_key(), new_device_key()
    assert isinstance(first, ed25519.Ed25519PrivateKey)
    assert encode_public_key(first.public_key()) != encode_public_key(second.public_key())


def test_public_key_round_trip_keeps_signatures_verifiable() -> None:
    key = new_device_key()
    text = encode_public_key(key.public_key())
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", text)
    public = decode_public_key(text)
    public.verify(key.sign(b"ack"), b"ack")
    with pytest.raises(InvalidSignature):
        public.verify(key.sign(b"ack"), b"nack")


def test_public_key_encoding_is_the_raw_key_in_base64url() -> None:
    key = fixed_ed25519_key(1)
    raw = key.public_key().public_bytes_raw()
    assert encode_public_key(key.public_key()) == base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "+",  # standard base64, not base64url
        "A" * 42 + "=",
        "A" * 41 + " A",
        base64.b64encode(b"\xff" * 32).decode().rstrip("=").replace("/", "_").replace("+", "-")
        + "x",
    ],
)
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        decode_public_key(text)


def test_device_private_key_pem_round_trip() -> None:
    key = fixed_ed25519_key(2)
    loaded = load_private_key_pem(private_key_to_pem(key, "pin"), "pin")
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert loaded.private_bytes_raw() == key.private_bytes_raw()
    with pytest.raises(PassphraseError):
        load_private_key_pem(private_key_to_pem(key, "pin"), "nip")


def test_tokens_module_offers_the_device_key_helpers() -> None:
    assert tokens.new_device_key is new_device_key
    assert tokens.encode_public_key is encode_public_key
    assert tokens.decode_public_key is decode_public_key
