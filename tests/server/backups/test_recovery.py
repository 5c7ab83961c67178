"""A backup taken on one machine recovers the school on another (P-SEC-2, P-SEC-6)."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, select, text

from mqtt.broker import EmbeddedBroker
from mqtt.envelope import encode_public_key
from server.auth.models import Role
from server.auth.services import create_user
from server.cli import main
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.config import Settings, load_settings, replace
from server.crypto import SecretBox
from server.db import Database
from server.device_channel import DeviceChannel, broker_url_for_worker
from server.enrolment.services import enrol, issue_enrolment_token, server_key
from server.escrow.models import SecretKind
from server.escrow.services import deposit, reveal
from server.schools.services import create_school
from tests.helpers import POSTGRES_ADDR, free_port, require_service
from tests.server.commands.conftest import FakeDevice, wait_until
from tests.server.conftest import KIOSK, POSTGRES_BASE, new_device

PASSPHRASE = "staple battery horse correct"
PIN = "482916"


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@dataclass
class Machines:
    """Two servers that share nothing: their own instance folders, databases and keys."""

    old: dict[str, str]
    new: dict[str, str]
    tmp: Path

    def passphrase_file(self, text: str) -> str:
        path = self.tmp / f"pass-{uuid.uuid4().hex[:6]}"
        path.write_text(text + "\n")
        return str(path)


def _production(tmp: Path, url: str) -> dict[str, str]:
    """Settings as a real school has them: keys named by the environment, not made up."""
    keys = tmp / "etc" / "data.keys"
    keys.parent.mkdir(parents=True)
    keys.write_text(Fernet.generate_key().decode() + "\n")
    return {
        "TROLLEY_INSTANCE_DIR": str(tmp / "old-instance"),
        "TROLLEY_DATABASE_URL": url,
        "TROLLEY_SECRET_KEY": secrets.token_urlsafe(40),
        "TROLLEY_DATA_KEY_FILE": str(keys),
    }


@pytest.fixture
def sqlite_machines(tmp_path: Path) -> Machines:
    old = _production(tmp_path, f"sqlite:///{tmp_path / 'old' / 'trolley.db'}")
    (tmp_path / "old").mkdir()
    new = {
        "TROLLEY_INSTANCE_DIR": str(tmp_path / "new-instance"),
        "TROLLEY_DATABASE_URL": f"sqlite:///{tmp_path / 'new' / 'trolley.db'}",
    }
    return Machines(old, new, tmp_path)


@pytest.fixture(scope="session")
def other_postgres_database() -> Iterator[str]:
    """A second database on the server, made once: the new machines' (dropping one is slow)."""
    require_service("PostgreSQL", POSTGRES_ADDR)
    name = f"restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES_BASE.rsplit('/', 1)[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_machines(tmp_path: Path, other_postgres_database: str) -> Iterator[Machines]:
    """The old server in a schema of one database; the new one in another database."""
    schema = f"bk_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = f"?options=-csearch_path%3D{schema}"
    old = _production(tmp_path, f"{POSTGRES_BASE}{options}")
    new = {
        "TROLLEY_INSTANCE_DIR": str(tmp_path / "new-instance"),
        "TROLLEY_DATABASE_URL": f"{other_postgres_database}{options}",
    }
    yield Machines(old, new, tmp_path)
    other = create_engine(other_postgres_database, isolation_level="AUTOCOMMIT")
    for engine in (admin, other):
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def machines(request: pytest.FixtureRequest) -> Machines:
    return request.getfixturevalue(f"{request.param}_machines")  # type: ignore[no-any-return]


@dataclass
class School:
    device_id: int
    technician_id: int
    escrow_id: int
    fake: FakeDevice


