"""Trolley's broker configuration under abuse: size limits, session takeover, idle sockets and
per-client queue caps, on the embedded broker and on Mosquitto from `trolley mqtt-config`."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import psutil
import pytest

from mqtt import topics
from mqtt.errors import BrokerConfigError
from mqtt.limits import MAX_PACKET_BYTES, MAX_REPORT_BYTES, BrokerLimits
from tests.mqtt import wire
from tests.mqtt.conftest import (
    EmbeddedHandle,
    MosquittoHandle,
    PeerFactory,
    TrolleyBroker,
    TrolleyBrokerFactory,
    WireFactory,
)
from tests.mqtt.support import Peer, login, wait_until
from tests.mqtt.wire import Wire

SERVER = login("trolley_server")


def _server_wire(wires: WireFactory, broker: TrolleyBroker) -> Wire:
    connection = wires(broker.port)
    connack = connection.login(f"w-{uuid.uuid4().hex[:8]}", **SERVER)
    assert connack.body[1] == 0
    return connection


def _device(peer: PeerFactory, broker: TrolleyBroker, client_id: str, user: str) -> Peer:
    return peer(broker.device_port, client_id, tls=broker.device_tls, **login(user))


def _rss(broker: TrolleyBroker) -> int:
    """The broker's resident memory (the embedded broker shares this process)."""
    pid = broker.process.pid if isinstance(broker, MosquittoHandle) and broker.process else None
    return int(psutil.Process(pid or os.getpid()).memory_info().rss)


def test_a_packet_over_the_limit_closes_the_connection_and_reaches_nobody(
    trolley_broker: TrolleyBroker, peer: PeerFactory, wires: WireFactory
) -> None:
    """A 2 MiB publish is refused; the largest legitimate message (a report) still flows."""
    listener = peer(trolley_broker.port, "listener", clean_session=True, **SERVER)
    assert not listener.connect().is_failure
    listener.subscribe(topics.reported_topic("dev-a"))
    sender = _server_wire(wires, trolley_broker)
    sender.send(wire.publish(topics.reported_topic("dev-a"), b"r" * MAX_REPORT_BYTES, qos=1))
    assert sender.expect(wire.PUBACK, timeout=10).kind == wire.PUBACK
    assert len(listener.expect(timeout=10).payload) == MAX_REPORT_BYTES
    flooder = _server_wire(wires, trolley_broker)
    flooder.send(wire.publish(topics.reported_topic("dev-a"), b"x" * MAX_PACKET_BYTES, qos=1))
    assert flooder.closed_within(10.0), "an oversize packet was accepted"
    assert listener.received(wait=1.0) == []


def test_connects_that_never_end_are_cut_off_before_they_are_read(
    trolley_broker: TrolleyBroker, wires: WireFactory
) -> None:
    """Sockets announcing a 100 MB CONNECT are closed at once, not buffered."""
    before = _rss(trolley_broker)
    announced = 100 * 1024 * 1024
    header = b"\x10" + wire.remaining_length(announced)
    closed = 0
    for _ in range(3):
        attacker = wires(trolley_broker.port)
        attacker.send(header)
        sent = 0
        try:
            attacker.sock.settimeout(5.0)
            while sent < 16 * 1024 * 1024:
                attacker.sock.sendall(b"\x00" * 65536)
                sent += 65536
        except OSError:
            pass
        closed += attacker.closed_within(5.0)
    assert closed == 3
    grown = (_rss(trolley_broker) - before) / 2**20
    assert grown < 32, f"the broker grew by {grown:.0f} MB"


