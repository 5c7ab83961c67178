"""MQTT 3.1.1 conformance every broker owes: keep-alive and will, sessions, QoS, retained
messages and protocol errors. Each case runs on the embedded broker and on the machine's
Mosquitto (its own default configuration), written from the OASIS MQTT 3.1.1 standard."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.mqtt import wire
from tests.mqtt.conftest import ProtocolBroker
from tests.mqtt.wire import Closed, Wire

# Mosquitto 2.0 looks for expired keep-alives only every 6 s (and counts whole seconds), so a
# silent client's will goes out between 1.5 x and 1.5 x + 7 s after its last packet: within
# twice the keep-alive from 14 s up. The embedded broker waits exactly 1.5 x.
KEEPALIVE = {"embedded": 4, "system-mosquitto": 14}


@pytest.fixture
def prefix(protocol_broker: ProtocolBroker) -> Iterator[str]:
    """A topic subtree of this test's own (the machine's Mosquitto is shared)."""
    yield f"trolley/v1/conformance-{uuid.uuid4().hex[:10]}"


class Clients:
    """Raw connections to one broker, each logged in as the server user, closed at the end."""

    def __init__(self, broker: ProtocolBroker) -> None:
        self.broker = broker
        self.opened: list[Wire] = []
        self.persistent: list[str] = []
        self._marks: Wire | None = None
        self._mark_topic = f"trolley/v1/routed-{uuid.uuid4().hex[:10]}"

    def raw(self) -> Wire:
        connection = Wire(self.broker.port)
        self.opened.append(connection)
        return connection

    def login(self, client_id: str, *, clean: bool = True, **options: object) -> Wire:
        connection = self.raw()
        connack = connection.login(client_id, clean=clean, **self.broker.login, **options)
        assert connack.body[1] == 0, f"{client_id} refused: {connack.body!r}"
        if not clean:
            self.persistent.append(client_id)
        return connection

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish, and return once the broker has routed it (a PUBACK may come before that)."""
        if self._marks is None:
            self._marks = self.login(f"marks-{uuid.uuid4().hex[:8]}")
            _subscribed(self._marks, self._mark_topic, qos=0)
        sender = self.login(f"tx-{uuid.uuid4().hex[:12]}")
        sender.send(wire.publish(topic, payload, qos=qos, retain=retain))
        if qos:
            sender.expect(wire.PUBACK)
        # Routed in order: once this marker arrives, the message before it has been routed.
        mark = uuid.uuid4().bytes
        sender.send(wire.publish(self._mark_topic, mark))
        while self._marks.expect(wire.PUBLISH).payload != mark:
            pass

    def close(self) -> None:
        for connection in self.opened:
            connection.close()
        for client_id in self.persistent:  # a clean login ends a persistent session
            forget = Wire(self.broker.port)
            forget.login(client_id, clean=True, **self.broker.login)
            forget.send(wire.DISCONNECT_PACKET)
            forget.close()


@pytest.fixture
def clients(protocol_broker: ProtocolBroker) -> Iterator[Clients]:
    made = Clients(protocol_broker)
    yield made
    made.close()


def _subscribed(connection: Wire, topic_filter: str, qos: int = 1, packet_id: int = 1) -> None:
    connection.send(wire.subscribe(packet_id, (topic_filter, qos)))
    suback = connection.expect(wire.SUBACK)
    assert suback.body[2] == qos, f"SUBACK {suback.body!r}"


# --- keep-alive and will (3.1.2.10, 3.1.2.5) ---------------------------------------------------


def test_a_silent_client_is_dropped_after_one_and_a_half_keepalives_and_its_will_sent(
    clients: Clients, prefix: str
) -> None:
    """MQTT-3.1.2-24 and MQTT-3.1.2-8: a client silent for 1.5 × its keep-alive is
    disconnected and its will published; a client that pings stays connected."""
    keepalive = KEEPALIVE[clients.broker.name]
    status = f"{prefix}/status"
    watcher = clients.login(f"watch-{uuid.uuid4().hex[:8]}")
    _subscribed(watcher, status)
    pinging = clients.login(f"ping-{uuid.uuid4().hex[:8]}", keepalive=keepalive)
    silent = clients.login(
        f"gone-{uuid.uuid4().hex[:8]}",
        keepalive=keepalive,
        will=wire.Will(status, b"offline"),
    )
    went_silent = time.monotonic()
    will = None
    while time.monotonic() - went_silent < 2 * keepalive:
        pinging.send(wire.PINGREQ_PACKET)
        assert pinging.expect(wire.PINGRESP).kind == wire.PINGRESP
        try:
            will = watcher.expect(wire.PUBLISH, timeout=1.0)
            break
        except TimeoutError:
            continue
    assert will is not None, f"no will within twice the keep-alive ({2 * keepalive} s)"
    elapsed = time.monotonic() - went_silent
    assert (will.topic, will.payload) == (status, b"offline")
    assert elapsed >= keepalive, f"dropped after {elapsed:.1f} s, before its keep-alive"
    assert silent.closed_within(1.0)
    pinging.send(wire.PINGREQ_PACKET)
    assert pinging.expect(wire.PINGRESP).kind == wire.PINGRESP


