"""A live device channel: a committed database, a real broker, the worker's channel, devices."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

import server.models_registry  # noqa: F401  (every table, for emptying)
from mqtt.broker import EmbeddedBroker
from mqtt.client import make_client
from mqtt.envelope import decode_public_key, encode_public_key, key_id, open_envelope, sign
from mqtt.messages import AckState, Command, build_ack
from mqtt.topics import QOS, ack_topic, cmd_topic, status_topic
from server.auth.models import Role, User
from server.auth.services import create_user
from server.config import Settings
from server.crypto import SecretBox
from server.db import Base, Database, make_engine, migrate
from server.device_channel import DeviceChannel
from server.devices.models import Device
from server.enrolment.services import (
    enrol,
    issue_enrolment_token,
    server_key,
    write_broker_passwords,
)
from server.schools.services import create_school
from tests.helpers import (
    MOSQUITTO_ADDR,
    POSTGRES_ADDR,
    free_port,
    migrated_sqlite,
    require_service,
)
from tests.server.conftest import KIOSK, POSTGRES_BASE, new_device, settings_on, settle


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("live") / "live.db")


def _empty(url: str) -> None:
    """Remove every row (fast, unlike migrating afresh) so each test starts clean."""
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    else:
        # Self-references (the location tree) would refuse a row-by-row delete; the pragma
        # only changes outside a transaction, so use the driver connection directly.
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.execute("BEGIN IMMEDIATE")
            for table in tables:
                cursor.execute(f'DELETE FROM "{table}"')
            cursor.execute("COMMIT")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            raw.close()
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database that commits for real (the worker runs in its own threads)."""
    url: str = request.getfixturevalue(f"live_{request.param}")
    yield url
    _empty(url)


@pytest.fixture(scope="session")
def live_postgres() -> Iterator[str]:
    require_service("PostgreSQL", POSTGRES_ADDR)
    schema = f"live_{uuid.uuid4().hex[:10]}"  # one per run; tables are emptied between tests
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_BASE}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@dataclass
class FakeDevice:
    """A scripted device built from the wire contract (the real kiosk has its own suite)."""

    mqtt_id: str
    password: str
    key: Ed25519PrivateKey
    server_keys: dict[str, str]
    port: int
    photos: int = 3
    executed: list[str] = field(default_factory=list)
    inbox: queue.Queue[bytes] = field(default_factory=queue.Queue)
    client: Any = None

    def connect(self, keepalive: int = 60) -> None:
        self.client = make_client(
            self.mqtt_id,
            username=self.mqtt_id,
            password=self.password,
            will_topic=status_topic(self.mqtt_id),
            will_payload=b"offline",
        )
        connected = threading.Event()

        def on_connect(client: Any, *_a: Any) -> None:
            client.subscribe(cmd_topic(self.mqtt_id), qos=QOS)
            client.publish(status_topic(self.mqtt_id), b"online", qos=QOS, retain=True)
            connected.set()

        self.client.on_connect = on_connect
        self.client.on_message = lambda _c, _u, m: self.inbox.put(bytes(m.payload))
        self.client.connect("127.0.0.1", self.port, keepalive=keepalive)
        self.client.loop_start()
        assert connected.wait(10), f"{self.mqtt_id} could not connect"

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def answer(self, timeout: float = 15.0, *, forge: bool = False) -> Command:
        """Verify the next command, act on it once, and ack it (signed by this device)."""
        raw = self.inbox.get(timeout=timeout)
        keys = {kid: decode_public_key(pub) for kid, pub in self.server_keys.items()}
        body = open_envelope(raw, keys, device_id=self.mqtt_id, now=int(time.time()))
        command = Command.from_body(body)
        now = int(time.time())
        signer = Ed25519PrivateKey.generate() if forge else self.key
        kid = key_id(signer.public_key())
        self._ack(command.cmd_id, AckState.RECEIVED, signer, kid, now)
        result: dict[str, Any] = {}
        if command.cmd_id not in self.executed:
            self.executed.append(command.cmd_id)
            if command.type.value == "wipe_photos":
                result = {"deleted": self.photos, "remaining": 0}
                self.photos = 0
        self._ack(command.cmd_id, AckState.DONE, signer, kid, now, result)
        return command

    def _ack(
        self,
        cmd_id: str,
        state: AckState,
        signer: Ed25519PrivateKey,
        kid: str,
        now: int,
        result: dict[str, Any] | None = None,
    ) -> None:
        ack = build_ack(cmd_id, state, device_id=self.mqtt_id, kid=kid, now=now, result=result)
        info = self.client.publish(ack_topic(self.mqtt_id), sign(ack.to_body(), signer), qos=QOS)
        info.wait_for_publish(timeout=5)


