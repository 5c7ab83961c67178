"""TLS (server-authenticated and mutual) on both brokers, and the machine's own Mosquitto."""

from __future__ import annotations

import os
import pwd
import queue
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt import topics
from mqtt.broker import BrokerTLS, EmbeddedBroker
from mqtt.client import TLSSettings
from mqtt.mosquitto import MosquittoTLS, write_mosquitto_config
from mqtt.passwords import write_password_file
from tests.helpers import free_port
from tests.mqtt.certs import ThrowawayCA
from tests.mqtt.conftest import MOSQUITTO_BINARY, PeerFactory, require_mosquitto_binary
from tests.mqtt.support import PASSWORDS, login, wait_for_port


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCA:
    return ThrowawayCA(tmp_path)


def test_embedded_broker_over_tls(tmp_path: Path, ca: ThrowawayCA, peer: PeerFactory) -> None:
    server_pair = ca.issue("broker", "127.0.0.1", server=True)
    write_password_file(tmp_path / "passwd", PASSWORDS)
    tls = BrokerTLS(cert_file=server_pair.cert, key_file=server_pair.key)
    with EmbeddedBroker(
        password_file=tmp_path / "passwd", data_dir=tmp_path / "d", port=free_port(), tls=tls
    ) as broker:
        trusted = TLSSettings(ca_file=ca.pair.cert)
        device = peer(broker.port, "dev-a", tls=trusted, **login("dev-a"))
        assert not device.connect().is_failure
        device.subscribe(topics.cmd_topic("dev-a"))
        server = peer(broker.port, "w", clean_session=True, tls=trusted, **login("trolley_server"))
        assert not server.connect().is_failure
        server.publish(topics.cmd_topic("dev-a"), b"over-tls")
        assert device.expect().payload == b"over-tls"
        device.close()
        server.close()
        # A client that trusts only the system CAs refuses the broker's certificate.
        with (
            pytest.raises(ssl.SSLCertVerificationError),
            socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw,
            TLSSettings().context().wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            pass


@pytest.fixture
def mutual_tls_mosquitto(tmp_path: Path, ca: ThrowawayCA) -> Iterator[tuple[int, int]]:
    """A private Mosquitto: password listener plus an mTLS listener (CN = username)."""
    require_mosquitto_binary()
    server_pair = ca.issue("broker", "127.0.0.1", server=True)
    port, tls_port = free_port(), free_port()
    run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
    files = write_mosquitto_config(
        tmp_path / "mosq",
        port=port,
        passwords=PASSWORDS,
        run_as_user=run_as,
        log_file=tmp_path / "mosquitto.log",
        tls=MosquittoTLS(
            port=tls_port,
            host="127.0.0.1",
            cafile=ca.pair.cert,
            certfile=server_pair.cert,
            keyfile=server_pair.key,
            require_certificate=True,
            use_identity_as_username=True,
        ),
    )
    process = subprocess.Popen(
        [str(MOSQUITTO_BINARY), "-c", str(files.conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
        wait_for_port("127.0.0.1", tls_port)
        yield port, tls_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_mosquitto_mutual_tls_uses_the_certificate_as_identity(
    mutual_tls_mosquitto: tuple[int, int], ca: ThrowawayCA, peer: PeerFactory
) -> None:
    port, tls_port = mutual_tls_mosquitto
    device_pair = ca.issue("dev-a", "dev-a", server=False)
    with_cert = TLSSettings(
        ca_file=ca.pair.cert, cert_file=device_pair.cert, key_file=device_pair.key
    )
    device = peer(tls_port, "dev-a", tls=with_cert)  # no password: the certificate is the login
    assert not device.connect().is_failure
    device.subscribe(topics.cmd_topic("dev-a"), topics.cmd_topic("dev-b"))
    server = peer(port, "w", clean_session=True, **login("trolley_server"))
    assert not server.connect().is_failure
    server.publish(topics.cmd_topic("dev-b"), b"for-b")
    server.publish(topics.cmd_topic("dev-a"), b"for-a")
    assert device.received() == [(topics.cmd_topic("dev-a"), b"for-a")]
    # Without a client certificate the TLS listener refuses the handshake or the login.
    no_cert = peer(tls_port, "dev-b", tls=TLSSettings(ca_file=ca.pair.cert), **login("dev-b"))
    try:
        refused = no_cert.connect(timeout=1.0).is_failure
    except (OSError, queue.Empty):  # TLS 1.3 reports the missing certificate after the handshake
        refused = True
    assert refused


@pytest.mark.mosquitto
def test_qos1_round_trip_on_the_system_mosquitto(
    mosquitto_addr: tuple[str, int], peer: PeerFactory
) -> None:
    host, port = mosquitto_addr
    topic = f"trolley-test/{uuid.uuid4()}/cmd"
    receiver = peer(port, f"rx-{uuid.uuid4()}", clean_session=True, host=host)
    sender = peer(port, f"tx-{uuid.uuid4()}", clean_session=True, host=host, max_inflight=0)
    assert not receiver.connect().is_failure
    assert not sender.connect().is_failure
    assert [code.value for code in receiver.subscribe(topic)] == [1]
    sender.publish(topic, b"round-trip")
    message = receiver.expect()
    assert (message.topic, message.payload, message.qos) == (topic, b"round-trip", 1)
