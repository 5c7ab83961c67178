"""The whole system with real parts: HTTP server, database, broker, worker channel, kiosk agents."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select, text

from kiosk_client import Agent, enrol, load_config
from kiosk_client.adapters.simulated import PHOTO_DIR, STATE_FILE
from kiosk_client.files import read_json
from mqtt.broker import EmbeddedBroker
from mqtt.mosquitto import password_file_text, write_mosquitto_config
from server import create_app
from server.auth.models import Role, User
from server.auth.services import create_user, issue_token
from server.commands.models import Command, CommandStatus
from server.config import Settings
from server.crypto import SecretBox
from server.db import Base, Database, make_engine
from server.device_channel import DeviceChannel, broker_url_for_worker
from server.devices.models import Device
from server.enrolment.services import (
    broker_password_hashes,
    issue_enrolment_token,
    server_broker_password,
    server_key,
    write_broker_passwords,
)
from server.schools.models import LocationKind
from tests.helpers import CI, MOSQUITTO_ADDR, free_port, require_service, unused_code
from tests.mqtt.support import wait_for_port
from tests.server.commands.conftest import (  # noqa: F401  (fixtures shared with the channel suite)
    live_postgres,
    live_sqlite,
    wait_until,
)
from tests.server.conftest import (
    KIOSK,
    new_device,
    seed_trolley_school,
    serving,
    settings_on,
    settle,
)

MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")
FINISHED = {CommandStatus.DONE, CommandStatus.FAILED, CommandStatus.REJECTED}


def require_mosquitto_binary() -> None:
    if MOSQUITTO_BINARY.exists():
        return
    if CI:
        pytest.fail(f"{MOSQUITTO_BINARY} is not installed; CI=true requires it", pytrace=False)
    pytest.skip(f"{MOSQUITTO_BINARY} is not installed")


class PrivateMosquitto:
    """Mosquitto on a free port with the server's per-device password file (SIGHUP reloads it)."""

    def __init__(self, directory: Path, port: int, hashes: dict[str, str]) -> None:
        self.port = port
        run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
        self.log = directory / "mosquitto.log"
        self.files = write_mosquitto_config(
            directory, port=port, hashes=hashes, run_as_user=run_as, log_file=self.log
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(MOSQUITTO_BINARY), "-c", str(self.files.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port)

    def reload(self, hashes: dict[str, str]) -> None:
        self.files.password_file.write_text(password_file_text(None, hashes=hashes))
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process = None


@dataclass
class Kiosk:
    """A real kiosk agent (simulated platform) enrolled over HTTP."""

    asset_tag: str
    data_dir: Path
    agent: Agent | None = None

    @property
    def device_root(self) -> Path:
        return self.data_dir / "device"

    def photos(self) -> int:
        folder = self.device_root / PHOTO_DIR
        return sum(1 for p in folder.iterdir() if p.is_file()) if folder.exists() else 0

    def state(self) -> dict[str, Any]:
        data = read_json(self.device_root / STATE_FILE)
        assert isinstance(data, dict)
        return data

    def ran(self, op: str) -> int:
        """How many times the device started `op` (its own operation history)."""
        return sum(1 for entry in self.state().get("history", []) if entry.get("op") == op)

    def start(self) -> None:
        self.agent = Agent(load_config(self.data_dir))
        self.agent.start()

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None


@dataclass
class Stack:
    """Everything a school needs, running for real on 127.0.0.1."""

    kind: str
    settings: Settings
    database: Database
    box: SecretBox
    directory: Path
    school_id: int = 0
    trolley_id: int = 0
    technician: User | None = None
    head: User | None = None
    lead: User | None = None
    kiosks: list[Kiosk] = field(default_factory=list)
    channel: DeviceChannel | None = None
    embedded: EmbeddedBroker | None = None
    mosquitto: PrivateMosquitto | None = None
    _threads: list[Any] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- devices ---------------------------------------------------------------------
    def add_devices(self, count: int, *, prefix: str = "E2E") -> list[Device]:
        with self.database.begin() as session:
            devices = [
                new_device(
                    self.school_id,
                    f"{prefix}-{len(self.kiosks) + n:04d}",
                    f"SN{uuid.uuid4().hex[:10].upper()}",
                    home_location_id=self.trolley_id,
                    **KIOSK,
                )
                for n in range(count)
            ]
            session.add_all(devices)
            session.flush()
            session.expunge_all()
        return devices

    def enrolment_code(self, device_id: int) -> str:
        with self.database.begin() as session:
            device = session.get(Device, device_id)
            assert device is not None
            _token, payload = issue_enrolment_token(session, None, device, self.settings)
            return payload.encode()

    def enrol(
        self, devices: Sequence[Device], *, photos: int = 4, start: bool = True, delay: float = 0.0
    ) -> list[Kiosk]:
        """Each device enrols over HTTP with its own one-time code, then its agent starts."""
        made = []
        for device in devices:
            kiosk = Kiosk(device.asset_tag, self.directory / "kiosks" / device.asset_tag)
            enrol(
                self.enrolment_code(device.id),
                platform="simulated",
                data_dir=kiosk.data_dir,
                sample_photos=photos,
                report_interval=0,
                fsync=False,
            )
            if delay:  # each device operation takes this long (to catch a fault mid-command)
                config = kiosk.data_dir / "config.toml"
                config.write_text(
                    config.read_text().replace(
                        "operation_delay = 0.0", f"operation_delay = {delay}"
                    )
                )
            made.append(kiosk)
        self.sync_passwords()
        for kiosk in made:
            if start:
                kiosk.start()
        self.kiosks.extend(made)
        return made

    def sync_passwords(self) -> None:
        """Mosquitto reloads the per-device hashes (the embedded broker reloads by itself)."""
        if self.mosquitto is not None:
            with self.database.begin() as session:
                self.mosquitto.reload(broker_password_hashes(session, self.settings))

    # --- the HTTP API ----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def headers(self, user: User | None) -> dict[str, str]:
        """A bearer token for `user` (the API's own tokens)."""
        assert user is not None
        with self.database.begin() as session:
            _token, plain = issue_token(session, session.merge(user), "e2e")
            session.commit()
        return {"Authorization": f"Bearer {plain}"}

    def approval_code(self, user: User | None) -> dict[str, str]:
        """A fresh code from `user`'s app: a token approves a destructive command only with one."""
        assert user is not None
        with self.database.begin() as session:
            sealed = session.merge(user).totp_secret_sealed
        assert sealed is not None
        return {"code": unused_code(self.box.open(sealed), ("e2e", user.id))}

    def api(self, user: User | None, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(
            method,
            f"{self.base_url}/api/v1{path}",
            headers=self.headers(user),
            timeout=30,
            **kwargs,
        )
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    # --- commands --------------------------------------------------------------------
    def details(self, cmd_ids: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
        """Each command's status, detail and result, for failure messages."""
        with self.database.begin() as session:
            rows = session.execute(
                select(Command.status, Command.detail, Command.result).where(
                    Command.cmd_id.in_(list(cmd_ids))
                )
            ).all()
        return [(str(status), detail, result) for status, detail, result in rows]

    def statuses(self, cmd_ids: Sequence[str]) -> dict[str, CommandStatus]:
        with self.database.begin() as session:
            rows = session.execute(
                select(Command.cmd_id, Command.status).where(Command.cmd_id.in_(list(cmd_ids)))
            ).all()
        return {cmd_id: status for cmd_id, status in rows}

    def wait_finished(self, cmd_ids: Sequence[str], timeout: float = 30.0) -> dict[str, Any]:
        def finished() -> bool:
            got = self.statuses(cmd_ids)
            return len(got) == len(cmd_ids) and all(s in FINISHED for s in got.values())

        try:
            wait_until(finished, timeout, "every command to finish")
        except AssertionError:
            raise AssertionError(f"unfinished: {self.statuses(cmd_ids)}") from None
        return self.statuses(cmd_ids)

    def env(self) -> dict[str, str]:
        """TROLLEY_* settings for a `trolley` subprocess on this stack's database and broker."""
        env = {
            **os.environ,
            "TROLLEY_DATABASE_URL": self.settings.database_url,
            "TROLLEY_INSTANCE_DIR": str(self.settings.instance_dir),
            "TROLLEY_DATA_KEYS": ",".join(self.settings.data_keys),
            "TROLLEY_SECRET_KEY": self.settings.secret_key,
            "TROLLEY_MQTT_PORT": str(self.settings.mqtt_port),
            "TROLLEY_BASE_URL": self.settings.base_url,
            "TROLLEY_TESTING": "1",
        }
        if self.settings.mqtt_url:
            env["TROLLEY_MQTT_URL"] = self.settings.mqtt_url
        return env

    # --- the worker side ---------------------------------------------------------------
    def start_channel(self) -> None:
        """The worker's channel and its publishing loop (what `run_forever` does, in a thread)."""
        self._stop.clear()
        self.channel = DeviceChannel(
            self.database,
            self.settings,
            self.box,
            broker_url=broker_url_for_worker(self.settings),
            client_id=f"trolley-e2e-{uuid.uuid4().hex[:8]}",
        )
        self.channel.start()
        channel = self.channel

        def pump() -> None:
            while not self._stop.is_set():
                channel.pump()  # never raises: the test sees the consequence of a failure
                channel.wait_for_work(0.05)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        self._threads.append(thread)
        assert channel.connected.wait(15), "the worker could not connect to the broker"

    def stop_channel(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self.channel is not None:
            self.channel.stop()
            self.channel = None

    def restart_broker(self, *, kill: bool = False) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded.start()
        elif self.mosquitto is not None:
            self.mosquitto.stop(kill=kill)
            self.mosquitto.start()

    def close(self) -> None:
        for kiosk in self.kiosks:
            kiosk.stop()
        self.stop_channel()
        if self.embedded is not None:
            self.embedded.stop()
        if self.mosquitto is not None:
            self.mosquitto.stop()
        self.database.dispose()


def empty_database(url: str) -> None:
    """Remove every row so each test starts clean (locations refer to themselves: unlink first)."""
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            conn.execute(text("UPDATE locations SET parent_id = NULL"))
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database that commits for real (server, worker and test share it)."""
    url: str = request.getfixturevalue(f"live_{request.param}")
    yield url
    empty_database(url)


def stack_app(settings: Settings) -> Flask:
    """The server's app on the stack's settings."""
    return create_app(
        {
            "testing": True,
            "database_url": settings.database_url,
            "instance_dir": settings.instance_dir,
            "data_keys": settings.data_keys,
            "base_url": settings.base_url,
            "mqtt_url": settings.mqtt_url,
            "mqtt_port": settings.mqtt_port,
            "secret_key": settings.secret_key,
        }
    )


def build_stack(kind: str, url: str, directory: Path) -> Iterator[Stack]:
    """A school with a trolley, the HTTP server, a broker of `kind` and the worker's channel.

    `kind`: "embedded" (Trolley's own broker), "mosquitto" (a private Mosquitto with the
    server's per-device passwords) or "anonymous" (the machine's Mosquitto, no logins: anyone
    on the network can publish anywhere, the attacker's view of a misconfigured broker).
    """
    http_port = free_port()
    instance = directory / "instance"
    base = {"base_url": f"http://127.0.0.1:{http_port}", "secret_key": "e2e-" + "x" * 40}
    mosquitto_port = free_port()
    if kind == "embedded":
        settings = settings_on(url, instance, **base, mqtt_port=free_port())
    elif kind == "mosquitto":
        require_mosquitto_binary()
        plain = settings_on(url, instance, **base)
        secret = server_broker_password(plain)
        settings = settings_on(
            url,
            instance,
            **base,
            mqtt_url=f"mqtt://{plain.mqtt_server_user}:{secret}@127.0.0.1:{mosquitto_port}",
        )
    else:
        require_service("Mosquitto", MOSQUITTO_ADDR)
        settings = settings_on(
            url, instance, **base, mqtt_url=f"mqtt://127.0.0.1:{MOSQUITTO_ADDR[1]}"
        )
    database = Database(url)
    box = SecretBox(settings.data_keys)
    stack = Stack(kind, settings, database, box, directory)
    with database.begin() as session:
        seeded = seed_trolley_school(
            session,
            "oakfield",
            place=(LocationKind.SITE, "Main site"),
            trolley_name="Year 4 trolley",
            capacity=60,
        )
        school, trolley = seeded.school, seeded.trolley
        users = {}
        for role in (Role.TECHNICIAN, Role.HEADTEACHER, Role.COMPUTING_LEAD):
            users[role] = create_user(
                session,
                actor=None,
                school=school,
                email=f"{role.value}-{uuid.uuid4().hex[:6]}@oakfield.example",
                name=role.value.title(),
                role=role,
                password="long-password-1",
            )
        # The headteacher approves destructive commands: an account past its cooling-off,
        # with a second factor.
        settle(users[Role.HEADTEACHER])
        server_key(session, box)
        session.commit()
        stack.school_id, stack.trolley_id = school.id, trolley.id
        stack.technician, stack.head = users[Role.TECHNICIAN], users[Role.HEADTEACHER]
        stack.lead = users[Role.COMPUTING_LEAD]
        session.expunge_all()
    if kind == "embedded":
        with database.begin() as session:
            password_file = write_broker_passwords(session, settings)
        assert password_file is not None
        stack.embedded = EmbeddedBroker(
            password_file=password_file,
            data_dir=directory / "broker-data",
            port=settings.mqtt_port,
            server_users=(settings.mqtt_server_user,),
        )
        stack.embedded.start()
    elif kind == "mosquitto":
        with database.begin() as session:
            hashes = broker_password_hashes(session, settings)
        stack.mosquitto = PrivateMosquitto(directory / "mosquitto", mosquitto_port, hashes)
    with serving(stack_app(settings), http_port):
        try:
            stack.start_channel()
            yield stack
        finally:
            stack.close()


@pytest.fixture(params=["embedded", "mosquitto"])
def stack(request: pytest.FixtureRequest, live_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The whole system on each database and each broker (private Mosquitto with passwords)."""
    yield from build_stack(request.param, live_url, tmp_path)


@pytest.fixture
def anonymous_stack(live_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The whole system on the machine's anonymous Mosquitto (anyone can publish anything)."""
    yield from build_stack("anonymous", live_url, tmp_path)
