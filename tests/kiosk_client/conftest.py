"""Fixtures for the kiosk suite: real brokers (embedded amqtt and a private Mosquitto), a stub
server (HTTP + MQTT peer), and enrolled kiosks running in this process."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pwd
import signal
import socket
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kiosk_client.agent import Agent
from kiosk_client.config import KioskConfig, load_config, write_config
from kiosk_client.enrol import enrol
from mqtt.broker import EmbeddedBroker
from mqtt.mosquitto import write_mosquitto_config
from mqtt.passwords import hash_password, write_password_file
from tests.helpers import CI, free_port
from tests.kiosk_client.support import (
    SERVER_PASSWORD,
    SERVER_USER,
    TIMEOUT,
    FakeServer,
    Identity,
    IdentityPool,
    ServerPeer,
    identities,
    wait_until,
)

MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")
# Enough for every test in a session; the last FLEET_SIZE identities form the simulated fleet.
POOL_SIZE = 600
FLEET_SIZE = 200


@pytest.fixture(scope="session")
def identity_list() -> list[Identity]:
    return list(identities(POOL_SIZE))


def _pool(identity_list: list[Identity]) -> IdentityPool:
    """Identities for single kiosks (the fleet's are kept apart, see `test_simulator`)."""
    return IdentityPool(identity_list[:-FLEET_SIZE])


@pytest.fixture(scope="session")
def password_hashes(identity_list: list[Identity]) -> dict[str, str]:
    hashes = {SERVER_USER: hash_password(SERVER_PASSWORD)}
    for identity in identity_list:
        hashes[identity.device_id] = hash_password(identity.password, iterations=100)
    return hashes


@dataclass
class BrokerHandle:
    name: str
    port: int
    pool: IdentityPool
    stop: Callable[[], None] = field(repr=False)


_EMBEDDED_PORTS: list[int] = []


def collect_amqtt_leaks() -> None:
    """Collect connections amqtt 0.12 leaked, without letting their ResourceWarnings fail a test.

    amqtt's `StreamWriterAdapter.close()` drains before closing and so never closes a transport
    whose client hung up first (`handler.stop()` then swallows the OSError). The filters match
    only those objects: asyncio transports and sockets whose local port is an embedded broker's.
    """
    with warnings.catch_warnings():
        # Raised by the __del__ of asyncio's transports and stream writers (the broker's side).
        warnings.filterwarnings("ignore", category=ResourceWarning, module="asyncio")
        for port in _EMBEDDED_PORTS:
            warnings.filterwarnings(
                "ignore",
                rf"unclosed <socket\.socket .*laddr=\('127\.0\.0\.1', {port}\)>",
                ResourceWarning,
            )
        gc.collect()


@pytest.fixture(autouse=True)
def _amqtt_leaks() -> Iterator[None]:
    yield
    if _EMBEDDED_PORTS:
        collect_amqtt_leaks()


@pytest.fixture(scope="session")
def embedded_session(
    tmp_path_factory: pytest.TempPathFactory,
    identity_list: list[Identity],
    password_hashes: dict[str, str],
) -> Iterator[BrokerHandle]:
    directory = tmp_path_factory.mktemp("embedded-broker")
    password_file = directory / "passwd"
    write_password_file(password_file, hashes=password_hashes)
    broker = EmbeddedBroker(
        password_file=password_file, data_dir=directory / "data", port=free_port()
    )
    broker.start()
    _EMBEDDED_PORTS.append(broker.port)
    yield BrokerHandle("embedded", broker.port, _pool(identity_list), broker.stop)
    collect_amqtt_leaks()
    broker.stop()
    collect_amqtt_leaks()


def require_mosquitto() -> None:
    """Fail under CI=true (never skip) if mosquitto is not installed; skip visibly otherwise."""
    if MOSQUITTO_BINARY.exists():
        return
    message = f"{MOSQUITTO_BINARY} is not installed"
    if CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message}; set CI=true to make this a failure")


