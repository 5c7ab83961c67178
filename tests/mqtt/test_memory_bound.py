"""The embedded broker's memory stays bounded while a client stops reading for ten minutes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mqtt import topics
from mqtt.limits import MAX_QUEUED_BYTES
from mqtt.passwords import write_password_file
from tests.helpers import free_port
from tests.mqtt import wire
from tests.mqtt.conftest import PeerFactory
from tests.mqtt.support import PASSWORDS, login, wait_for_port
from tests.mqtt.wire import Wire

ROOT = Path(__file__).resolve().parents[2]
STALL_SECONDS = float(os.environ.get("TROLLEY_STALL_SECONDS", "540"))
PAYLOAD = 256 * 1024
# At most 4 MB/s offered: ten minutes push 2.4 GB through the broker, which must keep none of
# it beyond the stalled client's cap.
RATE = 16
# The documented bound: the cap on what one client's backlog holds, twice over for the copies
# a message has while it is being written and the interpreter's own slack.
BOUND = 2 * MAX_QUEUED_BYTES


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[tuple[int, psutil.Process, Path]]:
    """The embedded broker in a process of its own; its port, process and log."""
    port = free_port()
    write_password_file(tmp_path / "passwd", PASSWORDS)
    log = tmp_path / "broker.log"
    command = [sys.executable, "-m", "tests.mqtt.broker_process", str(port)]
    command += [str(tmp_path / "passwd"), str(tmp_path / "data")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield port, psutil.Process(process.pid), log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(STALL_SECONDS + 240)
def test_a_client_that_stops_reading_for_ten_minutes_cannot_grow_the_broker(
    broker_process: tuple[int, psutil.Process, Path], peer: PeerFactory
) -> None:
    """The server's session stops reading (but keeps pinging) while a device reports without
    pause: the broker caps what it holds for that client and its memory stays under the bound."""
    port, process, log = broker_process
    stalled = Wire(port)
    try:
        assert stalled.login("stalled", **login("trolley_server"), keepalive=10).body[1] == 0
        stalled.send(wire.subscribe(1, (topics.reported_topic("dev-a"), 1)))
        stalled.expect(wire.SUBACK)
        pinging = threading.Event()

        def ping() -> None:  # alive, but never reads another byte
            while not pinging.wait(4.0):
                stalled.send(wire.PINGREQ_PACKET)

        pinger = threading.Thread(target=ping, daemon=True)
        pinger.start()
        device = peer(port, "dev-a", max_inflight=20, **login("dev-a"))
        assert not device.connect().is_failure
        time.sleep(2)
        baseline = process.memory_info().rss
        peak, sent = baseline, 0
        started = time.monotonic()
        payload = os.urandom(PAYLOAD)
        while (elapsed := time.monotonic() - started) < STALL_SECONDS:
            if sent < elapsed * RATE:
                device.publish(topics.reported_topic("dev-a"), payload)
                sent += 1
            else:
                time.sleep(0.02)
            if sent % RATE == 0:
                peak = max(peak, process.memory_info().rss)
                grown = peak - baseline
                assert grown <= BOUND, f"grew {grown / 2**20:.0f} MB after {elapsed:.0f} s"
        pinging.set()
        pinger.join(10)
        print(
            f"{sent} messages ({sent * PAYLOAD / 2**20:.0f} MB) in {STALL_SECONDS:.0f} s; "
            f"broker RSS {baseline / 2**20:.0f} MB -> peak {peak / 2**20:.0f} MB "
            f"(bound +{BOUND / 2**20:.0f} MB)"
        )
        assert sent * PAYLOAD > 4 * MAX_QUEUED_BYTES, "too little was offered to test the cap"
        assert "is not taking its messages" in log.read_text()
        # Everyone else is still served.
        other = peer(port, "watcher", clean_session=True, **login("trolley_server"))
        assert not other.connect().is_failure
        other.subscribe(topics.reported_topic("dev-a"))
        device.publish(topics.reported_topic("dev-a"), b"still here")
        assert other.expect().payload == b"still here"
    finally:
        stalled.close()
