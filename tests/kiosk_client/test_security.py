"""Bad input and forged messages: rejected, logged, and nothing executed."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mqtt.envelope import canonical_json, key_id, sign
from tests.kiosk_client.conftest import Kiosk, KioskFactory
from tests.kiosk_client.support import ServerPeer, wait_until


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def wipe_body(peer: ServerPeer, device_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "v": 1,
        "kid": peer.server.kid,
        "cmd_id": str(uuid.uuid4()),
        "device_id": device_id,
        "seq": 50,
        "type": "wipe_photos",
        "args": {},
        "iat": now,
        "exp": now + 600,
    }
    body.update(changes)
    return body


def envelope(body: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Sign `body` with `key` whatever kid the body claims (what a forger would send)."""
    return canonical_json({"body": body, "sig": _b64(key.sign(canonical_json(body)))})


def assert_nothing_executed(kiosk: Kiosk, peer: ServerPeer) -> None:
    peer.round_trip(kiosk.device_id)  # everything sent earlier has been handled by now
    assert kiosk.operations() == [], kiosk.operations()
    assert len(kiosk.photos) == 5


def test_forged_and_invalid_commands_are_rejected_and_never_run(
    kiosk: Kiosk, peer: ServerPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """P-PHOTO-1: only a command the server really signed for this device can wipe it."""
    device = kiosk.device_id
    server_key = peer.server.signing_key
    attacker = Ed25519PrivateKey.generate()
    cases: dict[str, tuple[bytes, str, bool]] = {}

    forged = wipe_body(peer, device)
    cases["forged signature"] = (envelope(forged, attacker), "bad_signature", False)

    tampered = wipe_body(peer, device, type="ping")
    signed = json.loads(sign(tampered, server_key))
    signed["body"]["type"] = "wipe_photos"
    cases["tampered body"] = (canonical_json(signed), "bad_signature", False)

    unknown_kid = wipe_body(peer, device, kid=key_id(attacker.public_key()))
    cases["unknown key"] = (sign(unknown_kid, attacker), "unknown_kid", False)

    expired = wipe_body(peer, device, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    cases["expired"] = (sign(expired, server_key), "expired", True)

    future = wipe_body(peer, device, iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)
    cases["issued in the future"] = (sign(future, server_key), "not_yet_valid", True)

    unknown_type = wipe_body(peer, device, type="self_destruct")
    cases["unknown type"] = (sign(unknown_type, server_key), "unknown_command", True)

    bad_args = wipe_body(peer, device, args={"everything": True})
    cases["unknown argument"] = (sign(bad_args, server_key), "malformed", True)

    acked: dict[str, str] = {}
    for name, (payload, _, _) in cases.items():
        acked[name] = json.loads(payload)["body"]["cmd_id"]
        peer.publish_raw(device, payload)
    for name, (_, reason, verified) in cases.items():
        ack = peer.wait_ack(acked[name], "rejected")
        assert ack.result == {"reason": reason, "verified": verified}, name
        assert [a.state.value for a in peer.acks_for(acked[name])] == ["rejected"], name
    assert_nothing_executed(kiosk, peer)
    logged = caplog.text
    for reason in ("bad_signature", "unknown_kid", "expired", "not_yet_valid", "unknown command"):
        assert reason in logged


def test_unreadable_and_misaddressed_commands_are_dropped_unacked(
    kiosk_factory: KioskFactory, peer: ServerPeer, caplog: pytest.LogCaptureFixture
) -> None:
    kiosk = kiosk_factory("a")
    other = kiosk_factory("b", start=False)
    device = kiosk.device_id
    server_key = peer.server.signing_key

    # Properly signed by the server, but for another device: replaying it here does nothing.
    for_other = wipe_body(peer, other.device_id)
    peer.publish_raw(device, sign(for_other, server_key))
    # Oversized (over 64 KiB), malformed JSON, JSON of the wrong shape, a bare string.
    big = wipe_body(peer, device, args={"reason": "x" * 400})
    oversized = sign(big, server_key)[:-2] + b" " * 70_000 + b"}}"
    peer.publish_raw(device, oversized)
    peer.publish_raw(device, b'{"body": {"v": 1, "kid": ')
    peer.publish_raw(device, b'{"body": [], "sig": 5}')
    peer.publish_raw(device, b'"wipe_photos"')
    peer.publish_raw(device, b"\xff\xfe not utf-8")

    assert_nothing_executed(kiosk, peer)
    assert peer.acks_for(for_other["cmd_id"]) == []
    assert "wrong_device" in caplog.text
    assert "oversized" in caplog.text
    assert caplog.text.count("refused an unreadable command") >= 4


def test_a_replayed_command_is_rejected(kiosk: Kiosk, peer: ServerPeer) -> None:
    """A command far older than the sequence window is refused even with a fresh id."""
    peer.wait_ack(peer.send(kiosk.device_id, "ping", seq=10_000), "done")
    peer.next_seq[kiosk.device_id] = 10_001
    old = peer.send(kiosk.device_id, "wipe_photos", seq=9_000)
    ack = peer.wait_ack(old, "rejected")
    assert ack.result["reason"] == "replayed"
    assert_nothing_executed(kiosk, peer)


def test_a_command_for_this_device_signed_by_the_server_still_runs(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """The control case for the tests above: the same wipe, properly signed, runs."""
    body = wipe_body(peer, kiosk.device_id)
    peer.publish_raw(kiosk.device_id, sign(body, peer.server.signing_key))
    peer.wait_ack(body["cmd_id"], "done")
    wait_until(lambda: kiosk.photos == [])
    # A forged copy of that real command cannot turn its recorded outcome into a refusal.
    peer.publish_raw(kiosk.device_id, envelope(body, Ed25519PrivateKey.generate()))
    peer.round_trip(kiosk.device_id)
    assert [a.state.value for a in peer.acks_for(body["cmd_id"])] == ["received", "done"]
