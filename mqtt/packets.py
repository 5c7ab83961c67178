"""MQTT 3.1.1 packets as bytes, for clients that speak the protocol without paho: the light
devices of the benchmarks, and the conformance cases, which also send what paho never would."""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


def remaining_length(length: int) -> bytes:
    """The variable-length encoding of a packet's remaining length (MQTT 3.1.1, 2.2.3)."""
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def string(value: str | bytes) -> bytes:
    """A length-prefixed string; bytes are sent as they are (to send invalid UTF-8)."""
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def frame(first_byte: int, body: bytes) -> bytes:
    """A whole packet: fixed header and body."""
    return bytes([first_byte]) + remaining_length(len(body)) + body


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def connect(
    client_id: str | bytes,
    *,
    username: str | None = None,
    password: str | None = None,
    clean: bool = True,
    keepalive: int = 60,
    will: Will | None = None,
) -> bytes:
    """A CONNECT packet."""
    flags = 0x02 if clean else 0
    payload = string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += string(will.topic) + string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += string(username)
    if password is not None:
        flags |= 0x40
        payload += string(password)
    body = string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return frame(CONNECT << 4, body)


def publish(
    topic: str | bytes,
    payload: bytes,
    *,
    qos: int = 0,
    packet_id: int = 1,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    """A PUBLISH packet; `qos` 3 is sent as asked (a protocol violation)."""
    first = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return frame(first, body)


def subscribe(packet_id: int, *filters: tuple[str, int]) -> bytes:
    """A SUBSCRIBE packet."""
    body = struct.pack("!H", packet_id) + b"".join(string(f) + bytes([q]) for f, q in filters)
    return frame((SUBSCRIBE << 4) | 0x02, body)


def puback(packet_id: int) -> bytes:
    """A PUBACK packet."""
    return frame(PUBACK << 4, struct.pack("!H", packet_id))
