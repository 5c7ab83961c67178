"""The fleet simulator: hundreds of simulated devices in one process, a few threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk_client.config import ENV_BROKER_URL
from kiosk_client.simulator import (
    FleetSimulator,
    enrol_fleet,
    enrolled_device_dirs,
    read_payload_file,
)
from tests.kiosk_client.conftest import FLEET_SIZE, BrokerHandle
from tests.kiosk_client.support import FakeServer, Identity, IdentityPool, ServerPeer, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, identity_list: list[Identity]
) -> Iterator[tuple[FakeServer, Path]]:
    """200 simulated devices enrolled once from a file of codes; each test picks the broker."""
    server = FakeServer(pool=IdentityPool(identity_list[-FLEET_SIZE:]), broker_port=1)
    base = tmp_path_factory.mktemp("fleet")
    codes = base / "codes.txt"
    codes.write_text(
        "# one enrolment code per line\n"
        + "\n".join(server.payload(f"OAK-{n:04d}") for n in range(FLEET_SIZE))
        + "\n"
    )
    fleet_dir = base / "devices"
    assert len(enrol_fleet(read_payload_file(codes), fleet_dir, skip_used=True)) == FLEET_SIZE
    # The same file again enrols nothing more (tokens are one-time).
    assert enrol_fleet(read_payload_file(codes), fleet_dir, skip_used=True) == []
    yield server, fleet_dir
    server.close()


def test_a_fleet_of_simulated_devices_acks_a_fan_out_wipe(
    broker: BrokerHandle, fleet: tuple[FakeServer, Path]
) -> None:
    """P-PHOTO-1 at class scale: a wipe sent to every device is done on every device."""
    server, fleet_dir = fleet
    dirs = enrolled_device_dirs(fleet_dir)
    assert len(dirs) == FLEET_SIZE
    for directory in dirs:
        for n in range(3):
            (directory / "device" / "DCIM" / f"IMG_{n}.JPG").write_bytes(b"photo")
    peer = ServerPeer(broker.port, server)
    environ = {ENV_BROKER_URL: f"mqtt://127.0.0.1:{broker.port}"}
    threads_before = threading.active_count()
    try:
        with FleetSimulator(fleet_dir, io_threads=2, workers=4, environ=environ) as simulator:
            assert threading.active_count() - threads_before == 6  # not one per device
            assert simulator.wait_connected(timeout=30), f"{simulator.connected_count} ready"
            started = time.monotonic()
            cmd_ids = peer.send_to_all(simulator.device_ids, "wipe_photos")
            for cmd_id in cmd_ids:
                ack = peer.wait_ack(cmd_id, "done", timeout=30)
                assert ack.result["remaining"] == 0 and ack.result["deleted"] >= 3
            elapsed = time.monotonic() - started
            ids = simulator.device_ids
        for device_id in ids:
            peer.wait_status(device_id, b"offline")
        assert not peer.bad
    finally:
        peer.close()
    assert all(not any((d / "device" / "DCIM").iterdir()) for d in dirs)
    print(f"fan-out wipe to {FLEET_SIZE} simulated devices on {broker.name}: {elapsed:.2f}s")


def test_the_simulator_runs_devices_enrolled_earlier_and_resumes_their_ledgers(
    tmp_path: Path, server: FakeServer, peer: ServerPeer
) -> None:
    fleet_dir = tmp_path / "fleet"
    enrol_fleet([server.payload(f"OAK-{n}") for n in range(3)], fleet_dir)
    with FleetSimulator(fleet_dir, count=2) as simulator:
        assert len(simulator.device_ids) == 2
        assert simulator.wait_connected(timeout=10)
        first = simulator.device_ids[0]
        cmd_id, envelope = peer.command_envelope(first, "ping")
        peer.publish_raw(first, envelope)
        peer.wait_ack(cmd_id, "done")
    for device_id in simulator.device_ids:
        peer.wait_status(device_id, b"offline")
    # A new process picks up the same identities; a duplicate is re-acked, not re-run.
    with FleetSimulator(fleet_dir) as simulator:
        assert len(simulator.device_ids) == 3
        assert simulator.wait_connected(timeout=10)
        peer.publish_raw(first, envelope)
        wait_until(lambda: [a.state.value for a in peer.acks_for(cmd_id)].count("done") == 2)
        # P-LEAVE-1: a confirmed factory reset takes the device out of the fleet.
        server.reset_mode[first] = "confirm"
        peer.wait_ack(peer.send(first, "factory_reset"), "done")
        wait_until(lambda: simulator.active_count == 2)
    assert len(enrolled_device_dirs(fleet_dir)) == 2


def _simulate_from_file(
    server: FakeServer, tmp_path: Path, devices: int
) -> subprocess.CompletedProcess[str]:
    """`trolley-kiosk simulate --enrol-file ... --duration 3` as a real process, enrolling
    `devices` with codes from `server`; its completed process."""
    codes = tmp_path / "codes.txt"
    codes.write_text("\n".join(server.payload(f"OAK-{n}") for n in range(devices)) + "\n")
    command = [sys.executable, "-m", "kiosk_client.cli", "simulate"]
    command += ["--data-dir", str(tmp_path / "fleet"), "--enrol-file", str(codes)]
    return subprocess.run(
        [*command, "--duration", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_trolley_kiosk_simulate_enrols_from_a_file_and_runs(
    embedded: BrokerHandle, tmp_path: Path
) -> None:
    """`trolley-kiosk simulate --enrol-file ... --duration ...` as a real process."""
    server = FakeServer(embedded.pool, embedded.port)
    peer = ServerPeer(embedded.port, server)
    try:
        result = _simulate_from_file(server, tmp_path, 3)
        assert result.returncode == 0, result.stderr
        assert "enrolled 3 new device(s)" in result.stdout
        assert "ready: 3 device(s) connected" in result.stdout
        assert len(server.device_keys) == 3
        for device_id in server.device_keys:
            peer.wait_status(device_id, b"offline")  # said on the way out
    finally:
        peer.close()
        server.close()


def test_a_device_connects_as_soon_as_it_is_enrolled_while_others_still_enrol(
    embedded: BrokerHandle, tmp_path: Path
) -> None:
    """A slow enrolment holds up no other device: the first one enrolled is online (and can
    take commands) while the server is still answering the second."""
    server = FakeServer(embedded.pool, embedded.port)
    peer = ServerPeer(embedded.port, server)
    arrived: list[str] = []
    online_first: list[bool] = []
    lock = threading.Lock()

    def hold_the_second(asset_tag: str) -> None:
        with lock:
            arrived.append(asset_tag)
            if len(arrived) == 1:
                return
        wait_until(lambda: server.device_keys, 10)  # the first answer is on its way
        first = next(iter(server.device_keys))
        try:
            peer.wait_status(first, b"online", timeout=8)
        except AssertionError:
            online_first.append(False)
        else:
            online_first.append(True)

    server.before_enrol = hold_the_second
    try:
        result = _simulate_from_file(server, tmp_path, 2)
        assert result.returncode == 0, result.stderr
        assert online_first == [True], "the first device waited for the second's enrolment"
        assert "ready: 2 device(s) connected" in result.stdout
    finally:
        peer.close()
        server.close()


def test_a_fleet_enrolment_waits_for_a_server_slow_to_answer(
    tmp_path: Path, identity_list: list[Identity]
) -> None:
    """A busy server answers a fleet's enrolments one after another: a device kept waiting
    past a kiosk's own 10 s is still enrolled, not lost with its one-time code."""

    def hold(asset_tag: str) -> None:
        if asset_tag == "OAK-SLOW":
            time.sleep(11)

    server = FakeServer(pool=IdentityPool(identity_list[:2]), broker_port=1, before_enrol=hold)
    try:
        codes = [server.payload("OAK-SLOW"), server.payload("OAK-0001")]
        assert len(enrol_fleet(codes, tmp_path / "fleet")) == 2
    finally:
        server.close()
