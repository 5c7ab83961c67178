"""Each command, end to end: signed by the server, run by a kiosk, acked and reported."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_profiles import builtin_profiles, compile_profile, kiosk_document_sha256
from kiosk_client.agent import Agent
from kiosk_client.config import load_config
from kiosk_client.enrol import enrol
from mqtt.limits import MAX_REPORT_BYTES
from tests.kiosk_client.conftest import Kiosk, KioskFactory
from tests.kiosk_client.support import FakeServer, IdentityPool, ServerPeer, identities, wait_until


def kiosk_document(version: int, profile_id: str = "exam-kiosk") -> dict[str, Any]:
    result = compile_profile(builtin_profiles()[profile_id], "kiosk", version=version)
    document: dict[str, Any] = json.loads(result.content)
    return document


@contextlib.contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """Make `path` impossible to delete: a read-only folder, or (as root) the immutable flag."""
    if os.geteuid() != 0:
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root and the immutable flag is unavailable here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_ping_is_done_with_uptime(kiosk: Kiosk, peer: ServerPeer) -> None:
    cmd_id = peer.send(kiosk.device_id, "ping")
    ack = peer.wait_ack(cmd_id, "done")
    assert ack.detail == "pong"
    assert isinstance(ack.result["uptime_seconds"], int)
    assert [a.state.value for a in peer.acks_for(cmd_id)] == ["received", "done"]


def test_report_inventory_publishes_a_signed_report(kiosk: Kiosk, peer: ServerPeer) -> None:
    cmd_id = peer.send(kiosk.device_id, "report_inventory")
    peer.wait_ack(cmd_id, "done")
    report = peer.wait_report(kiosk.device_id)
    assert report.photo_count == 5
    assert report.os == "TrolleyOS" and report.battery_percent == 87
    assert report.storage_total_bytes and report.storage_free_bytes
    assert report.apps and "org.trolley.kiosk" in report.apps
    assert report.extra["platform"] == "simulated"
    assert report.extra["asset_tag"] == kiosk.config.asset_tag
    assert report.lost_mode is False and report.locked is False
    assert not peer.bad


def test_wipe_photos_deletes_every_photo(kiosk: Kiosk, peer: ServerPeer) -> None:
    """P-PHOTO-1: a returned device's photos are wiped, and the ack says how many."""
    (kiosk.device_dir / "DCIM" / "Camera").mkdir()
    (kiosk.device_dir / "DCIM" / "Camera" / "VID_0001.MP4").write_bytes(b"video")
    cmd_id = peer.send(kiosk.device_id, "wipe_photos")
    ack = peer.wait_ack(cmd_id, "done")
    assert dict(ack.result) == {"deleted": 6, "remaining": 0}
    assert kiosk.photos == []
    peer.wait_ack(peer.send(kiosk.device_id, "report_inventory"), "done")
    assert peer.wait_report(kiosk.device_id, lambda r: r.photo_count == 0)