def test_a_device_cannot_take_over_another_devices_session(
    trolley_broker: TrolleyBroker, peer: PeerFactory
) -> None:
    """A device logging in under another's client id neither disconnects it nor ends its
    queued commands: the embedded broker refuses the login; Mosquitto's device listener
    replaces the client id by the username, so the intruder only ever gets its own session."""
    device_b = _device(peer, trolley_broker, "dev-b", "dev-b")
    assert not device_b.connect().is_failure
    device_b.subscribe(topics.cmd_topic("dev-b"))
    device_b.close()
    server = peer(trolley_broker.port, "w-1", clean_session=True, **SERVER)
    assert not server.connect().is_failure
    server.publish(topics.cmd_topic("dev-b"), b"queued-for-b")

    intruder = peer(
        trolley_broker.device_port,
        "dev-b",
        clean_session=True,
        tls=trolley_broker.device_tls,
        **login("dev-a"),
    )
    refused = intruder.connect().is_failure
    assert refused == (trolley_broker.name == "embedded")

    again = _device(peer, trolley_broker, "dev-b", "dev-b")
    assert not again.connect().is_failure
    assert again.expect().payload == b"queued-for-b"
    intruder_again = peer(
        trolley_broker.device_port,
        "dev-b",
        clean_session=False,
        tls=trolley_broker.device_tls,
        **login("dev-a"),
    )
    intruder_again.connect()
    server.publish(topics.cmd_topic("dev-b"), b"while-online")
    assert again.expect().payload == b"while-online"  # still connected


def test_sockets_that_never_send_connect_are_closed(tmp_path: Path, wires: WireFactory) -> None:
    """The embedded broker closes a socket that has not sent CONNECT within its timeout.
    Mosquitto 2.0 has no such setting (it closes one after ~90 s: the slow test below)."""
    broker = EmbeddedHandle(tmp_path, limits=BrokerLimits(connect_timeout=2.0))
    idle = [wires(broker.port) for _ in range(200)]
    half = wires(broker.port)
    half.send(wire.connect("half", **SERVER)[:12])  # a CONNECT that stops half-way
    started = time.monotonic()
    assert half.closed_within(5.0)
    assert all(connection.closed_within(1.0) for connection in idle)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.5, "closed before the timeout"
    ok = wires(broker.port)
    assert ok.login("after", **SERVER).body[1] == 0
    broker.close()


@pytest.mark.slow
def test_mosquitto_closes_sockets_that_never_send_connect(
    private_mosquitto: MosquittoHandle, wires: WireFactory
) -> None:
    """Mosquitto 2.0 gives a new connection its 60 s default keep-alive: closed after ~90 s."""
    idle = [wires(private_mosquitto.port) for _ in range(50)]
    assert idle[0].closed_within(120.0)
    assert all(connection.closed_within(2.0) for connection in idle[1:])


def test_a_client_that_stops_reading_has_its_queue_capped_and_the_cap_logged(
    make_trolley_broker: TrolleyBrokerFactory,
    peer: PeerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Messages for a client over its queue cap are dropped, the oldest kept, and logged."""
    cap = 30
    broker = make_trolley_broker(BrokerLimits(max_queued_messages=cap))
    device = _device(peer, broker, "dev-a", "dev-a")
    assert not device.connect().is_failure
    device.subscribe(topics.cmd_topic("dev-a"))
    device.close()
    server = peer(broker.port, "w-1", clean_session=True, max_inflight=0, **SERVER)
    assert not server.connect().is_failure
    caplog.set_level(logging.WARNING, logger="mqtt.broker")
    for number in range(3 * cap):
        server.publish(topics.cmd_topic("dev-a"), str(number).encode())
    again = _device(peer, broker, "dev-a", "dev-a")
    assert not again.connect().is_failure
    # The queue first (as long as a busy machine takes), then a moment for Mosquitto's window.
    kept = again.received_until(lambda got: len(got) >= cap, timeout=30) + again.received(1.0)
    got = [int(payload) for _topic, payload in kept]
    # Mosquitto also keeps what fits in its in-flight window (20) on top of the queue.
    window = 20 if broker.name == "mosquitto" else 0
    assert cap <= len(got) <= cap + window, got
    assert got == sorted(got) and got[0] == 0
    if isinstance(broker, EmbeddedHandle):
        assert any("dev-a" in r.getMessage() and "dropp" in r.getMessage() for r in caplog.records)
    else:
        wait_until(lambda: "dropped" in broker.log.read_text())


@pytest.mark.parametrize("name", ["max_packet_bytes", "connect_timeout", "max_queued_messages"])
def test_every_limit_is_positive(name: str) -> None:
    with pytest.raises(BrokerConfigError, match=name):
        BrokerLimits(**{name: 0})
