"""Embedded broker faults seen with real fleets: lost broadcasts, leaked sockets, mutual TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from paho.mqtt import client as paho

from mqtt import topics
from mqtt.amqtt_patches import ClosingStreamWriterAdapter
from mqtt.broker import BrokerTLS, EmbeddedBroker
from mqtt.client import TLSSettings
from mqtt.errors import BrokerConfigError
from mqtt.passwords import write_password_file
from provisioning.ca import create_school_ca, issue_device_certificate, new_server_identity
from provisioning.keys import certificate_to_pem, new_tls_key, private_key_to_pem
from tests.helpers import in_own_thread
from tests.mqtt.conftest import PeerFactory
from tests.mqtt.support import PASSWORDS, Peer, login, wait_until

FLEET = [f"kiosk-{number:03d}" for number in range(60)]
SERVER = "trolley_server"


@pytest.fixture
def fleet_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker that knows the test users plus a fleet of 60 devices."""
    passwords = dict(PASSWORDS)
    passwords.update({device: f"pw-{device}" for device in FLEET})
    write_password_file(tmp_path / "passwd", passwords)
    with EmbeddedBroker(
        password_file=tmp_path / "passwd", data_dir=tmp_path / "data", port=0
    ) as broker:
        yield broker


# --- 1. a subscription made during a broadcast must not lose the message ------------------------


def test_fleet_subscribing_while_messages_flow_loses_nothing(
    fleet_broker: EmbeddedBroker, peer: PeerFactory
) -> None:
    port = fleet_broker.port
    # Two server-side listeners under different filters, so one broadcast visits two keys of
    # the broker's subscription table and awaits the ACL plugin in between.
    status_worker = peer(port, "status-worker", clean_session=True, **login("trolley_server"))
    recorder = peer(port, "recorder", clean_session=True, **login("trolley_server"))
    for listener, topic_filter in (
        (status_worker, "trolley/v1/dev/+/status"),
        (recorder, "trolley/v1/#"),
    ):
        assert not listener.connect().is_failure
        assert not listener.subscribe(topic_filter)[0].is_failure
    devices = [peer(port, device, password=f"pw-{device}", username=device) for device in FLEET]
    for device in devices:
        assert not device.connect().is_failure
    sender = peer(port, "sender", clean_session=True, max_inflight=0, **login("trolley_server"))
    assert not sender.connect().is_failure

    status = topics.device_topic("dev-a", "status")
    infos: list[paho.MQTTMessageInfo] = []
    fleet_online = threading.Event()

    def publish_until_the_fleet_is_online() -> None:
        number = 0
        while not fleet_online.is_set() or number < 200:
            infos.append(sender.client.publish(status, str(number).encode(), qos=1))
            number += 1
            time.sleep(0.001)

    publisher = threading.Thread(target=publish_until_the_fleet_is_online)
    publisher.start()
    # The fleet comes online while messages flow: every subscription adds a topic filter.
    try:
        for device in devices:
            for kind in ("cmd", "desired"):
                device.client.subscribe(topics.device_topic(device.client_id, kind), qos=1)
                time.sleep(0.002)
    finally:
        fleet_online.set()
        publisher.join(30)
    for info in infos:
        info.wait_for_publish(timeout=10)
    count = len(infos)

    expected = set(range(count))

    def payloads(listener: Peer) -> set[int]:
        def mine(got: list[tuple[str, bytes]]) -> set[int]:
            return {int(payload) for topic, payload in got if topic == status}

        return mine(listener.received_until(lambda got: mine(got) >= expected, timeout=30))

    assert payloads(status_worker) == expected
    missing = expected - payloads(recorder)
    assert not missing, f"{len(missing)} of {count} messages never reached the second subscriber"


# --- 2. clients that hang up abruptly must not leave sockets open -------------------------------


