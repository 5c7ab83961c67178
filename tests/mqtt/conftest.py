"""Fixtures for the mqtt suite: real brokers (embedded amqtt and a private Mosquitto) and peers."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from mqtt.broker import EmbeddedBroker
from mqtt.client import TLSSettings
from mqtt.limits import BrokerLimits
from mqtt.mosquitto import MosquittoTLS, write_mosquitto_config
from mqtt.passwords import write_password_file
from tests.helpers import CI, MOSQUITTO_ADDR, free_port, require_service
from tests.mqtt.certs import ThrowawayCA
from tests.mqtt.support import PASSWORDS, Peer, wait_for_port
from tests.mqtt.wire import Wire

MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")


class BrokerHandle(Protocol):
    """What the shared broker tests need from either broker."""

    name: str
    port: int

    def restart(self) -> None: ...


class EmbeddedHandle:
    """The embedded amqtt broker, restartable on the same port and data directory."""

    name = "embedded"

    def __init__(self, directory: Path, limits: BrokerLimits | None = None) -> None:
        password_file = directory / "passwd"
        write_password_file(password_file, PASSWORDS)
        self.broker = EmbeddedBroker(
            password_file=password_file,
            data_dir=directory / "data",
            port=free_port(),
            **({"limits": limits} if limits else {}),
        )
        self.broker.start()
        self.port = self.broker.port
        # Devices log in on the same listener as the server (the embedded broker ties every
        # device's client id to its username on any listener).
        self.device_port = self.port
        self.device_tls: TLSSettings | None = None

    def restart(self) -> None:
        self.broker.stop()
        self.broker.start()

    def close(self) -> None:
        self.broker.stop()


def require_mosquitto_binary() -> None:
    """Fail under CI=true (never skip) if mosquitto is not installed; skip visibly otherwise."""
    if MOSQUITTO_BINARY.exists():
        return
    message = f"{MOSQUITTO_BINARY} is not installed"
    if CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message}; set CI=true to make this a failure")


class MosquittoHandle:
    """A private Mosquitto from `write_mosquitto_config`; `with_tls` adds the devices' listener."""

    name = "mosquitto"

    def __init__(
        self, directory: Path, *, with_tls: bool = False, limits: BrokerLimits | None = None
    ) -> None:
        self.port = free_port()
        # Mosquitto started as root drops to the `mosquitto` user, who cannot read a tmp dir.
        run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
        self.log = directory / "mosquitto.log"
        tls = None
        self.device_port = self.port
        self.device_tls = None
        if with_tls:
            ca = ThrowawayCA(directory)
            pair = ca.issue("broker", "127.0.0.1", server=True)
            self.device_port = free_port()
            tls = MosquittoTLS(
                port=self.device_port,
                host="127.0.0.1",
                cafile=ca.pair.cert,
                certfile=pair.cert,
                keyfile=pair.key,
            )
            self.device_tls = TLSSettings(ca_file=ca.pair.cert)
        self.files = write_mosquitto_config(
            directory,
            port=self.port,
            passwords=PASSWORDS,
            run_as_user=run_as,
            log_file=self.log,
            tls=tls,
            **({"limits": limits} if limits else {}),
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(MOSQUITTO_BINARY), "-c", str(self.files.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", self.port)
            wait_for_port("127.0.0.1", self.device_port)
        except AssertionError:
            self.stop()
            log = self.log.read_text() if self.log.exists() else ""
            raise AssertionError(f"mosquitto did not start:\n{log}") from None

    def stop(self) -> None:
        if self.process is None:
            return
        # SIGTERM makes Mosquitto write its persistence file before exiting.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedHandle]:
    """A running embedded broker with the users in `PASSWORDS`."""
    handle = EmbeddedHandle(tmp_path)
    yield handle
    handle.close()


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[MosquittoHandle]:
    """A private Mosquitto with the users in `PASSWORDS`."""
    require_mosquitto_binary()
    handle = MosquittoHandle(tmp_path)
    yield handle
    handle.close()


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerHandle]:
    """Each shared broker test runs against the embedded broker and against Mosquitto."""
    handle: EmbeddedHandle | MosquittoHandle
    if request.param == "mosquitto":
        require_mosquitto_binary()
        handle = MosquittoHandle(tmp_path)
    else:
        handle = EmbeddedHandle(tmp_path)
    yield handle
    handle.close()


TrolleyBroker = EmbeddedHandle | MosquittoHandle
TrolleyBrokerFactory = Callable[..., TrolleyBroker]


@pytest.fixture(params=["embedded", "mosquitto"])
def make_trolley_broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[TrolleyBrokerFactory]:
    """Brokers configured as Trolley configures them (`make(limits)`): embedded, and Mosquitto."""
    made: list[TrolleyBroker] = []

    def make(limits: BrokerLimits | None = None) -> TrolleyBroker:
        directory = tmp_path / f"broker-{len(made)}"
        directory.mkdir()
        handle: TrolleyBroker
        if request.param == "mosquitto":
            require_mosquitto_binary()
            handle = MosquittoHandle(directory, with_tls=True, limits=limits)
        else:
            handle = EmbeddedHandle(directory, limits=limits)
        made.append(handle)
        return handle

    yield make
    for handle in made:
        handle.close()


@pytest.fixture
def trolley_broker(make_trolley_broker: TrolleyBrokerFactory) -> TrolleyBroker:
    """The broker configured as Trolley configures it, with the default limits."""
    return make_trolley_broker()


@dataclass(frozen=True)
class ProtocolBroker:
    """A broker for the protocol cases: where, and a login its server user may use."""

    name: str
    port: int
    login: dict[str, str]


@pytest.fixture(params=["embedded", pytest.param("system-mosquitto", marks=pytest.mark.mosquitto)])
def protocol_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProtocolBroker]:
    """The embedded broker, and the machine's Mosquitto at 127.0.0.1:1883 (its own config)."""
    login = {"username": "trolley_server", "password": PASSWORDS["trolley_server"]}
    if request.param == "system-mosquitto":
        require_service("Mosquitto", MOSQUITTO_ADDR)
        yield ProtocolBroker("system-mosquitto", MOSQUITTO_ADDR[1], login)
        return
    handle = EmbeddedHandle(tmp_path)
    yield ProtocolBroker("embedded", handle.port, login)
    handle.close()


WireFactory = Callable[[int], Wire]


@pytest.fixture
def wires() -> Iterator[WireFactory]:
    """Open raw connections (`wires(port)`) that are all closed at teardown."""
    opened: list[Wire] = []

    def open_one(port: int) -> Wire:
        connection = Wire(port)
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        connection.close()


PeerFactory = Callable[..., Peer]


@pytest.fixture
def peer() -> Iterator[PeerFactory]:
    """Make peers (`peer(port, client_id, **options)`) that are all closed at teardown."""
    made: list[Peer] = []

    def make(port: int, client_id: str, **options: Any) -> Peer:
        created = Peer(port, client_id, **options)
        made.append(created)
        return created

    yield make
    for created in made:
        created.close()