def _school_with_an_enrolled_device(settings: Settings) -> School:
    """A school, a technician, an enrolled kiosk and its PIN in escrow, on the old server."""
    database = Database(settings.database_url)
    box = SecretBox(settings.data_keys)
    try:
        with database.begin() as session:
            school = create_school(session, slug="oakfield", name="Oakfield Primary")
            tech = create_user(
                session,
                actor=None,
                school=school,
                email="tech@oakfield.example",
                name="Tech",
                role=Role.TECHNICIAN,
                password="long-password-1",
            )
            device = new_device(school.id, "OAK-K1", "K1SERIAL", **KIOSK)
            session.add(device)
            session.flush()
            server_key(session, box)
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
            entry = deposit(session, box, session.merge(tech), device, SecretKind.PIN, PIN)
            fake = FakeDevice(done.identity.mqtt_id, done.password, key, done.server_keys, 0)
            return School(device.id, tech.id, entry.id, fake)
    finally:
        database.dispose()


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_backup_restores_the_school_on_a_new_machine(machines: Machines) -> None:
    """P-SEC-6: restored on a new machine, enrolled devices obey it and escrowed PINs open."""
    assert run(machines.old, "db", "upgrade").exit_code == 0
    old_settings = load_settings(machines.old)
    school = _school_with_an_enrolled_device(old_settings)
    archive = machines.tmp / "oakfield.backup"
    made = run(
        machines.old,
        "backup",
        str(archive),
        "--passphrase-file",
        machines.passphrase_file(PASSPHRASE),
    )
    assert made.exit_code == 0, made.output
    assert PIN.encode() not in archive.read_bytes()
    for key in old_settings.data_keys:
        assert key.encode() not in archive.read_bytes()

    # The new machine already has something of its own: a wrong passphrase must not touch it.
    new_instance = Path(machines.new["TROLLEY_INSTANCE_DIR"])
    new_instance.mkdir()
    (new_instance / "secret_key").write_text("x" * 40)
    before = _fingerprint(new_instance)
    wrong = run(
        machines.new,
        "restore",
        str(archive),
        "--yes",
        "--passphrase-file",
        machines.passphrase_file("not the passphrase at all"),
    )
    assert wrong.exit_code == 1
    assert "passphrase does not open oakfield.backup. Nothing was changed." in wrong.output
    assert _fingerprint(new_instance) == before
    if machines.new["TROLLEY_DATABASE_URL"].startswith("sqlite"):
        assert not (machines.tmp / "new" / "trolley.db").exists()

    restored = run(
        machines.new,
        "restore",
        str(archive),
        "--yes",
        "--passphrase-file",
        machines.passphrase_file(PASSPHRASE),
    )
    assert restored.exit_code == 0, restored.output
    assert "FAIL" not in restored.output

    # No key is set on the new machine: everything comes from the backup.
    new_settings = load_settings(machines.new)
    assert new_settings.data_keys == old_settings.data_keys
    assert new_settings.secret_key == old_settings.secret_key
    database = Database(new_settings.database_url)
    box = SecretBox(new_settings.data_keys)
    try:
        with database.begin() as session:
            from server.auth.models import User

            tech = session.get(User, school.technician_id)
            assert tech is not None
            _entry, opened = reveal(session, box, tech, school.escrow_id, reason="restore test")
        assert opened == PIN
        _command_reaches_the_enrolled_device(new_settings, database, box, school)
    finally:
        database.dispose()


def _command_reaches_the_enrolled_device(
    settings: Settings, database: Database, box: SecretBox, school: School
) -> None:
    """The new server's broker takes the device's old login; the device checks the signature."""
    port = free_port()
    settings = replace(settings, mqtt_port=port)
    broker = EmbeddedBroker(
        password_file=settings.broker_dir / "passwords",
        data_dir=settings.broker_dir / "data",
        port=port,
        server_users=(settings.mqtt_server_user,),
    )
    broker.start()
    channel = DeviceChannel(
        database,
        settings,
        box,
        broker_url=broker_url_for_worker(settings),
        client_id=f"trolley-restored-{uuid.uuid4().hex[:6]}",
    )
    channel.start()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            channel.pump()
            channel.wait_for_work(0.05)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    fake = school.fake
    fake.port = port
    try:
        assert channel.connected.wait(10), "the restored server could not reach its broker"
        fake.connect()
        with database.begin() as session:
            from server.devices.models import Device

            device = session.get(Device, school.device_id)
            assert device is not None
            commands.issue(session, None, [device], "ping")
        command = fake.answer()  # verified against the key the device pinned at enrolment
        assert command.type.value == "ping"

        def done() -> bool:
            with database.begin() as session:
                return session.scalar(select(Command.status)) is CommandStatus.DONE

        wait_until(done, what="the device's ack on the restored server")
    finally:
        stop.set()
        pumper.join(timeout=5)
        if fake.client is not None:
            fake.disconnect()
        channel.stop()
        broker.stop()


def test_restore_drill_checks_a_backup_in_a_scratch_place(machines: Machines) -> None:
    """P-SEC-2: the drill restores elsewhere, checks integrity, chain and secrets, and says so."""
    assert run(machines.old, "db", "upgrade").exit_code == 0
    _school_with_an_enrolled_device(load_settings(machines.old))
    folder = machines.tmp / "backups"
    folder.mkdir()
    passphrase = machines.passphrase_file(PASSPHRASE)
    assert run(machines.old, "backup", str(folder), "--passphrase-file", passphrase).exit_code == 0
    drilled = run(machines.old, "restore-drill", str(folder), "--passphrase-file", passphrase)
    assert drilled.exit_code == 0, drilled.output
    for line in (
        "ok    database",
        "ok    activity trail: hash chain intact",
        "ok    escrowed PINs (the newest): 1 open",
        "ok    server signing keys: 1 open",
        "The drill passed",
    ):
        assert line in drilled.output
    url = machines.old["TROLLEY_DATABASE_URL"]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            passed = conn.execute(
                text("SELECT details FROM activity_entries WHERE action = 'backup.drill'")
            ).scalar_one()
            assert '"passed": true' in str(passed).replace("'", '"').replace("True", "true")
            # A trail altered before the next backup: the drill must find it.
            conn.execute(text("UPDATE activity_entries SET action = 'x.y' WHERE seq = 2"))
    finally:
        engine.dispose()
    assert run(machines.old, "backup", str(folder), "--passphrase-file", passphrase).exit_code == 0
    # Into a scratch database named by the school this time (the new machine's, still empty).
    failed = run(
        machines.old,
        "restore-drill",
        str(folder),
        "--passphrase-file",
        passphrase,
        "--scratch-database",
        machines.new["TROLLEY_DATABASE_URL"],
    )
    assert failed.exit_code == 1
    assert "FAIL  activity trail: entry 2" in failed.output
    assert "would not recover the school" in failed.output


