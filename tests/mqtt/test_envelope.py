"""Canonical JSON, Ed25519 envelopes and replay checks, including fixed golden vectors."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mqtt.envelope import (
    ReplayGuard,
    canonical_json,
    check_fresh,
    decode_public_key,
    encode_public_key,
    key_id,
    open_envelope,
    raw_public_key,
    sign,
    unverified_body,
)
from mqtt.errors import (
    BadSignatureError,
    EnvelopeError,
    ExpiredError,
    MalformedError,
    NotYetValidError,
    OversizedError,
    ReplayedError,
    UnknownKidError,
    WrongDeviceError,
)

GOLDEN = json.loads((Path(__file__).parent / "golden" / "envelope_v1.json").read_text("utf-8"))
NOW = 1767225600
SERVER_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(GOLDEN["seed_hex"]))
SERVER_KID = key_id(SERVER_KEY.public_key())
KEYS = {SERVER_KID: SERVER_KEY.public_key()}


def body(**changes: Any) -> dict[str, Any]:
    """A valid command body for dev-a, with changes."""
    base: dict[str, Any] = {
        "v": 1,
        "kid": SERVER_KID,
        "cmd_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "device_id": "dev-a",
        "seq": 3,
        "type": "wipe_photos",
        "args": {},
        "iat": NOW,
        "exp": NOW + 3600,
    }
    base.update(changes)
    return base


def open_for_a(raw: bytes, **options: Any) -> dict[str, Any]:
    """Open as dev-a at NOW."""
    return open_envelope(raw, KEYS, device_id="dev-a", now=options.pop("now", NOW), **options)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- golden vectors -----------------------------------------------------------------------------


def test_golden_key_id_and_public_key() -> None:
    public = SERVER_KEY.public_key()
    assert encode_public_key(public) == GOLDEN["public_key"]
    raw = base64.urlsafe_b64decode(GOLDEN["public_key"] + "=")
    assert key_id(public) == GOLDEN["kid"] == hashlib.sha256(raw).hexdigest()[:16]


def test_golden_canonical_bytes() -> None:
    assert canonical_json(GOLDEN["body"]) == GOLDEN["canonical"].encode("utf-8")
    # Key order of the input does not matter.
    reordered = dict(reversed(list(GOLDEN["body"].items())))
    assert canonical_json(reordered) == GOLDEN["canonical"].encode("utf-8")


def test_golden_signature_and_envelope() -> None:
    envelope = sign(GOLDEN["body"], SERVER_KEY)
    assert envelope == GOLDEN["envelope"].encode("utf-8")
    assert json.loads(envelope)["sig"] == GOLDEN["signature"]
    opened = open_envelope(envelope, KEYS, device_id="ipad-0042", now=GOLDEN["body"]["iat"])
    assert opened == GOLDEN["body"]


def test_ed25519_matches_rfc8032_test_1() -> None:
    key = Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
        "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


# --- canonical JSON -----------------------------------------------------------------------------


def test_canonical_json_rules() -> None:
    assert (
        canonical_json({"b": [1, True, None], "a": "é"}) == '{"a":"é","b":[1,true,null]}'.encode()
    )
    assert canonical_json({"t": (1, 2)}) == b'{"t":[1,2]}'


@pytest.mark.parametrize(
    "value",
    [
        {"x": 1.5},
        {"x": [0.0]},
        {"x": float("nan")},
        {1: "non-string key"},
        {"x": 2**53},
        {"x": b"bytes"},
        {"x": {"y": object()}},
        {"x": "\ud800"},
    ],
)
def test_canonical_json_refuses(value: Any) -> None:
    with pytest.raises(MalformedError):
        canonical_json(value)


def test_sign_refuses_floats_and_a_mismatched_kid() -> None:
    with pytest.raises(MalformedError, match="floats"):
        sign(body(args={"volume": 0.5}), SERVER_KEY)
    with pytest.raises(MalformedError, match="kid"):
        sign(body(kid="someone-else"), SERVER_KEY)


def test_public_key_round_trip_and_refusals() -> None:
    public = SERVER_KEY.public_key()
    assert key_id(decode_public_key(encode_public_key(public))) == SERVER_KID
    for bad in ["", "A" * 42, "A" * 43 + "=", "!" * 43, "A" * 44]:
        with pytest.raises(MalformedError):
            decode_public_key(bad)


# The identity point: a "public key" of small order. Under it, R = the identity and S = 0 satisfy
# the verification equation for any message at all.
SMALL_ORDER = bytes([1]) + bytes(31)


def test_a_key_of_small_order_is_refused() -> None:
    with pytest.raises(MalformedError, match="not a point an Ed25519 key can be"):
        decode_public_key(b64url(SMALL_ORDER))


def test_a_signature_under_a_key_of_small_order_verifies_nothing() -> None:
    """A device that registered such a key could sign anything at all without a private key."""
    weak = Ed25519PublicKey.from_public_bytes(SMALL_ORDER)
    kid = key_id(weak)
    forged = {"body": body(kid=kid), "sig": b64url(SMALL_ORDER + bytes(32))}
    with pytest.raises(BadSignatureError):
        open_envelope(json.dumps(forged).encode(), {kid: weak}, device_id="dev-a", now=NOW)


# --- opening ------------------------------------------------------------------------------------


def test_every_key_signs_as_itself_however_many_are_met() -> None:
    """The signing side remembers the keys it meets: each signature is still the one OpenSSL
    makes with that very key (Ed25519 is deterministic), and a body naming another key's id is
    still refused, past the number of keys remembered."""
    keys = [Ed25519PrivateKey.generate() for _ in range(40)]
    for round_ in range(2):
        for key in keys:
            kid = key_id(key.public_key())
            raw = sign(body(kid=kid, seq=round_), key)
            envelope = json.loads(raw)
            canonical = canonical_json(envelope["body"])
            signature = base64.urlsafe_b64decode(envelope["sig"] + "==")
            assert signature == key.sign(canonical)
            key.public_key().verify(signature, canonical)
            with pytest.raises(MalformedError, match="kid"):
                sign(body(kid=SERVER_KID), key)


def test_round_trip_returns_the_body() -> None:
    assert open_for_a(sign(body(), SERVER_KEY)) == body()


def test_a_key_given_as_its_raw_bytes_opens_the_same() -> None:
    raw_keys = {SERVER_KID: raw_public_key(SERVER_KEY.public_key())}
    assert open_envelope(sign(body(), SERVER_KEY), raw_keys, device_id="dev-a", now=NOW) == body()
    other = {SERVER_KID: raw_public_key(Ed25519PrivateKey.generate().public_key())}
    with pytest.raises(BadSignatureError):
        open_envelope(sign(body(), SERVER_KEY), other, device_id="dev-a", now=NOW)


def test_forged_signature_is_refused() -> None:
    forged = json.loads(sign(body(), SERVER_KEY))
    forged["sig"] = b64url(bytes(64))
    with pytest.raises(BadSignatureError):
        open_for_a(json.dumps(forged).encode())


def test_signature_by_another_key_under_the_trusted_kid_is_refused() -> None:
    attacker = Ed25519PrivateKey.generate()
    signature = attacker.sign(canonical_json(body()))
    raw = json.dumps({"body": body(), "sig": b64url(signature)}).encode()
    with pytest.raises(BadSignatureError):
        open_for_a(raw)


def test_tampered_body_is_refused() -> None:
    envelope = json.loads(sign(body(type="ping"), SERVER_KEY))
    envelope["body"]["type"] = "factory_reset"
    with pytest.raises(BadSignatureError):
        open_for_a(json.dumps(envelope).encode())


def test_whitespace_and_key_order_of_the_wire_form_do_not_matter() -> None:
    envelope = json.loads(sign(body(), SERVER_KEY))
    pretty = json.dumps(envelope, indent=3, sort_keys=False).encode()
    assert open_for_a(pretty) == body()


def test_unknown_kid_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    raw = sign(body(kid=key_id(other.public_key())), other)
    with pytest.raises(UnknownKidError) as caught:
        open_for_a(raw)
    assert caught.value.reason == "unknown_kid"


def test_command_for_another_device_is_refused() -> None:
    raw = sign(body(device_id="dev-b"), SERVER_KEY)
    with pytest.raises(WrongDeviceError):
        open_for_a(raw)
    assert open_envelope(raw, KEYS, device_id="dev-b", now=NOW)["device_id"] == "dev-b"


def test_time_window() -> None:
    raw = sign(body(iat=NOW, exp=NOW + 60), SERVER_KEY)
    assert open_for_a(raw, now=NOW + 59)
    assert open_for_a(raw, now=NOW - 300)  # within the default skew
    with pytest.raises(ExpiredError):
        open_for_a(raw, now=NOW + 60)
    with pytest.raises(NotYetValidError):
        open_for_a(raw, now=NOW - 301)
    with pytest.raises(NotYetValidError):
        open_for_a(raw, now=NOW - 10, skew=5)


def test_oversized_is_refused_before_parsing() -> None:
    raw = sign(body(args={"reason": "x" * 400}), SERVER_KEY)
    assert open_for_a(raw, max_bytes=len(raw))
    with pytest.raises(OversizedError):
        open_for_a(raw, max_bytes=len(raw) - 1)
    with pytest.raises(OversizedError):
        open_for_a(b"{" * 70000)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"body": {}}',
        b'{"body": {}, "sig": "", "extra": 1}',
        b'{"body": [], "sig": "x"}',
        b'{"body": {}, "sig": 5}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_malformed_json_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedError):
        open_for_a(raw)


def _nested(depth: int) -> dict[str, Any]:
    """Objects nested `depth` deep inside a command's args."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def signed_raw(bad_body: dict[str, Any]) -> bytes:
    """An envelope whose signature is right for `bad_body`, bypassing `sign`'s own checks."""
    text = json.dumps(bad_body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signature = SERVER_KEY.sign(text.encode())
    return ('{"body":' + text + ',"sig":"' + b64url(signature) + '"}').encode()


@pytest.mark.parametrize(
    "bad_body",
    [
        body(args={"level": 0.5}),  # floats are refused even when correctly signed
        body(seq=1e3),
        body(v=2),
        body(v=True),
        body(iat="now"),
        body(exp=NOW),  # exp must be after iat
        body(device_id=7),
        {k: v for k, v in body().items() if k != "kid"},
        # Canonically written and signed, yet past the limits canonical JSON keeps.
        body(seq=2**53),
        body(args={"reason": "x", "n": -(2**60)}),
        body(args=_nested(40)),
    ],
)
def test_bad_bodies_are_malformed(bad_body: dict[str, Any]) -> None:
    with pytest.raises(MalformedError):
        open_for_a(signed_raw(bad_body))


def test_limits_are_kept_when_digits_and_brackets_only_sit_in_strings() -> None:
    # Such text sends an envelope past the quick check to the full walk, which accepts it.
    fine = body(args={"reason": "1234567890123456" + "{[" * 40})
    assert open_for_a(sign(fine, SERVER_KEY)) == fine
    assert open_for_a(signed_raw(body(args=_nested(31)))) == body(args=_nested(31))


def test_duplicate_keys_and_non_json_constants_are_refused() -> None:
    raw = sign(body(), SERVER_KEY)
    duplicated = raw.replace(b'"seq":3', b'"seq":3,"seq":4')
    with pytest.raises(MalformedError, match="duplicate"):
        open_for_a(duplicated)
    with pytest.raises(MalformedError):
        open_for_a(raw.replace(b'"seq":3', b'"seq":NaN'))


def test_signature_must_be_canonical_base64url() -> None:
    envelope = json.loads(sign(body(), SERVER_KEY))
    for bad in [envelope["sig"] + "=", envelope["sig"][:-1], "+" + envelope["sig"][1:]]:
        with pytest.raises(MalformedError):
            open_for_a(json.dumps({"body": envelope["body"], "sig": bad}).encode())


def test_checks_run_in_the_documented_order() -> None:
    # Unknown kid wins over a wrong device and an expiry; a bad signature wins over both.
    other = Ed25519PrivateKey.generate()
    raw = sign(body(kid=key_id(other.public_key()), device_id="dev-b", exp=NOW + 1), other)
    with pytest.raises(UnknownKidError):
        open_for_a(raw, now=NOW + 10)
    forged = json.loads(sign(body(device_id="dev-b"), SERVER_KEY))
    forged["sig"] = b64url(bytes(64))
    with pytest.raises(BadSignatureError):
        open_for_a(json.dumps(forged).encode(), now=NOW + 10**6)
    with pytest.raises(WrongDeviceError):
        open_for_a(sign(body(device_id="dev-b"), SERVER_KEY), now=NOW + 10**6)


def test_every_reason_is_distinct() -> None:
    reasons = {cls.reason for cls in EnvelopeError.__subclasses__()}
    assert reasons == {
        "oversized",
        "malformed",
        "unknown_kid",
        "bad_signature",
        "wrong_device",
        "expired",
        "not_yet_valid",
        "replayed",
    }


def test_unverified_body_is_for_logging_only() -> None:
    forged = json.loads(sign(body(), SERVER_KEY))
    forged["sig"] = b64url(bytes(64))
    raw = json.dumps(forged).encode()
    assert unverified_body(raw)["cmd_id"] == body()["cmd_id"]
    with pytest.raises(BadSignatureError):
        open_for_a(raw)


# --- replay -------------------------------------------------------------------------------------


def test_check_fresh() -> None:
    check_fresh("a", 10, set(), 9)
    check_fresh("a", 5, {"b"}, 9)  # out of order but within the window
    with pytest.raises(ReplayedError):
        check_fresh("a", 10, {"a"}, 9)
    with pytest.raises(ReplayedError):
        check_fresh("a", 9, set(), 9, window=0)
    with pytest.raises(ReplayedError) as caught:
        check_fresh("a", 1, set(), 300, window=256)
    assert caught.value.reason == "replayed"


def test_replay_guard_replays_a_captured_envelope() -> None:
    guard = ReplayGuard(window=2)
    raw = sign(body(), SERVER_KEY)
    opened = open_for_a(raw)
    guard.accept(opened["cmd_id"], opened["seq"])
    with pytest.raises(ReplayedError):
        again = open_for_a(raw)
        guard.accept(again["cmd_id"], again["seq"])
    guard.accept("c2", 4)
    guard.accept("c3", 6)
    last_seq, seen = guard.state()
    assert last_seq == 6
    assert set(seen) == {"c3"}  # seq 3 and 4 fell out of the window; seq now refuses them
    with pytest.raises(ReplayedError):
        guard.check(opened["cmd_id"], opened["seq"])
    restored = ReplayGuard(last_seq=last_seq, seen=seen, window=2)
    with pytest.raises(ReplayedError):
        restored.check("c3", 6)
    restored.check("c5", 5)
