"""The MQTT 3.1.1 rules checked on every packet before the embedded broker decodes it."""

from __future__ import annotations

import struct

import pytest

from mqtt.errors import ProtocolViolationError
from mqtt.wire_rules import check_client_packet, check_topic_filter
from tests.mqtt import wire


def _split(packet: bytes) -> tuple[int, bytes]:
    """First byte and body of a packet whose remaining length fits one byte."""
    assert packet[1] < 128
    return packet[0], packet[2:]


LEGAL = {
    "connect": wire.connect(
        "dev-a", username="u", password="p", clean=False, will=wire.Will("t/s", b"off", 1, True)
    ),
    "publish-0": wire.publish("t/a", b"x"),
    "publish-1": wire.publish("t/a", b"x", qos=1, packet_id=7, retain=True, dup=True),
    "publish-2": wire.publish("t/a", b"", qos=2, packet_id=8),
    "puback": wire.puback(7),
    "pubrec": bytes([0x50, 2, 0, 7]),
    "pubrel": bytes([0x62, 2, 0, 7]),
    "pubcomp": bytes([0x70, 2, 0, 7]),
    "subscribe": wire.subscribe(3, ("t/+/a", 1), ("t/#", 0), ("#", 2)),
    "unsubscribe": bytes([0xA2])
    + wire.remaining_length(7)
    + struct.pack("!H", 4)
    + wire.string("t/#"),
    "pingreq": wire.PINGREQ_PACKET,
    "disconnect": wire.DISCONNECT_PACKET,
}


@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_packets_pass(name: str) -> None:
    first, body = _split(LEGAL[name])
    check_client_packet(first, body, first=name == "connect")


ILLEGAL = {
    "publish before connect": (wire.publish("t", b"x"), True),
    "second connect": (wire.connect("again"), False),
    "connack from a client": (b"\x20\x02\x00\x00", False),
    "reserved type 15": (b"\xf0\x00", False),
    "pubrel flags": (bytes([0x60, 2, 0, 7]), False),
    "puback too long": (bytes([0x40, 3, 0, 7, 0]), False),
    "pingreq with a body": (b"\xc0\x01\x00", False),
    "qos 3": (wire.publish("t", b"x", qos=3), False),
    "dup at qos 0": (wire.publish("t", b"x", dup=True), False),
    "empty topic": (wire.publish("", b"x"), False),
    "packet id 0": (wire.publish("t", b"x", qos=1, packet_id=0), False),
    "nul in topic": (wire.publish("t/\x00", b"x"), False),
    "surrogate in topic": (wire.publish(b"t/\xed\xa0\x80", b"x"), False),
    "subscribe without filters": (bytes([0x82, 2, 0, 1]), False),
    "subscribe qos byte": (wire.subscribe(1, ("t", 3)), False),
    "password without user": (wire.connect("c", password="p"), True),
    "will qos without will": (wire.connect("c")[:9] + b"\x0a" + wire.connect("c")[10:], True),
    "connect with trailing bytes": (
        bytes([0x10, len(wire.connect("c")) - 2 + 1]) + wire.connect("c")[2:] + b"!",
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(ILLEGAL))
def test_illegal_packets_are_refused_with_the_rule(name: str) -> None:
    packet, first = ILLEGAL[name]
    head, body = _split(packet)
    with pytest.raises(ProtocolViolationError):
        check_client_packet(head, body, first=first)


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a#", "a/b+", "+a/b"])
def test_bad_topic_filters(topic_filter: str) -> None:
    with pytest.raises(ProtocolViolationError):
        check_topic_filter(topic_filter)