def _connect_packet(client_id: str, username: str, password: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and a 10 s keep-alive."""

    def string(value: str) -> bytes:
        data = value.encode()
        return struct.pack("!H", len(data)) + data

    body = string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10)
    body += string(client_id) + string(username) + string(password)
    return bytes([0x10, len(body)]) + body


def _reset_on_close(sock: socket.socket) -> None:
    """Make `close()` send RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _broker_side_sockets(port: int) -> list[Any]:
    """This process's TCP sockets on the broker's end of a client connection."""
    return [
        conn
        for conn in psutil.Process().net_connections("tcp")
        if conn.laddr and conn.laddr.port == port and conn.status != psutil.CONN_LISTEN
    ]


def test_abrupt_disconnects_release_every_socket(fleet_broker: EmbeddedBroker) -> None:
    port = fleet_broker.port
    process = psutil.Process()
    wait_until(lambda: not _broker_side_sockets(port))
    baseline_fds = process.num_fds()

    def open_client(index: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        device = FLEET[index % len(FLEET)]
        client_id = f"hangup-{index}"
        style = index % 6
        if style == 1:  # a partial CONNECT, then gone
            sock.sendall(_connect_packet(device, device, f"pw-{device}")[:7])
        elif style >= 2:
            sock.sendall(_connect_packet(client_id, "trolley_server", PASSWORDS["trolley_server"]))
            assert sock.recv(4)[:1] == b"\x20"  # CONNACK
        # style 0: connected, never sent a byte
        return sock

    clients = [open_client(index) for index in range(120)]
    wait_until(lambda: len(_broker_side_sockets(port)) == len(clients), timeout=10)
    for index, sock in enumerate(clients):
        style = index % 6
        if style == 3:  # reset without a goodbye
            _reset_on_close(sock)
        elif style >= 4:  # half-close first (the broker sees EOF) and then reset
            sock.shutdown(socket.SHUT_WR)
    for index, sock in enumerate(clients):
        if index % 6 >= 4:
            _reset_on_close(sock)
        sock.close()

    def released() -> bool:
        return not _broker_side_sockets(port) and process.num_fds() <= baseline_fds

    try:
        wait_until(released, timeout=10)
    except AssertionError:
        states = sorted(conn.status for conn in _broker_side_sockets(port))
        raise AssertionError(
            f"{len(states)} broker socket(s) still open {states}; "
            f"fds {process.num_fds()} vs baseline {baseline_fds}"
        ) from None
    # The broker still serves clients afterwards.
    probe = Peer(port, "probe", clean_session=True, **login("trolley_server"))
    try:
        assert not probe.connect().is_failure
    finally:
        probe.close()


class _FakeTransportWriter:
    """Just enough of `asyncio.StreamWriter` for the close path, with injectable failures."""

    def __init__(self, *, drain_error: BaseException | None, eof_error: BaseException | None):
        self.drain_error = drain_error
        self.eof_error = eof_error
        self.closed = False
        self.aborted = False
        self.transport = self

    async def drain(self) -> None:
        if self.drain_error is not None:
            raise self.drain_error

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self.eof_error is not None:
            raise self.eof_error

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    async def wait_closed(self) -> None:
        return None


@pytest.mark.parametrize(
    ("drain_error", "eof_error"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), None),
        (None, OSError(107, "Transport endpoint is not connected")),
        (None, None),
    ],
)
def test_writer_close_always_closes_the_transport(
    drain_error: BaseException | None, eof_error: BaseException | None
) -> None:
    fake = _FakeTransportWriter(drain_error=drain_error, eof_error=eof_error)
    adapter = ClosingStreamWriterAdapter(fake)
    in_own_thread(asyncio.run, adapter.close())  # a peer already gone is not an error
    assert fake.closed or fake.aborted
    assert adapter.is_closed


# --- 3. mutual TLS with certificates from the school CA -----------------------------------------


@dataclass(frozen=True)
class SchoolPKI:
    """PEM files: school CA, broker listener, a device certificate and a foreign one."""

    ca: Path
    broker_cert: Path
    broker_key: Path
    device_cert: Path
    device_key: Path
    foreign_cert: Path
    foreign_key: Path


