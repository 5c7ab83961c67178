"""The client sends the packets waiting for its socket together: fewer writes, nothing lost,
nothing out of order, on both brokers."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from paho.mqtt import client as paho

from mqtt import client as trolley_client
from mqtt import topics
from tests.mqtt.conftest import BrokerHandle, PeerFactory
from tests.mqtt.support import QUIET
from tests.mqtt.test_broker_contract import device_peer, server_peer

BURST = 300


def test_every_puback_of_a_burst_reaches_the_broker(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    """A device sent 300 commands back to back acknowledges every one, however many of its
    PUBACKs went out in one write: its session, resumed, is sent none of them again. (How many
    writes they take depends on how the broker paces them; which packets are joined is the next
    tests'.)"""
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    server = server_peer(peer, broker)
    sent = [f"command {n}".encode() for n in range(BURST)]
    for info in [server.client.publish(topics.cmd_topic("dev-a"), body, qos=1) for body in sent]:
        info.wait_for_publish(timeout=10)
    assert [device.expect().payload for _ in sent] == sent
    device.settle()
    device.close()
    again = device_peer(peer, broker, "dev-a")
    assert again.received(wait=3 * QUIET) == []


class _Probe:
    """What the client handed its socket, a write at a time, taking at most `most` bytes each."""

    def __init__(self, most: int = 1 << 20) -> None:
        self.most = most
        self.writes: list[bytes] = []

    def __call__(self, data: bytes) -> int:
        taken = bytes(data[: self.most])
        self.writes.append(taken)
        return len(taken)


def _queued(client: Any, *packets: tuple[int, bytes, int, Any]) -> None:
    for command, body, qos, info in packets:
        client._packet_queue(command, body, 0 if info is None else info.mid, qos, info)


def _puback(mid: int) -> tuple[int, bytes, int, None]:
    return (paho.PUBACK, struct.pack("!BBH", paho.PUBACK, 2, mid), 1, None)


def _publish(qos: int, body: bytes, info: Any = None) -> tuple[int, bytes, int, Any]:
    return (
        paho.PUBLISH | (qos << 1),
        bytes([paho.PUBLISH | (qos << 1), len(body)]) + body,
        qos,
        info,
    )


def test_only_packets_paho_does_nothing_more_with_are_joined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PUBACKs and QoS 1 PUBLISHes go in one write; a QoS 0 PUBLISH goes alone, since writing it
    is what tells its sender it went (`on_publish`); the order never changes."""
    client: Any = trolley_client.make_client("dev-a")
    probe = _Probe()
    monkeypatch.setattr(client, "_sock_send", probe)
    published: list[int] = []
    client.on_publish = lambda _c, _u, mid, _rc, _p: published.append(mid)
    info = paho.MQTTMessageInfo(7)
    packets = [_puback(1), _puback(2), _publish(1, b"one"), _publish(0, b"zero", info), _puback(3)]
    _queued(client, *packets)
    assert client._packet_write() == paho.MQTT_ERR_SUCCESS
    bodies = [body for _command, body, _qos, _info in packets]
    assert probe.writes == [b"".join(bodies[:3]), bodies[3], bodies[4]]
    assert published == [7] and info.is_published()
    assert not client.want_write()


def test_a_write_the_socket_takes_in_part_goes_on_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A socket taking five bytes at a time, and joined writes capped at `WRITE_SIZE`: what
    reaches the socket is every packet, whole and in order."""
    client: Any = trolley_client.make_client("dev-a")
    probe = _Probe(most=5)
    monkeypatch.setattr(client, "_sock_send", probe)
    monkeypatch.setattr(trolley_client._Client, "WRITE_SIZE", 40)
    packets = [_puback(n) for n in range(30)] + [_publish(1, b"x" * 50) for _ in range(3)]
    _queued(client, *packets)
    while client.want_write():
        assert client._packet_write() == paho.MQTT_ERR_SUCCESS
    assert b"".join(probe.writes) == b"".join(body for _c, body, _q, _i in packets)
    assert all(len(write) <= 5 for write in probe.writes)