# --- sessions and redelivery (3.1.2.4, 4.4) ----------------------------------------------------


def test_a_persistent_session_begun_right_after_a_clean_one_keeps_its_queue(
    clients: Clients, prefix: str
) -> None:
    """MQTT-3.1.2-6 and MQTT-3.2.2-2: a clean session ends at its disconnect, so a persistent
    login straight after starts a new session (present = 0) that then keeps queued messages."""
    client_id = f"dev-{uuid.uuid4().hex[:8]}"
    first = clients.login(client_id, clean=True)
    first.send(wire.DISCONNECT_PACKET)
    assert first.closed_within(2.0)
    second = clients.raw()
    connack = second.login(client_id, clean=False, **clients.broker.login)
    clients.persistent.append(client_id)
    assert connack.body == b"\x00\x00", "a clean session was resumed"
    _subscribed(second, f"{prefix}/cmd")
    second.send(wire.DISCONNECT_PACKET)
    assert second.closed_within(2.0)
    clients.publish(f"{prefix}/cmd", b"wipe")
    third = clients.raw()
    assert third.login(client_id, clean=False, **clients.broker.login).body == b"\x01\x00"
    message = third.expect(wire.PUBLISH)
    assert (message.topic, message.payload, message.qos) == (f"{prefix}/cmd", b"wipe", 1)


def test_a_message_queued_for_an_offline_client_arrives_without_retain(
    clients: Clients, prefix: str
) -> None:
    """MQTT-3.3.1-9: a message delivered because of an established subscription has RETAIN 0."""
    client_id = f"dev-{uuid.uuid4().hex[:8]}"
    device = clients.login(client_id, clean=False)
    _subscribed(device, f"{prefix}/cmd")
    device.send(wire.DISCONNECT_PACKET)
    assert device.closed_within(2.0)
    time.sleep(0.5)  # the broker ends the session just after closing the socket
    clients.publish(f"{prefix}/cmd", b"queued")
    again = clients.login(client_id, clean=False)
    message = again.expect(wire.PUBLISH)
    assert (message.payload, message.retain) == (b"queued", False)
    again.send(wire.puback(message.packet_id))


def test_an_unacknowledged_message_is_sent_again_marked_dup_when_the_session_resumes(
    clients: Clients, prefix: str
) -> None:
    """MQTT-4.4.0-1 and MQTT-3.3.1-1: an un-PUBACKed QoS 1 message is resent with DUP set."""
    client_id = f"dev-{uuid.uuid4().hex[:8]}"
    device = clients.login(client_id, clean=False)
    _subscribed(device, f"{prefix}/cmd")
    clients.publish(f"{prefix}/cmd", b"unacked")
    first = device.expect(wire.PUBLISH)
    assert (first.payload, first.dup) == (b"unacked", False)
    device.close()  # gone without PUBACK or DISCONNECT
    again = clients.login(client_id, clean=False)
    resent = again.expect(wire.PUBLISH)
    assert (resent.payload, resent.qos, resent.dup) == (b"unacked", 1, True)
    again.send(wire.puback(resent.packet_id))


def test_delivery_qos_is_the_lower_of_the_publish_and_the_subscription(
    clients: Clients, prefix: str
) -> None:
    """MQTT-3.8.4-6 (4.3): a QoS 0 message reaches a QoS 1 subscriber at QoS 0, and a QoS 1
    message reaches a QoS 0 subscriber at QoS 0."""
    at_one = clients.login(f"q1-{uuid.uuid4().hex[:8]}")
    _subscribed(at_one, f"{prefix}/q1", qos=1)
    at_zero = clients.login(f"q0-{uuid.uuid4().hex[:8]}")
    _subscribed(at_zero, f"{prefix}/q0", qos=0)
    clients.publish(f"{prefix}/q1", b"sent-at-0", qos=0)
    clients.publish(f"{prefix}/q0", b"sent-at-1", qos=1)
    low = at_one.expect(wire.PUBLISH)
    assert (low.payload, low.qos) == (b"sent-at-0", 0)
    capped = at_zero.expect(wire.PUBLISH)
    assert (capped.payload, capped.qos) == (b"sent-at-1", 0)


# --- retained messages (3.3.1.3) ---------------------------------------------------------------


