"""What MQTT 3.1.1 lets a client send: each whole packet is checked here before the embedded
broker decodes it, and any violation closes the connection (the standard's section 4.8).

Pure functions over bytes; the clause each check enforces is named in its message, so a log
line says which rule a client broke.
"""

from __future__ import annotations

import struct

from mqtt.errors import ProtocolViolationError

__all__ = ["check_client_packet", "check_topic_filter"]

CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 3, 4, 5, 6, 7
SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 8, 10, 12, 14

# The fixed-header flags each packet type must carry (2.2.2); PUBLISH's are checked apart.
_FLAGS = {
    CONNECT: 0,
    PUBACK: 0,
    PUBREC: 0,
    PUBREL: 2,
    PUBCOMP: 0,
    SUBSCRIBE: 2,
    UNSUBSCRIBE: 2,
    PINGREQ: 0,
    DISCONNECT: 0,
}
_EMPTY = (PINGREQ, DISCONNECT)
_ID_ONLY = (PUBACK, PUBREC, PUBREL, PUBCOMP)


def _fail(rule: str) -> ProtocolViolationError:
    return ProtocolViolationError(rule)


class _Body:
    """A cursor over a packet body that refuses to read past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.at

    def take(self, size: int, what: str) -> bytes:
        if size > self.left:
            raise _fail(f"{what} runs past the end of the packet (remaining length too short)")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def uint16(self, what: str) -> int:
        return int(struct.unpack("!H", self.take(2, what))[0])

    def binary(self, what: str) -> bytes:
        return self.take(self.uint16(what), what)

    def text(self, what: str) -> str:
        raw = self.binary(what)
        try:
            value = raw.decode("utf-8")  # strict: refuses surrogates and overlong forms
        except UnicodeDecodeError:
            raise _fail(f"{what} is not valid UTF-8 (MQTT-1.5.3-1)") from None
        if "\x00" in value:
            raise _fail(f"{what} contains U+0000 (MQTT-1.5.3-2)")
        return value

    def packet_id(self, what: str) -> int:
        packet_id = self.uint16(f"{what} packet identifier")
        if packet_id == 0:
            raise _fail(f"{what} has packet identifier 0 (MQTT-2.3.1-1)")
        return packet_id

    def end(self, what: str) -> None:
        if self.left:
            raise _fail(f"{what} has {self.left} byte(s) after its contents")


def check_topic_filter(topic_filter: str) -> None:
    """A subscription's topic filter: not empty, wildcards whole levels, `#` last (4.7.1)."""
    if not topic_filter:
        raise _fail("empty topic filter (MQTT-4.7.3-1)")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise _fail(f"misplaced '#' in {topic_filter!r} (MQTT-4.7.1-2)")
        if "+" in level and level != "+":
            raise _fail(f"misplaced '+' in {topic_filter!r} (MQTT-4.7.1-3)")


def _check_connect(body: _Body) -> None:
    body.text("protocol name")
    body.take(1, "protocol level")
    (flags,) = body.take(1, "connect flags")
    body.uint16("keep-alive")
    if flags & 0x01:
        raise _fail("the reserved CONNECT flag is set (MQTT-3.1.2-3)")
    will, will_qos, will_retain = flags & 0x04, (flags >> 3) & 0x03, flags & 0x20
    if not will and (will_qos or will_retain):
        raise _fail("will QoS or retain set without a will (MQTT-3.1.2-13, MQTT-3.1.2-15)")
    if will_qos == 3:
        raise _fail("will QoS 3 (MQTT-3.1.2-14)")
    if flags & 0x40 and not flags & 0x80:
        raise _fail("a password without a user name (MQTT-3.1.2-22)")
    body.text("client identifier")
    if will:
        topic = body.text("will topic")
        if not topic or "+" in topic or "#" in topic:
            raise _fail("the will topic is empty or has wildcards (MQTT-3.1.2-9, 4.7)")
        body.binary("will message")
    if flags & 0x80:
        body.text("user name")
    if flags & 0x40:
        body.binary("password")
    body.end("CONNECT")


def _check_publish(flags: int, body: _Body) -> None:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise _fail("PUBLISH with QoS 3 (MQTT-3.3.1-4)")
    if qos == 0 and flags & 0x08:
        raise _fail("PUBLISH with DUP set at QoS 0 (MQTT-3.3.1-2)")
    topic = body.text("topic name")
    if not topic:
        raise _fail("empty topic name (MQTT-4.7.3-1)")
    if "+" in topic or "#" in topic:
        raise _fail(f"wildcard in the topic name {topic!r} (MQTT-3.3.2-2)")
    if qos:
        body.packet_id("PUBLISH")


def _check_subscribe(body: _Body, unsubscribe: bool) -> None:
    what = "UNSUBSCRIBE" if unsubscribe else "SUBSCRIBE"
    body.packet_id(what)
    if not body.left:
        raise _fail(f"{what} without a topic filter (MQTT-3.8.3-3, MQTT-3.10.3-2)")
    while body.left:
        check_topic_filter(body.text("topic filter"))
        if not unsubscribe:
            (requested,) = body.take(1, "requested QoS")
            if requested > 2:
                raise _fail(f"requested QoS byte {requested:#04x} (MQTT-3.8.3-4)")


def check_client_packet(first_byte: int, body: bytes, *, first: bool) -> None:
    """Raise `ProtocolViolationError` unless this is a packet a client may send at this point."""
    kind, flags = first_byte >> 4, first_byte & 0x0F
    if first != (kind == CONNECT):
        if first:
            raise _fail(f"packet type {kind} before CONNECT (MQTT-3.1.0-1)")
        raise _fail("a second CONNECT (MQTT-3.1.0-2)")
    if kind == PUBLISH:
        _check_publish(flags, _Body(body))
        return
    if kind not in _FLAGS:
        raise _fail(f"packet type {kind} is reserved or only sent by servers (2.2.1)")
    if flags != _FLAGS[kind]:
        raise _fail(f"packet type {kind} with fixed-header flags {flags:#x} (MQTT-2.2.2-2)")
    cursor = _Body(body)
    if kind == CONNECT:
        _check_connect(cursor)
    elif kind in (SUBSCRIBE, UNSUBSCRIBE):
        _check_subscribe(cursor, kind == UNSUBSCRIBE)
    elif kind in _ID_ONLY:
        cursor.take(2, "packet identifier")
        cursor.end(f"packet type {kind}")
    elif kind in _EMPTY:
        cursor.end(f"packet type {kind}")