def test_restore_refuses_a_machine_whose_settings_contradict_the_backup(
    sqlite_machines: Machines,
) -> None:
    """Data keys named on the new machine that lack the backup's: refused, nothing changed."""
    machines = sqlite_machines
    assert run(machines.old, "db", "upgrade").exit_code == 0
    archive = machines.tmp / "b.backup"
    passphrase = machines.passphrase_file(PASSPHRASE)
    assert run(machines.old, "backup", str(archive), "--passphrase-file", passphrase).exit_code == 0
    elsewhere = {**machines.new, "TROLLEY_DATA_KEYS": Fernet.generate_key().decode()}
    refused = run(elsewhere, "restore", str(archive), "--yes", "--passphrase-file", passphrase)
    assert refused.exit_code == 1
    assert "TROLLEY_DATA_KEYS is set on this machine without the backup's data keys" in (
        refused.output
    )
    assert not (machines.tmp / "new" / "trolley.db").exists()


def test_a_sqlite_backup_copy_is_checked_before_it_replaces_anything(
    sqlite_machines: Machines,
) -> None:
    """The copy inside the backup is checked whole before the live database is replaced."""
    machines = sqlite_machines
    assert run(machines.old, "db", "upgrade").exit_code == 0
    db_path = Path(machines.old["TROLLEY_DATABASE_URL"].split("sqlite:///")[1])
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE devices")  # no longer a Trolley database
    conn.commit()
    conn.close()
    archive = machines.tmp / "b.backup"
    passphrase = machines.passphrase_file(PASSPHRASE)
    assert run(machines.old, "backup", str(archive), "--passphrase-file", passphrase).exit_code == 0
    refused = run(machines.new, "restore", str(archive), "--yes", "--passphrase-file", passphrase)
    assert refused.exit_code == 1 and "not a Trolley backup" in refused.output
    assert not (machines.tmp / "new" / "trolley.db").exists()
    assert not (Path(machines.new["TROLLEY_INSTANCE_DIR"]) / "data.key").exists()


def test_a_backup_sealed_to_a_public_key_restores_only_with_its_private_key(
    machines: Machines,
) -> None:
    """P-SEC-6: the server holds only the public key; the private key restores and drills."""
    assert run(machines.old, "db", "upgrade").exit_code == 0
    school = _school_with_an_enrolled_device(load_settings(machines.old))
    private, other = machines.tmp / "school.key", machines.tmp / "other.key"
    made = run(machines.old, "backup-keygen", str(private))
    assert made.exit_code == 0, made.output
    assert "Private key written to" in made.output
    assert run(machines.old, "backup-keygen", str(other)).exit_code == 0
    folder = machines.tmp / "backups"
    folder.mkdir()
    written = run(machines.old, "backup", str(folder), "--recipient", f"{private}.pub")
    assert written.exit_code == 0, written.output
    assert "sealed to the public key(s)" in written.output
    archive = next(folder.iterdir())

    drilled = run(machines.old, "restore-drill", str(folder), "--identity", str(private))
    assert drilled.exit_code == 0, drilled.output
    assert "ok    private key: opens the backup" in drilled.output
    assert "ok    escrowed PINs (the newest): 1 open" in drilled.output

    passphrase = machines.passphrase_file(PASSPHRASE)
    for refused, wanted in (
        (("--passphrase-file", passphrase), "is sealed to a key pair: give its private key"),
        (("--identity", str(other)), f"does not open {archive.name}, which is sealed to age1"),
    ):
        result = run(machines.new, "restore", str(archive), "--yes", *refused)
        assert result.exit_code == 1
        assert wanted in result.output
        assert not Path(machines.new["TROLLEY_INSTANCE_DIR"]).exists()

    restored = run(machines.new, "restore", str(archive), "--yes", "--identity", str(private))
    assert restored.exit_code == 0, restored.output
    new_settings = load_settings(machines.new)
    database = Database(new_settings.database_url)
    try:
        with database.begin() as session:
            from server.auth.models import User

            tech = session.get(User, school.technician_id)
            assert tech is not None
            box = SecretBox(new_settings.data_keys)
            _entry, opened = reveal(session, box, tech, school.escrow_id, reason="restore test")
        assert opened == PIN
    finally:
        database.dispose()