def start_mosquitto(directory: Path, *, port: int, **options: Any) -> Callable[[], None]:
    """A private Mosquitto from `write_mosquitto_config`; returns its stop function."""
    # Mosquitto started as root drops to the `mosquitto` user, who cannot read a tmp dir.
    run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
    log = directory / "mosquitto.log"
    files = write_mosquitto_config(
        directory, port=port, run_as_user=run_as, log_file=log, host="127.0.0.1", **options
    )
    process = subprocess.Popen(
        [str(MOSQUITTO_BINARY), "-c", str(files.conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def accepting() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        return True

    try:
        wait_until(accepting, timeout=10)
    except AssertionError:
        process.kill()
        process.wait(5)
        raise AssertionError(f"mosquitto did not start:\n{log.read_text()}") from None

    def stop() -> None:
        if process.poll() is None:
            # SIGTERM makes Mosquitto write its persistence file before exiting.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    return stop


@pytest.fixture(scope="session")
def mosquitto_session(
    tmp_path_factory: pytest.TempPathFactory,
    identity_list: list[Identity],
    password_hashes: dict[str, str],
) -> Iterator[BrokerHandle]:
    require_mosquitto()
    port = free_port()
    stop = start_mosquitto(tmp_path_factory.mktemp("mosquitto"), port=port, hashes=password_hashes)
    yield BrokerHandle("mosquitto", port, _pool(identity_list), stop)
    stop()


@pytest.fixture(params=["embedded", "mosquitto"])
def broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """Each test using this runs against the embedded broker and against Mosquitto."""
    handle: BrokerHandle = request.getfixturevalue(f"{request.param}_session")
    return handle


@pytest.fixture
def embedded(embedded_session: BrokerHandle) -> BrokerHandle:
    """The embedded broker only (tests whose broker does not matter)."""
    return embedded_session


@pytest.fixture
def server(broker: BrokerHandle) -> Iterator[FakeServer]:
    fake = FakeServer(pool=broker.pool, broker_port=broker.port)
    yield fake
    fake.close()


@pytest.fixture
def peer(broker: BrokerHandle, server: FakeServer) -> Iterator[ServerPeer]:
    server_peer = ServerPeer(broker.port, server)
    yield server_peer
    server_peer.close()


@dataclass
class Kiosk:
    """An enrolled simulated kiosk, optionally running in this process."""

    config: KioskConfig
    peer: ServerPeer | None = None
    agent: Agent | None = None

    @property
    def device_id(self) -> str:
        return self.config.device_id

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def device_dir(self) -> Path:
        assert self.config.simulated is not None
        return self.config.simulated.root

    @property
    def photos(self) -> list[Path]:
        return sorted(p for p in (self.device_dir / "DCIM").rglob("*") if p.is_file())

    def device_state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.device_dir / "state.json").read_text())
        return data

    def operations(self, op: str | None = None) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = self.device_state()["history"]
        return [entry for entry in history if op is None or entry["op"] == op]

    def set(self, **changes: Any) -> None:
        """Change the kiosk's config on disk (before starting)."""
        self.config = self.config.with_overrides(**changes)
        write_config(self.config)

    def start(self) -> Agent:
        self.agent = Agent(load_config(self.data_dir))
        self.agent.start()
        assert self.agent.wait_connected(TIMEOUT), "kiosk did not connect"
        if self.peer is not None:
            # The first report follows the subscription, so commands sent now are delivered.
            self.peer.wait_report(self.device_id)
        return self.agent

    def stop(self) -> None:
        if self.agent is not None:
            was_connected = self.agent.connected
            self.agent.stop()
            self.agent = None
            if was_connected and self.peer is not None:
                # Let the broker finish delivering `offline` before anyone disconnects: amqtt
                # 0.12 leaks a connection whose peer goes away while it is still writing. Best
                # effort only: amqtt also drops a broadcast now and then (see the report).
                with contextlib.suppress(AssertionError):
                    self.peer.wait_status(self.device_id, b"offline", timeout=2)


KioskFactory = Callable[..., Kiosk]


@pytest.fixture
def kiosk_factory(tmp_path: Path, server: FakeServer, peer: ServerPeer) -> Iterator[KioskFactory]:
    made: list[Kiosk] = []

    def make(name: str = "kiosk", *, start: bool = True, photos: int = 5, **changes: Any) -> Kiosk:
        config = enrol(
            server.payload(f"OAK-{len(made) + 1:04d}"),
            platform="simulated",
            data_dir=tmp_path / name,
            sample_photos=photos,
            fsync=False,
        )
        kiosk = Kiosk(config, peer)
        if changes:
            kiosk.set(**changes)
        made.append(kiosk)
        if start:
            kiosk.start()
        return kiosk

    yield make
    for kiosk in made:
        kiosk.stop()


@pytest.fixture
def kiosk(kiosk_factory: KioskFactory) -> Kiosk:
    """One enrolled, running simulated kiosk."""
    return kiosk_factory()


__all__ = ["BrokerHandle", "Kiosk", "KioskFactory", "wait_until"]