@pytest.fixture
def school_pki(tmp_path: Path) -> SchoolPKI:
    now = dt.datetime.now(dt.UTC)
    school = create_school_ca("Oakfield Primary", now=now)
    listener = new_server_identity(school, now=now)
    device_key = new_tls_key()
    device_cert = issue_device_certificate(school, "dev-a", device_key.public_key(), now=now)
    # A certificate for the same device id from another CA must not be accepted.
    other = create_school_ca("Elsewhere Primary", now=now)
    foreign_key = new_tls_key()
    foreign_cert = issue_device_certificate(other, "dev-a", foreign_key.public_key(), now=now)
    files = {
        "ca": school.cert_pem(),
        "broker_cert": listener.cert_pem(),
        "broker_key": listener.key_pem(),
        "device_cert": certificate_to_pem(device_cert),
        "device_key": private_key_to_pem(device_key),
        "foreign_cert": certificate_to_pem(foreign_cert),
        "foreign_key": private_key_to_pem(foreign_key),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(data)
    return SchoolPKI(**paths)


def _tls_broker(tmp_path: Path, pki: SchoolPKI, *, require: bool) -> EmbeddedBroker:
    write_password_file(tmp_path / "passwd", PASSWORDS)
    tls = BrokerTLS(
        cert_file=pki.broker_cert,
        key_file=pki.broker_key,
        ca_file=pki.ca,
        require_certificate=require,
    )
    return EmbeddedBroker(
        password_file=tmp_path / "passwd", data_dir=tmp_path / "data", port=0, tls=tls
    )


def _connack_over_tls(port: int, settings: TLSSettings, user: str) -> bytes | None:
    """Handshake, send CONNECT and return the CONNACK, or None if the broker refused the TLS."""
    context = settings.context()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            # TLS 1.3 reports a refused client certificate only after the handshake.
            tls.sendall(_connect_packet(user, user, PASSWORDS[user]))
            return tls.recv(4) or None
    except (ssl.SSLError, OSError):
        return None


def test_embedded_broker_accepts_school_client_certificates(
    tmp_path: Path, school_pki: SchoolPKI, peer: PeerFactory
) -> None:
    with _tls_broker(tmp_path, school_pki, require=False) as broker:
        with_cert = TLSSettings(
            ca_file=school_pki.ca,
            cert_file=school_pki.device_cert,
            key_file=school_pki.device_key,
        )
        device = peer(broker.port, "dev-a", tls=with_cert, **login("dev-a"))
        assert not device.connect().is_failure
        assert not device.subscribe(topics.cmd_topic("dev-a"))[0].is_failure
        # Without require_certificate a password-only client over TLS is still welcome.
        server_tls = TLSSettings(ca_file=school_pki.ca)
        server = peer(broker.port, "w", clean_session=True, tls=server_tls, **login(SERVER))
        assert not server.connect().is_failure
        server.publish(topics.cmd_topic("dev-a"), b"mutual")
        assert device.expect().payload == b"mutual"
        # A certificate from another CA fails the handshake.
        foreign = TLSSettings(
            ca_file=school_pki.ca,
            cert_file=school_pki.foreign_cert,
            key_file=school_pki.foreign_key,
        )
        assert _connack_over_tls(broker.port, foreign, "dev-a") is None


def test_embedded_broker_can_require_a_client_certificate(
    tmp_path: Path, school_pki: SchoolPKI
) -> None:
    with _tls_broker(tmp_path, school_pki, require=True) as broker:
        with_cert = TLSSettings(
            ca_file=school_pki.ca,
            cert_file=school_pki.device_cert,
            key_file=school_pki.device_key,
        )
        assert _connack_over_tls(broker.port, with_cert, "dev-a") == b"\x20\x02\x00\x00"
        no_cert = TLSSettings(ca_file=school_pki.ca)
        assert _connack_over_tls(broker.port, no_cert, "dev-b") is None
        foreign = TLSSettings(
            ca_file=school_pki.ca,
            cert_file=school_pki.foreign_cert,
            key_file=school_pki.foreign_key,
        )
        assert _connack_over_tls(broker.port, foreign, "dev-a") is None
        # The broker survives the refused handshakes.
        assert _connack_over_tls(broker.port, with_cert, "dev-a") == b"\x20\x02\x00\x00"
        # dev-a's certificate cannot log in as dev-b, even with dev-b's own password.
        assert _connack_over_tls(broker.port, with_cert, "dev-b") == b"\x20\x02\x00\x05"


def test_broker_tls_settings_reach_the_listener(tmp_path: Path, school_pki: SchoolPKI) -> None:
    listener = _tls_broker(tmp_path, school_pki, require=False)._config()["listeners"]["default"]
    assert listener["cafile"] == str(school_pki.ca)
    assert listener["ssl"] is True
    with pytest.raises(BrokerConfigError, match="ca_file"):
        BrokerTLS(
            cert_file=school_pki.broker_cert,
            key_file=school_pki.broker_key,
            require_certificate=True,
        )
