"""Embedded broker specifics: lifecycle, password reload, session bookkeeping, the ACL."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from mqtt import topics
from mqtt.broker import DATABASE_NAME, EmbeddedBroker, topic_allowed
from mqtt.errors import BrokerConfigError, BrokerError
from mqtt.passwords import write_password_file
from tests.mqtt.conftest import EmbeddedHandle, PeerFactory
from tests.mqtt.support import PASSWORDS, login

SERVERS = ["trolley_server"]


@pytest.mark.parametrize(
    ("user", "topic", "action", "allowed"),
    [
        ("dev-a", "trolley/v1/dev/dev-a/cmd", "subscribe", True),
        ("dev-a", "trolley/v1/dev/dev-a/desired", "receive", True),
        ("dev-a", "trolley/v1/dev/dev-a/ack", "subscribe", False),
        ("dev-a", "trolley/v1/dev/dev-a/cmd", "publish", False),
        ("dev-a", "trolley/v1/dev/dev-a/ack", "publish", True),
        ("dev-a", "trolley/v1/dev/dev-a/status", "publish", True),
        ("dev-a", "trolley/v1/dev/dev-b/cmd", "subscribe", False),
        ("dev-a", "trolley/v1/dev/dev-b/cmd", "receive", False),
        ("dev-a", "trolley/v1/dev/dev-b/ack", "publish", False),
        ("dev-a", "trolley/v1/dev/+/cmd", "subscribe", False),
        ("dev-a", "#", "subscribe", False),
        ("dev_a", "trolley/v1/dev/dev_a/cmd", "subscribe", False),
        ("trolley_server", "trolley/v1/#", "subscribe", True),
        ("trolley_server", "trolley/v1/dev/dev-b/cmd", "publish", True),
        ("trolley_server", "trolley/#", "subscribe", False),
        ("trolley_server", "#", "subscribe", False),
        ("trolley_server", "other/topic", "publish", False),
        ("trolley_server", "$share/trolley/trolley/v1/dev/+/ack", "subscribe", False),
        ("trolley_server", "$SYS/broker/uptime", "subscribe", False),
        (None, "trolley/v1/dev/dev-a/cmd", "subscribe", False),
    ],
)
def test_topic_allowed(user: str | None, topic: str, action: str, allowed: bool) -> None:
    assert topic_allowed(user, topic, action, SERVERS) is allowed


def test_port_zero_context_manager_and_stop(tmp_path: Path, peer: PeerFactory) -> None:
    write_password_file(tmp_path / "passwd", PASSWORDS)
    with EmbeddedBroker(password_file=tmp_path / "passwd", data_dir=tmp_path / "d", port=0) as b:
        assert b.running and b.port != 0
        server = peer(b.port, "w", clean_session=True, **login("trolley_server"))
        assert not server.connect().is_failure
        with pytest.raises(BrokerError, match="already running"):
            b.start()
        port = b.port
        server.close()
    assert not b.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    b.stop()  # stopping twice is harmless
    assert (tmp_path / "d" / DATABASE_NAME).exists()


def test_start_fails_clearly(tmp_path: Path) -> None:
    missing = EmbeddedBroker(password_file=tmp_path / "nope", data_dir=tmp_path / "d", port=0)
    with pytest.raises(BrokerError, match="password file"):
        missing.start()
    assert not missing.running
    write_password_file(tmp_path / "passwd", PASSWORDS)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = EmbeddedBroker(
            password_file=tmp_path / "passwd", data_dir=tmp_path / "d", port=busy.getsockname()[1]
        )
        with pytest.raises(BrokerError):
            taken.start()
    with pytest.raises(BrokerConfigError):
        EmbeddedBroker(password_file="p", data_dir="d", server_users=["trolley-server"])
    with pytest.raises(BrokerConfigError):
        EmbeddedBroker(password_file="p", data_dir="d", port=70000)


def test_device_must_use_its_id_as_client_id(embedded: EmbeddedHandle, peer: PeerFactory) -> None:
    assert peer(embedded.port, "dev-b", **login("dev-a")).connect().is_failure
    assert peer(embedded.port, "", clean_session=True, **login("dev-a")).connect().is_failure
    assert not peer(embedded.port, "dev-a", **login("dev-a")).connect().is_failure
    # Server users may pick any client id (one per worker).
    assert not peer(embedded.port, "any-id", **login("trolley_server")).connect().is_failure


def test_password_file_is_reloaded(
    embedded: EmbeddedHandle, peer: PeerFactory, tmp_path: Path
) -> None:
    assert peer(embedded.port, "dev-c", username="dev-c", password="c").connect().is_failure
    write_password_file(
        embedded.broker.password_file, {**PASSWORDS, "dev-c": "c"} | {"dev-b": "rotated"}
    )
    assert not peer(embedded.port, "dev-c", username="dev-c", password="c").connect().is_failure
    assert peer(embedded.port, "dev-b", **login("dev-b")).connect().is_failure
    # A broken file keeps the last good users instead of locking everyone out.
    embedded.broker.password_file.write_text("garbage\n")
    assert not peer(embedded.port, "dev-c", username="dev-c", password="c").connect().is_failure


def test_clean_session_and_unsubscribe_are_remembered(
    embedded: EmbeddedHandle, peer: PeerFactory
) -> None:
    device_a = peer(embedded.port, "dev-a", **login("dev-a"))
    device_a.connect()
    device_a.subscribe(topics.cmd_topic("dev-a"))
    device_a.close()
    # Reconnecting clean ends the persistent session.
    clean = peer(embedded.port, "dev-a", clean_session=True, **login("dev-a"))
    clean.connect()
    clean.close()
    device_b = peer(embedded.port, "dev-b", **login("dev-b"))
    device_b.connect()
    device_b.subscribe(*topics.device_subscriptions("dev-b"))
    device_b.client.unsubscribe(topics.cmd_topic("dev-b"))
    device_b.settle()
    device_b.close()
    server = peer(embedded.port, "w", clean_session=True, **login("trolley_server"))
    server.connect()
    server.publish(topics.cmd_topic("dev-a"), b"to-a")
    server.publish(topics.cmd_topic("dev-b"), b"to-b")
    server.close()
    embedded.restart()
    for device_id in ("dev-a", "dev-b"):
        again = peer(embedded.port, device_id, **login(device_id))
        again.connect()
        assert again.received() == []


def test_expired_sessions_are_not_restored(embedded: EmbeddedHandle, peer: PeerFactory) -> None:
    device = peer(embedded.port, "dev-a", **login("dev-a"))
    device.connect()
    device.subscribe(topics.cmd_topic("dev-a"))
    device.close()
    server = peer(embedded.port, "w", clean_session=True, **login("trolley_server"))
    server.connect()
    server.publish(topics.cmd_topic("dev-a"), b"stale")
    server.close()
    embedded.broker.stop()
    database = embedded.broker.data_dir / DATABASE_NAME
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM queued").fetchone() == (1,)
        db.execute("UPDATE sessions SET last_seen = 0")
    db.close()
    embedded.broker.start()
    again = peer(embedded.port, "dev-a", **login("dev-a"))
    again.connect()
    assert again.received() == []
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM sessions WHERE last_seen = 0").fetchone() == (0,)
    db.close()


def _packet(kind: int, body: bytes) -> bytes:
    """One MQTT 3.1.1 packet: fixed header with the variable-length remaining length."""
    length, encoded = len(body), bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes([kind, *encoded]) + body


def _text(value: str) -> bytes:
    return len(value.encode()).to_bytes(2, "big") + value.encode()


def test_a_client_that_stops_reading_does_not_hold_up_a_stop(
    embedded: EmbeddedHandle, peer: PeerFactory
) -> None:
    """A device that stops reading (its buffers full of commands) cannot stall a broker stop."""
    stalled = socket.create_connection(("127.0.0.1", embedded.port), timeout=5)
    try:
        _stall(stalled, embedded, peer)
    finally:
        stalled.close()
    assert not embedded.broker.running


def _stall(stalled: socket.socket, embedded: EmbeddedHandle, peer: PeerFactory) -> None:
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    user = login("dev-a")
    connect = b"\x00\x04MQTT\x04\xc2\x00\x3c" + b"".join(
        _text(v) for v in ("dev-a", user["username"], user["password"])
    )
    stalled.sendall(_packet(0x10, connect))
    assert stalled.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
    command_topic = topics.cmd_topic("dev-a")
    stalled.sendall(_packet(0x82, b"\x00\x01" + _text(command_topic) + b"\x01"))
    assert stalled.recv(5)[0] == 0x90  # SUBACK; from here on the device reads nothing
    server = peer(embedded.port, "w", clean_session=True, **login("trolley_server"))
    assert not server.connect().is_failure
    for _ in range(40):
        server.publish(command_topic, b"x" * 200_000)
    server.close()
    embedded.broker.stop(timeout=12)  # raises BrokerError if the stop stalls
