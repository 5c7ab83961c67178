"""Faults: offline devices, duplicates, restarts mid-command, signals, factory reset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk_client.cli import main
from kiosk_client.config import SimulatedSettings, load_config
from kiosk_client.enrol import enrol
from kiosk_client.errors import NotEnrolledError
from kiosk_client.simulator import FleetSimulator, enrol_fleet
from mqtt.broker import EmbeddedBroker
from mqtt.passwords import write_password_file
from tests.helpers import free_port
from tests.kiosk_client.conftest import Kiosk, KioskFactory
from tests.kiosk_client.support import (
    SERVER_PASSWORD,
    SERVER_USER,
    TIMEOUT,
    FakeServer,
    IdentityPool,
    ServerPeer,
    identities,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


def spawn_kiosk(kiosk: Kiosk) -> subprocess.Popen[bytes]:
    """`trolley-kiosk run` for this kiosk, as its own process."""
    with (kiosk.data_dir.parent / f"{kiosk.data_dir.name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kiosk_client.cli", "run", "--data-dir", str(kiosk.data_dir)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


def slow(kiosk: Kiosk, seconds: float) -> None:
    """Make each device operation take `seconds` (the simulated platform's delay)."""
    kiosk.set(simulated=SimulatedSettings(root=kiosk.device_dir, operation_delay=seconds))


def ledger(kiosk: Kiosk) -> dict[str, dict[str, object]]:
    state = json.loads((kiosk.data_dir / "agent-state.json").read_text())
    return {record["cmd_id"]: record for record in state["commands"]}


def test_a_device_offline_when_its_wipe_is_sent_is_wiped_when_it_reconnects(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """P-PHOTO-1: the broker keeps the wipe for the persistent session until the kiosk is back."""
    kiosk.stop()
    cmd_id = peer.send(kiosk.device_id, "wipe_photos")
    assert peer.acks_for(cmd_id) == []
    assert len(kiosk.photos) == 5
    kiosk.start()
    ack = peer.wait_ack(cmd_id, "done")
    assert ack.result["deleted"] == 5
    assert kiosk.photos == []


def test_duplicate_delivery_is_executed_once_and_re_acked(kiosk: Kiosk, peer: ServerPeer) -> None:
    cmd_id, envelope = peer.command_envelope(kiosk.device_id, "wipe_photos")
    peer.publish_raw(kiosk.device_id, envelope)
    peer.publish_raw(kiosk.device_id, envelope)
    wait_until(
        lambda: [a.state.value for a in peer.acks_for(cmd_id)] == ["received", "done", "done"]
    )
    assert len(kiosk.operations("wipe_photos")) == 1

    # The ledger survives a restart: the same delivery later is still not run again.
    kiosk.stop()
    kiosk.start()
    peer.publish_raw(kiosk.device_id, envelope)
    wait_until(lambda: len(peer.acks_for(cmd_id)) == 4)
    assert peer.acks_for(cmd_id)[-1].state.value == "done"
    assert len(kiosk.operations("wipe_photos")) == 1


def test_a_kiosk_killed_mid_command_does_not_run_it_twice(
    kiosk_factory: KioskFactory, peer: ServerPeer
) -> None:
    kiosk = kiosk_factory(start=False)
    slow(kiosk, 3.0)
    process = spawn_kiosk(kiosk)
    try:
        peer.wait_report(kiosk.device_id)
        cmd_id, envelope = peer.command_envelope(kiosk.device_id, "wipe_photos")
        peer.publish_raw(kiosk.device_id, envelope)
        peer.wait_ack(cmd_id, "received")
        wait_until(lambda: kiosk.operations("wipe_photos"))  # started, not finished
        assert ledger(kiosk)[cmd_id]["stage"] == "executing"
        process.send_signal(signal.SIGKILL)
        process.wait(TIMEOUT)

        process = spawn_kiosk(kiosk)
        ack = peer.wait_ack(cmd_id, "failed", timeout=20)
        assert "interrupted" in ack.detail and ack.result == {"interrupted": True}
        # Delivered once more (as the server's outbox would), it is re-acked, not re-run.
        peer.publish_raw(kiosk.device_id, envelope)
        wait_until(lambda: [a.state.value for a in peer.acks_for(cmd_id)][-2:] == ["failed"] * 2)
        peer.round_trip(kiosk.device_id)
        assert len(kiosk.operations("wipe_photos")) == 1
    finally:
        process.kill()
        process.wait(TIMEOUT)


def test_a_command_persisted_but_not_started_runs_after_a_restart(
    kiosk: Kiosk, peer: ServerPeer
) -> None:
    """Killed between persisting and executing: the command never started, so it runs now."""
    cmd_id, envelope = peer.command_envelope(kiosk.device_id, "wipe_photos")
    peer.publish_raw(kiosk.device_id, envelope)
    peer.wait_ack(cmd_id, "done")
    kiosk.stop()
    # Rewind the ledger to the moment after the write and before the handler started.
    path = kiosk.data_dir / "agent-state.json"
    state = json.loads(path.read_text())
    for record in state["commands"]:
        if record["cmd_id"] == cmd_id:
            record.update(stage="received", detail="", result={})
    path.write_text(json.dumps(state))
    (kiosk.device_dir / "DCIM" / "IMG_NEW.JPG").write_bytes(b"new")
    kiosk.start()
    wait_until(lambda: [a.state.value for a in peer.acks_for(cmd_id)].count("done") == 2)
    assert kiosk.photos == []
    assert len(kiosk.operations("wipe_photos")) == 2


def test_sigterm_finishes_the_command_in_hand_then_exits_cleanly(
    kiosk_factory: KioskFactory, peer: ServerPeer
) -> None:
    kiosk = kiosk_factory(start=False)
    slow(kiosk, 1.0)
    process = spawn_kiosk(kiosk)
    try:
        peer.wait_status(kiosk.device_id, b"online")
        peer.wait_report(kiosk.device_id)
        cmd_id = peer.send(kiosk.device_id, "wipe_photos")
        peer.wait_ack(cmd_id, "received")
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        process.kill()
    peer.wait_ack(cmd_id, "done")
    peer.wait_status(kiosk.device_id, b"offline")
    assert kiosk.photos == []


def test_factory_reset_not_confirmed_by_the_server_erases_nothing(
    kiosk: Kiosk, peer: ServerPeer, server: FakeServer
) -> None:
    """P-LEAVE-1: the kiosk erases only on the server's signed confirmation of this command."""
    cases = [
        ("decline", "declined"),
        ("error", "could not confirm"),
        ("forged", "does not verify"),
        ("other_cmd", "another command"),
    ]
    for mode, reason in cases:
        server.reset_mode[kiosk.device_id] = mode
        cmd_id = peer.send(kiosk.device_id, "factory_reset")
        ack = peer.wait_ack(cmd_id, "failed")
        assert reason in ack.detail, mode
        assert ack.result["erased"] is False
        assert server.reset_requests[-1]["cmd_id"] == cmd_id
    assert len(server.reset_requests) == len(cases)
    assert len(kiosk.photos) == 5
    assert kiosk.operations("factory_reset") == []
    assert load_config(kiosk.data_dir).device_id == kiosk.device_id
    peer.round_trip(kiosk.device_id)  # still enrolled and working


def test_confirmed_factory_reset_erases_the_device_and_forgets_the_enrolment(
    kiosk: Kiosk, peer: ServerPeer, server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """P-LEAVE-1: a confirmed reset wipes photos and settings, then the device must re-enrol."""
    kiosk.set(report_interval=kiosk.config.report_interval)  # nothing else changes
    peer.wait_ack(peer.send(kiosk.device_id, "lock", {"message": "x"}), "done")
    server.reset_mode[kiosk.device_id] = "confirm"
    cmd_id = peer.send(kiosk.device_id, "factory_reset")
    ack = peer.wait_ack(cmd_id, "done")
    assert ack.result == {"erased": True}
    assert kiosk.agent is not None
    wait_until(lambda: kiosk.agent is not None and kiosk.agent.forgotten)
    assert kiosk.photos == []
    state = kiosk.device_state()
    assert state["locked"] is False and state["profile"] is None
    left = sorted(p.name for p in kiosk.data_dir.iterdir())
    assert left == ["device"], left
    with pytest.raises(NotEnrolledError):
        load_config(kiosk.data_dir)
    assert main(["run", "--data-dir", str(kiosk.data_dir)]) == 5
    assert "enrol first" in capsys.readouterr().err


def test_kiosks_and_the_simulator_reconnect_after_a_broker_restart(tmp_path: Path) -> None:
    """paho's backoff brings a kiosk back, the simulator's own backoff its fleet; a wipe queued
    for a kiosk that was away across the restart is still delivered."""
    pool = list(identities(4, prefix="rst"))
    write_password_file(
        tmp_path / "passwd",
        {SERVER_USER: SERVER_PASSWORD, **{i.device_id: i.password for i in pool}},
    )
    broker = EmbeddedBroker(
        password_file=tmp_path / "passwd", data_dir=tmp_path / "broker", port=free_port()
    )
    broker.start()
    server = FakeServer(IdentityPool(pool), broker.port)
    peer = ServerPeer(broker.port, server)
    kiosk = Kiosk(
        enrol(server.payload(), platform="simulated", data_dir=tmp_path / "k", fsync=False), peer
    )
    away = Kiosk(
        enrol(server.payload(), platform="simulated", data_dir=tmp_path / "a", fsync=False), peer
    )
    enrol_fleet([server.payload() for _ in range(2)], tmp_path / "fleet")
    fleet = FleetSimulator(tmp_path / "fleet")
    try:
        kiosk.start()
        away.start()
        away.stop()
        fleet.start()
        assert fleet.wait_connected(TIMEOUT)
        wipe = peer.send(away.device_id, "wipe_photos")  # queued for the absent kiosk
        peer.close()
        broker.stop()
        broker.start()
        peer = ServerPeer(broker.port, server)
        assert kiosk.agent is not None
        wait_until(lambda: kiosk.agent is not None and kiosk.agent.connected, timeout=15)
        assert fleet.wait_connected(timeout=15)
        peer.round_trip(kiosk.device_id)
        for device_id in fleet.device_ids:
            peer.round_trip(device_id)
        away.start()
        peer.wait_ack(wipe, "done")
        assert away.photos == []
    finally:
        fleet.stop()
        kiosk.stop()
        away.stop()
        peer.close()
        server.close()
        broker.stop()