def test_wipe_that_leaves_a_photo_fails_with_the_remaining_count(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """P-PHOTO-1: a wipe that cannot delete everything is `failed`, never silently `done`."""
    stuck = kiosk.device_dir / "DCIM" / "locked" / "IMG_9999.JPG"
    stuck.parent.mkdir()
    stuck.write_bytes(b"photo")
    with undeletable(stuck):
        cmd_id = peer.send(kiosk.device_id, "wipe_photos")
        ack = peer.wait_ack(cmd_id, "failed")
    assert ack.result["remaining"] == 1
    assert ack.result["deleted"] == 5
    assert "1 photo(s) remain" in ack.detail
    assert any("IMG_9999.JPG" in error for error in ack.result["errors"])
    assert kiosk.photos == [stuck]


def test_lost_mode_shows_the_message_and_locks_until_cleared(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """P-LOSS-3: lost mode shows the school's return message and locks; off clears it."""
    on = peer.send(
        kiosk.device_id,
        "lost_mode",
        {"enabled": True, "message": "Please return to Oakfield office", "phone": "01632 960000"},
    )
    assert dict(peer.wait_ack(on, "done").result) == {"lost_mode": True, "locked": True}
    state = kiosk.device_state()
    assert state["lost_mode"] is True and state["locked"] is True
    assert "Please return to Oakfield office" in state["lost_message"]
    assert "01632 960000" in state["lost_message"]
    assert peer.wait_report(kiosk.device_id, lambda r: bool(r.lost_mode and r.locked))

    off = peer.send(kiosk.device_id, "lost_mode", {"enabled": False})
    peer.wait_ack(off, "done")
    state = kiosk.device_state()
    assert state["lost_mode"] is False and state["locked"] is False
    assert peer.wait_report(kiosk.device_id, lambda r: r.lost_mode is False)


def test_lost_mode_without_a_message_names_the_school(kiosk: Kiosk, peer: ServerPeer) -> None:
    """P-LOSS-3: the default return message names the school."""
    peer.wait_ack(peer.send(kiosk.device_id, "lost_mode", {"enabled": True}), "done")
    assert "Oakfield Primary" in kiosk.device_state()["lost_message"]


def test_lock_with_a_message(kiosk: Kiosk, peer: ServerPeer) -> None:
    peer.wait_ack(peer.send(kiosk.device_id, "lock", {"message": "Assembly time"}), "done")
    state = kiosk.device_state()
    assert state["locked"] is True and state["lock_message"] == "Assembly time"
    assert peer.wait_report(kiosk.device_id, lambda r: r.locked is True)


def test_desired_state_is_applied_verified_and_reported(kiosk: Kiosk, peer: ServerPeer) -> None:
    document = kiosk_document(3)
    peer.send_desired(kiosk.device_id, document, version=3)
    report = peer.wait_report(kiosk.device_id, lambda r: r.profile_version == 3)
    assert report.profile_sha256 == document["sha256"] == kiosk_document_sha256(document)
    assert kiosk.device_state()["profile"] == document
    # P-PROFILE-1: every setting of the profile, each with what the device did about it.
    assert report.settings_sha256 == document["sha256"]
    states = {s["setting"]: (s["state"], s["detail"]) for s in report.settings or ()}
    assert list(states) == document["settings"]
    assert {state for state, _detail in states.values()} == {"enforced"}
    assert report.passcode is True and report.storage_encrypted is True  # what it holds

    # apply_profile re-applies the desired state it holds, pinned by version and hash.
    cmd_id = peer.send(
        kiosk.device_id, "apply_profile", {"version": 3, "sha256": document["sha256"]}
    )
    ack = peer.wait_ack(cmd_id, "done")
    assert dict(ack.result) == {"profile_version": 3, "profile_sha256": document["sha256"]}

    # A version the device has not received yet is not pretended to be applied.
    missing = peer.send(kiosk.device_id, "apply_profile", {"version": 4})
    assert "has not arrived" in peer.wait_ack(missing, "failed").detail

    # An older (or replayed) desired state never rolls the device back.
    peer.send_desired(kiosk.device_id, kiosk_document(2, "ks2-chromebook"), version=2)
    peer.round_trip(kiosk.device_id)
    assert kiosk.device_state()["profile"] == document
    assert len(kiosk.operations("apply_profile")) == 2


def test_settings_the_kiosk_cannot_enforce_are_reported_as_such(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """P-PROFILE-1: an iPad profile on a kiosk: its app and passcode rules are not supported."""
    document = kiosk_document(2, "ks2-ipad")
    peer.send_desired(kiosk.device_id, document, version=2)
    report = peer.wait_report(kiosk.device_id, lambda r: r.profile_version == 2)
    states = {s["setting"]: (s["state"], s["detail"]) for s in report.settings or ()}
    assert states["apps.allow_list"] == (
        "not_supported",
        "iPad app settings do not apply to the kiosk client's Linux devices",
    )
    assert states["passcode.required"][0] == "not_supported"
    assert states["device.bluetooth_changes"][0] == "enforced"


def test_desired_state_with_a_tampered_document_is_not_applied(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    document = kiosk_document(5)
    document["kiosk"] = {"url": "https://evil.example"}  # sha256 no longer matches
    peer.send_desired(kiosk.device_id, document, version=5)
    report = peer.wait_report(kiosk.device_id, lambda r: "profile_error" in r.extra)
    assert "sha256" in report.extra["profile_error"]
    assert report.profile_version is None
    assert kiosk.device_state()["profile"] is None
    # Nothing of the refused document is claimed: each setting it asked for failed.
    assert report.settings_sha256 == document["sha256"]
    assert {s["state"] for s in report.settings or ()} == {"failed"}


@pytest.mark.mosquitto
def test_a_kiosk_on_the_machines_own_mosquitto(
    mosquitto_addr: tuple[str, int], tmp_path: Path
) -> None:
    """The same agent against the system broker at 127.0.0.1:1883 (anonymous listener)."""
    pool = IdentityPool(list(identities(1, prefix=f"sys-{secrets.token_hex(3)}")))
    server = FakeServer(pool, mosquitto_addr[1])
    peer = ServerPeer(mosquitto_addr[1], server)
    try:
        config = enrol(server.payload(), platform="simulated", data_dir=tmp_path / "k")
        kiosk = Kiosk(config, peer)
        kiosk.start()
        try:
            ack = peer.wait_ack(peer.send(kiosk.device_id, "wipe_photos"), "done")
            assert ack.result == {"deleted": 5, "remaining": 0}
        finally:
            kiosk.stop()
    finally:
        peer.close()
        server.close()


def test_a_report_over_the_limit_is_not_sent_and_the_connection_is_kept(
    kiosk_factory: KioskFactory, peer: ServerPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """An inventory that signs to more than the report limit is logged and not published: the
    server would refuse it, and the broker would drop the connection for it again and again."""
    kiosk = kiosk_factory(start=False)
    state_file = kiosk.device_dir / "state.json"
    state = json.loads(state_file.read_text())
    state["apps"] = [f"{n:05d}" + "é" * 195 for n in range(5000)]  # two bytes a character
    state_file.write_text(json.dumps(state))
    agent = Agent(load_config(kiosk.data_dir))
    kiosk.agent = agent
    agent.start()
    assert agent.wait_connected(10)
    cmd_id = peer.send(kiosk.device_id, "report_inventory")
    # Building and signing 5,000 apps' report is slow on a busy 2-core machine.
    ack = peer.wait_ack(cmd_id, "failed", timeout=60)
    assert "too large" in ack.detail
    with pytest.raises(AssertionError):
        peer.wait_report(kiosk.device_id, timeout=1.0)
    assert agent.connected
    assert f"{kiosk.device_id}: not sending a" in caplog.text
    assert f"limit is {MAX_REPORT_BYTES} bytes" in caplog.text


def test_the_kiosk_reports_the_network_it_is_on(kiosk: Kiosk, peer: ServerPeer) -> None:
    """P-REG-3: a report says which Wi-Fi the device is on, so the server can tell off-site."""
    state_file = kiosk.device_dir / "state.json"
    state = json.loads(state_file.read_text())
    state["network"] = {"ssid": "Costa-Guest", "gateway": "192.168.4.1"}
    state_file.write_text(json.dumps(state))  # the device moved to another Wi-Fi
    peer.send(kiosk.device_id, "report_inventory")
    report = peer.wait_report(kiosk.device_id, lambda r: r.network is not None)
    assert dict(report.network or {}) == {"ssid": "Costa-Guest", "gateway": "192.168.4.1"}


def test_the_kiosk_checks_in_over_https_with_its_network(
    kiosk: Kiosk, peer: ServerPeer, server: FakeServer
) -> None:
    """P-TROLLEY-2: with its reports the kiosk checks in directly, so its public address is seen."""
    state_file = kiosk.device_dir / "state.json"
    state = json.loads(state_file.read_text())
    state["network"] = {"ssid": "Costa-Guest", "gateway": "192.168.4.1"}
    state_file.write_text(json.dumps(state))
    agent = kiosk.agent
    assert agent is not None
    # The check-in after the start-up report has gone (or is going); one interval on, a new
    # report is allowed its own.
    wait_until(lambda: server.check_ins)
    agent.check_ins.interval = 0
    peer.send(kiosk.device_id, "report_inventory")
    body, address = wait_until(
        lambda: next((c for c in server.check_ins if c[0].get("ssid") == "Costa-Guest"), None)
    )
    assert body["gateway"] == "192.168.4.1" and body["device_id"] == kiosk.device_id
    assert address == "127.0.0.1"
    # Each check-in is newer than the one before, as the server requires.
    stamps = [c[0]["iat"] for c in server.check_ins]
    assert stamps == sorted(set(stamps))
