"""Fixtures for the mqtt suite: real brokers (embedded amqtt and a private Mosquitto) and peers."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from mqtt.broker import EmbeddedBroker
from mqtt.mosquitto import write_mosquitto_config
from mqtt.passwords import write_password_file
from tests.helpers import CI, free_port
from tests.mqtt.support import PASSWORDS, Peer, wait_for_port

MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")


class BrokerHandle(Protocol):
    """What the shared broker tests need from either broker."""

    name: str
    port: int

    def restart(self) -> None: ...


class EmbeddedHandle:
    """The embedded amqtt broker, restartable on the same port and data directory."""

    name = "embedded"

    def __init__(self, directory: Path) -> None:
        password_file = directory / "passwd"
        write_password_file(password_file, PASSWORDS)
        self.broker = EmbeddedBroker(
            password_file=password_file, data_dir=directory / "data", port=free_port()
        )
        self.broker.start()
        self.port = self.broker.port

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
    """A private Mosquitto process configured by `write_mosquitto_config` on a free port."""

    name = "mosquitto"

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        # Mosquitto started as root drops to the `mosquitto` user, who cannot read a tmp dir.
        run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
        self.log = directory / "mosquitto.log"
        self.files = write_mosquitto_config(
            directory, port=self.port, passwords=PASSWORDS, run_as_user=run_as, log_file=self.log
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
