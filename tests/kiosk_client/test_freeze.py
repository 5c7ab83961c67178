"""The school's freeze on a real kiosk: once the signed freeze arrives, nothing destructive runs."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk_client.core import FROZEN
from tests.kiosk_client.conftest import Kiosk
from tests.kiosk_client.support import ServerPeer


def _refused(peer: ServerPeer, kiosk: Kiosk, command_type: str, args: dict[str, object]) -> None:
    ack = peer.wait_ack(peer.send(kiosk.device_id, command_type, args), "rejected")
    assert ack.detail == FROZEN
    assert dict(ack.result) == {"reason": "frozen", "verified": True}


def test_a_frozen_kiosk_refuses_every_destructive_command(kiosk: Kiosk, peer: ServerPeer) -> None:
    """P-SEC-1: after the signed freeze, wipes, locks, lost mode and resets are acked `rejected`
    with the reason and leave the device as it was; routine commands still run."""
    freeze = peer.send(kiosk.device_id, "freeze", {"enabled": True})
    assert dict(peer.wait_ack(freeze, "done").result) == {"frozen": True}

    _refused(peer, kiosk, "lock", {"message": "Pay us to unlock this iPad"})
    _refused(peer, kiosk, "lost_mode", {"enabled": True, "message": "Pay us"})
    _refused(peer, kiosk, "wipe_photos", {})
    _refused(peer, kiosk, "factory_reset", {})
    state = kiosk.device_state()
    assert state["locked"] is False and state["lost_mode"] is False
    assert len(kiosk.photos) == 5
    assert kiosk.operations("factory_reset") == []
    # Giving a device back, and the routine, are not destructive.
    peer.wait_ack(peer.send(kiosk.device_id, "lost_mode", {"enabled": False}), "done")
    peer.wait_ack(peer.send(kiosk.device_id, "ping"), "done")


def test_the_freeze_survives_a_restart_and_only_a_newer_instruction_lifts_it(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """P-SEC-1: the freeze is kept on disk; an older lifting delivered late changes nothing."""
    peer.wait_ack(peer.send(kiosk.device_id, "freeze", {"enabled": True}, seq=10), "done")
    late = peer.send(kiosk.device_id, "freeze", {"enabled": False}, seq=9)
    assert dict(peer.wait_ack(late, "done").result) == {"frozen": True}
    peer.next_seq[kiosk.device_id] = 11
    kiosk.stop()
    kiosk.start()
    _refused(peer, kiosk, "lock", {})

    lifted = peer.send(kiosk.device_id, "freeze", {"enabled": False})
    assert dict(peer.wait_ack(lifted, "done").result) == {"frozen": False}
    peer.wait_ack(peer.send(kiosk.device_id, "lock", {}), "done")
    assert kiosk.device_state()["locked"] is True


def test_a_forged_freeze_lifting_is_refused(kiosk: Kiosk, peer: ServerPeer) -> None:
    """Lifting is a signed command like any other: one signed by another key changes nothing."""
    peer.wait_ack(peer.send(kiosk.device_id, "freeze", {"enabled": True}), "done")
    forged = peer.send(
        kiosk.device_id, "freeze", {"enabled": False}, key=Ed25519PrivateKey.generate()
    )
    assert peer.wait_ack(forged, "rejected").result["verified"] is False
    _refused(peer, kiosk, "wipe_photos", {})