@dataclass
class Live:
    broker: str  # "embedded" or "mosquitto"
    settings: Settings
    database: Database
    box: SecretBox
    channel: DeviceChannel
    port: int
    technician: User
    head: User
    devices: list[Device]
    fakes: list[FakeDevice]


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def live(request: pytest.FixtureRequest, live_url: str, tmp_path: Path) -> Iterator[Live]:
    """A school with three enrolled devices, a broker, and the worker's channel running."""
    if request.param == "mosquitto":
        require_service("Mosquitto", MOSQUITTO_ADDR)
        port = MOSQUITTO_ADDR[1]
    else:
        port = free_port()
    settings = settings_on(live_url, tmp_path / "instance", mqtt_port=port)
    database = Database(live_url)
    box = SecretBox(settings.data_keys)
    fakes = []
    with database.begin() as session:
        school = create_school(session, slug=f"s{uuid.uuid4().hex[:8]}", name="Live Primary")
        tech = create_user(
            session,
            actor=None,
            school=school,
            email=f"t{uuid.uuid4().hex[:6]}@x.example",
            name="Tech",
            role=Role.TECHNICIAN,
            password="long-password-1",
        )
        head = settle(
            create_user(
                session,
                actor=None,
                school=school,
                email=f"h{uuid.uuid4().hex[:6]}@x.example",
                name="Head",
                role=Role.HEADTEACHER,
                password="long-password-1",
            )
        )
        devices = []
        for n in range(3):
            device = new_device(
                school.id, f"LIVE-{n}", f"LIVE{uuid.uuid4().hex[:8].upper()}", **KIOSK
            )
            session.add(device)
            devices.append(device)
        session.flush()
        server_key(session, box)
    for device in devices:
        with database.begin() as session:
            device = session.merge(device)
            _token, payload = issue_enrolment_token(session, None, device, settings)
            key = Ed25519PrivateKey.generate()
            done = enrol(
                session,
                box,
                settings,
                token=payload.token,
                public_key=encode_public_key(key.public_key()),
                platform="simulated",
            )
            fakes.append(
                FakeDevice(done.identity.mqtt_id, done.password, key, done.server_keys, port)
            )
    broker = None
    if request.param == "embedded":
        with database.begin() as session:
            password_file = write_broker_passwords(session, settings)
        assert password_file is not None
        broker = EmbeddedBroker(
            password_file=password_file,
            data_dir=tmp_path / "broker-data",
            port=port,
            server_users=(settings.mqtt_server_user,),
        )
        broker.start()
    from server.device_channel import broker_url_for_worker

    channel = DeviceChannel(
        database,
        settings,
        box,
        broker_url=broker_url_for_worker(settings),
        client_id=f"trolley-test-{uuid.uuid4().hex[:8]}",
    )
    channel.start()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            channel.pump()  # never raises: the test sees the consequence of a failure
            channel.wait_for_work(0.05)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    assert channel.connected.wait(10), "the worker could not connect to the broker"
    with database.begin() as session:
        loaded = [session.merge(d) for d in devices]
        tech_row, head_row = session.merge(tech), session.merge(head)
    yield Live(
        request.param, settings, database, box, channel, port, tech_row, head_row, loaded, fakes
    )
    stop.set()
    pumper.join(timeout=5)
    for fake in fakes:
        if fake.client is not None:
            fake.disconnect()
    channel.stop()
    if broker is not None:
        broker.stop()
    database.dispose()