def test_retained_messages_carry_retain_only_when_sent_for_a_new_subscription(
    clients: Clients, prefix: str
) -> None:
    """MQTT-3.3.1-8 and -9: RETAIN 1 for the retained copy sent on subscribing, 0 for live
    deliveries; MQTT-3.3.1-10: an empty retained message clears it."""
    topic = f"{prefix}/desired"
    clients.publish(topic, b"v1", retain=True)
    reader = clients.login(f"rd-{uuid.uuid4().hex[:8]}")
    _subscribed(reader, topic)
    stored = reader.expect(wire.PUBLISH)
    assert (stored.payload, stored.retain) == (b"v1", True)
    reader.send(wire.puback(stored.packet_id))
    clients.publish(topic, b"v2", retain=True)
    live = reader.expect(wire.PUBLISH)
    assert (live.payload, live.retain) == (b"v2", False)
    reader.send(wire.puback(live.packet_id))
    clients.publish(topic, b"", retain=True)
    reader.expect(wire.PUBLISH)  # the clearing message itself, delivered live
    later = clients.login(f"rd-{uuid.uuid4().hex[:8]}")
    _subscribed(later, topic)
    with pytest.raises(TimeoutError):
        later.expect(wire.PUBLISH, timeout=0.5)


# --- protocol errors close the connection (4.8) ------------------------------------------------

_TOPIC = "trolley/v1/conformance/x"
_BAD_AFTER_CONNECT = {
    # MQTT-3.3.1-4: a PUBLISH must not have both QoS bits set.
    "qos-3": wire.publish(_TOPIC, b"x", qos=3),
    # MQTT-1.5.3-1: a topic that is not valid UTF-8.
    "invalid-utf8-topic": wire.publish(b"trolley/v1/\xff\xfe", b"x", qos=1),
    # 2.2.3: at most four bytes of remaining length.
    "bad-remaining-length": b"\x30\xff\xff\xff\xff\x01",
    # 2.2.1: packet types 0 and 15 are reserved.
    "reserved-type": b"\x00\x00",
    # MQTT-3.8.1-1: SUBSCRIBE's fixed-header flags must be 0010.
    "subscribe-flags": b"\x80" + wire.subscribe(1, (_TOPIC, 1))[1:],
    # MQTT-3.3.2-2: a PUBLISH topic must not contain wildcards.
    "wildcard-topic": wire.publish("trolley/v1/+/x", b"x", qos=1),
    # MQTT-3.1.0-2: a second CONNECT.
    "second-connect": wire.connect("again"),
    # The remaining length ends inside the topic name.
    "truncated-publish": b"\x32\x04\x00\x20ab",
}


@pytest.mark.parametrize("case", sorted(_BAD_AFTER_CONNECT))
def test_a_protocol_error_after_connect_closes_the_connection(clients: Clients, case: str) -> None:
    """MQTT 3.1.1, 4.8: on a protocol violation the server closes the network connection."""
    offender = clients.login(f"bad-{uuid.uuid4().hex[:8]}")
    offender.send(_BAD_AFTER_CONNECT[case])
    if case == "truncated-publish":
        offender.send(wire.PINGREQ_PACKET * 20)  # what the broker reads as the rest is junk
    assert offender.closed_within(3.0), f"{case}: the connection stayed open"
    clients.login(f"ok-{uuid.uuid4().hex[:8]}")  # and the broker serves everyone else


def _truncated_connect() -> bytes:
    whole = wire.connect("cut-short", username="trolley_server", password="server-secret")
    return bytes([whole[0], len(whole) - 2 - 6]) + whole[2:-6]


_BAD_CONNECTS = {
    # The remaining length ends inside the password: the CONNECT is cut short.
    "truncated-connect": _truncated_connect() + wire.PINGREQ_PACKET * 3,
    "bad-remaining-length": b"\x10\xff\xff\xff\xff\x01",
    # MQTT-1.5.3-1 for the client identifier.
    "invalid-utf8-client-id": wire.connect(
        b"id-\xc3\x28", username="trolley_server", password="server-secret"
    ),
    # MQTT-3.1.2-3: the reserved CONNECT flag must be 0.
    "reserved-connect-flag": wire.connect("flags")[:9] + b"\x03" + wire.connect("flags")[10:],
}


@pytest.mark.parametrize("case", sorted(_BAD_CONNECTS))
def test_a_malformed_connect_is_refused_and_closed(clients: Clients, case: str) -> None:
    """MQTT-3.1.4-1: a CONNECT that breaks the standard gets no session and the connection
    closes (a CONNACK with a refusal code first is allowed)."""
    offender = clients.raw()
    offender.send(_BAD_CONNECTS[case])
    try:
        answer = offender.read(timeout=3.0)
    except Closed:
        return
    except TimeoutError:
        pytest.fail(f"{case}: no answer and the connection stayed open")
    assert answer.kind == wire.CONNACK and answer.body[1] != 0, f"{case}: accepted {answer!r}"
    assert offender.closed_within(3.0)
