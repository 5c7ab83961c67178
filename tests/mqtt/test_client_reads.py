"""The client reads its socket a buffer at a time: every message whole and in order, on both
brokers."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt import client as paho

from mqtt import client as trolley_client
from mqtt import topics
from tests.mqtt.conftest import BrokerHandle, PeerFactory
from tests.mqtt.test_broker_contract import device_peer, server_peer

# Small and large alike: the large ones span several of the client's reads.
PAYLOADS = [f"ack-{n:04d}".encode() * (1 if n % 50 else 9000) for n in range(300)]


def _burst(broker: BrokerHandle, peer: PeerFactory) -> list[bytes]:
    """Send `PAYLOADS` to a device as fast as the server can; what the device received."""
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    server = server_peer(peer, broker)
    infos = [
        server.client.publish(topics.cmd_topic("dev-a"), payload, qos=1) for payload in PAYLOADS
    ]
    for info in infos:
        info.wait_for_publish(timeout=10)
    return [device.expect().payload for _ in PAYLOADS]


def test_a_burst_arrives_whole_and_in_order_in_fewer_reads_than_messages(
    broker: BrokerHandle, peer: PeerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three hundred messages, some of 90 KB, back to back: each arrives whole and in order,
    and the device's client asks its socket for data less than twice a message however the
    broker paces them (paho alone asks at least three times: first byte, length, body)."""
    reads = 0
    real = paho.Client._sock_recv

    def counting(client: paho.Client, size: int) -> bytes:
        nonlocal reads
        reads += 1
        return real(client, size)

    monkeypatch.setattr(paho.Client, "_sock_recv", counting)
    assert _burst(broker, peer) == PAYLOADS
    assert reads < 2 * len(PAYLOADS), reads


def test_packets_split_between_reads_are_put_back_together(
    broker: BrokerHandle, peer: PeerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With reads of a few bytes, packets' headers, lengths and bodies are cut at every place
    between two reads; every message still arrives whole and in order."""
    monkeypatch.setattr(trolley_client._Client, "READ_SIZE", 3)
    assert _burst(broker, peer) == PAYLOADS


def test_nothing_read_on_one_connection_is_handed_on_after_the_next(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    """Bytes a connection leaves unread go with it; after the broker restarts, the device's
    client reads the new connection from its first byte and gets what is sent."""
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    closed: Any = trolley_client.make_client("dev-b")
    closed._read, closed._read_at = b"\x30\x7fbytes of a connection that ended", 0
    closed._sock_close()
    assert (closed._read, closed._read_at) == (b"", 0)
    broker.restart()
    server = server_peer(peer, broker)
    server.publish(topics.cmd_topic("dev-a"), b"after the restart")
    assert device.expect(timeout=30).payload == b"after the restart"
