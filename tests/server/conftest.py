"""Server fixtures: migrated SQLite and PostgreSQL databases, each test inside a savepoint."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, object_session
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from mqtt.messages import AckState
from server import create_app
from server.auth.models import Role, User
from server.auth.services import create_user, issue_token, start_session
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.config import Settings, load_settings
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location, create_school
from server.web import SESSION_KEY
from tests.helpers import POSTGRES_ADDR, migrated_sqlite, require_service

PASSWORD = "correct-horse-battery"
DATA_KEY = Fernet.generate_key().decode()
POSTGRES_BASE = f"postgresql+psycopg://{POSTGRES_ADDR[0]}:{POSTGRES_ADDR[1]}/test"


def settings_on(url: str, instance_dir: Path, **overrides: Any) -> Settings:
    """Test settings on the database at `url`, with the test data key, plus `overrides`."""
    return load_settings(
        env={},
        overrides={
            "testing": True,
            "database_url": url,
            "instance_dir": instance_dir,
            "data_keys": [DATA_KEY],
            **overrides,
        },
    )


def file_app(url: str, instance_dir: Path) -> Flask:
    """The app on its own database file (not the test's transaction), as a server runs it."""
    return create_app(
        {
            "database_url": url,
            "testing": True,
            "instance_dir": instance_dir,
            "secure_cookies": False,
            "data_keys": [DATA_KEY],
        }
    )


@contextmanager
def serving(app: Flask, port: int) -> Iterator[str]:
    """The app on a real socket (a threaded WSGI server) at the yielded base URL, until exit."""
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
        app.extensions["trolley.db"].dispose()


@dataclass
class SeededSchool:
    """What `seed_trolley_school` made, still attached to its session."""

    school: School
    trolley: Location
    devices: list[Device]
    teachers: list[User]
    tokens: list[str]  # each teacher's plain API token, in the same order


KIOSK = {"platform": Platform.LINUX, "make": "Test", "model": "Kiosk"}


def new_device(school_id: int, asset_tag: str, serial: str, **fields: Any) -> Device:
    """An in-service iPad (or what `fields` say, e.g. `**KIOSK`), not yet in a session."""
    values: dict[str, Any] = {"platform": Platform.IPADOS, "make": "Apple", "model": "iPad"}
    values.update(fields)
    return Device(
        school_id=school_id,
        asset_tag=asset_tag,
        serial=serial,
        status=DeviceStatus.IN_SERVICE,
        **values,
    )


def seed_trolley_school(
    session: Session,
    prefix: str,
    *,
    devices: int = 0,
    teachers: int = 0,
    capacity: int | None = None,
    place: tuple[LocationKind, str] = (LocationKind.ROOM, "Hall"),
    trolley_name: str = "Hall trolley",
    tokens: bool = True,
) -> SeededSchool:
    """A school, its trolley of iPads and its teachers with API tokens, named after `prefix`."""
    school = create_school(
        session, slug=f"{prefix}{uuid.uuid4().hex[:6]}", name=f"{prefix.title()} Primary"
    )
    kind, place_name = place
    parent = add_location(session, actor=None, school_id=school.id, kind=kind, name=place_name)
    trolley = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.TROLLEY,
        name=trolley_name,
        parent=parent,
        capacity=max(30, devices) if capacity is None else capacity,
    )
    fleet = [
        new_device(
            school.id,
            f"{prefix.upper()}-{n:02d}",
            f"{prefix[:1].upper()}{uuid.uuid4().hex[:10].upper()}",
            home_location_id=trolley.id,
            current_location_id=trolley.id,
        )
        for n in range(devices)
    ]
    session.add_all(fleet)
    people: list[User] = []
    plain_tokens: list[str] = []
    for n in range(teachers):
        user = create_user(
            session,
            actor=None,
            school=school,
            email=f"t{n}-{uuid.uuid4().hex[:6]}@{prefix}.example",
            name=f"Teacher {n}",
            role=Role.TEACHER,
            password="long-password-1",
        )
        people.append(user)
        if tokens:
            _token, plain = issue_token(session, user, prefix)
            plain_tokens.append(plain)
    session.flush()
    return SeededSchool(school, trolley, fleet, people, plain_tokens)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2 at a test-sized cost: the same algorithm and checks, far less CPU per user."""
    from argon2 import PasswordHasher

    from server.auth.services import passwords

    original = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = original


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    url = migrated_sqlite(tmp_path_factory.mktemp("db") / "trolley.db")
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[tuple[str, Engine]]:
    require_service("PostgreSQL", POSTGRES_ADDR)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_BASE}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate(engine)
    yield url, engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> tuple[str, Engine]:
    """Each test that uses the database runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_database")  # type: ignore[no-any-return]


@pytest.fixture
def connection(database: tuple[str, Engine]) -> Iterator[Connection]:
    _url, engine = database
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield s
    s.close()


@pytest.fixture
def app(database: tuple[str, Engine], connection: Connection, tmp_path: Path) -> Flask:
    return create_app(
        {
            "bind": connection,
            "database_url": database[0],
            "testing": True,
            "instance_dir": tmp_path / "instance",
            "secure_cookies": False,
            "data_keys": [DATA_KEY],
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def school(session: Session) -> School:
    s = create_school(session, slug="oakfield", name="Oakfield Primary")
    session.commit()
    return s


@pytest.fixture
def other_school(session: Session) -> School:
    s = create_school(session, slug="elmwood", name="Elmwood Primary")
    session.commit()
    return s


@pytest.fixture
def make_user(session: Session, school: School) -> Callable[..., User]:
    counter = iter(range(10_000))

    def make(
        role: Role = Role.TEACHER, *, in_school: School | None = None, email: str | None = None
    ) -> User:
        target = in_school or school
        user = create_user(
            session,
            actor=None,
            school=target,
            email=email or f"{role.value}{next(counter)}@{target.slug}.example",
            name=f"{role.label} Person",
            role=role,
            password=PASSWORD,
        )
        session.commit()
        return user

    return make


@pytest.fixture
def trolley(session: Session, school: School) -> Location:
    site = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.SITE, name="Site"
    )
    room = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.ROOM, name="Year 4", parent=site
    )
    t = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.TROLLEY,
        name="Year 4 trolley",
        parent=room,
        capacity=30,
    )
    session.commit()
    return t


@pytest.fixture
def make_device(session: Session, school: School) -> Callable[..., Device]:
    counter = iter(range(1, 100_000))

    def make(
        *, in_school: School | None = None, home: Location | None = None, **fields: Any
    ) -> Device:
        n = next(counter)
        target = in_school or school
        values: dict[str, Any] = {
            "asset_tag": f"TAG-{n:04d}",
            "serial": f"SER{n:07d}",
            "platform": Platform.IPADOS,
            "make": "Apple",
            "model": "iPad (10th generation)",
            "status": DeviceStatus.IN_SERVICE,
        }
        values.update(fields)
        device = Device(
            school_id=target.id,
            home_location_id=home.id if home else None,
            current_location_id=home.id if home else None,
            **values,
        )
        session.add(device)
        session.commit()
        return device

    return make


def confirm_reset(session: Session, device: Device, at: datetime) -> None:
    """The device answers a factory reset sent to it: done, as any channel records it."""
    reset = Command(
        school_id=device.school_id,
        device_id=device.id,
        cmd_id=str(uuid.uuid4()),
        type="factory_reset",
        args={},
        status=CommandStatus.SENT,
        created_at=at,
        expires_at=at + timedelta(days=1),
    )
    session.add(reset)
    session.flush()
    commands.record_answer(session, reset, AckState.DONE, "", {}, now=at)
    session.commit()


def log_in_as(client: FlaskClient, user: User, *, second_factor: bool = True) -> str:
    """Sign a test client in directly, as if it had passed the log-in (with a code unless
    `second_factor` is false); the flow itself is tested separately. Returns the session key."""
    session = object_session(user)
    assert session is not None, "log in a user that is still attached to the test session"
    key = start_session(
        session,
        user,
        address="127.0.0.1",
        method="password+totp" if second_factor else "password",
        second_factor=second_factor,
    )
    with client.session_transaction() as sess:
        sess["_user_id"] = user.get_id()
        sess["_fresh"] = True
        sess[SESSION_KEY] = key
    return key


def settle(user: User, *, days: int = 30) -> User:
    """An account made `days` ago with a second factor: one that may approve destructive
    commands someone else asked for (the caller commits)."""
    import pyotp

    from server.crypto import SecretBox

    user.created_at = user.created_at - timedelta(days=days)
    if user.totp_secret_sealed is None:
        user.totp_secret_sealed = SecretBox([DATA_KEY]).seal(pyotp.random_base32())
    return user


CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """A CSRF token valid for this client's session, read from a real form."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def post_login(
    client: FlaskClient, email: str, password: str = PASSWORD, next_path: str = ""
) -> TestResponse:
    """The log-in form, posted as a browser does (with its CSRF token)."""
    token = csrf_token(client)
    url = "/login" + (f"?next={next_path}" if next_path else "")
    return client.post(url, data={"csrf_token": token, "email": email, "password": password})


@pytest.fixture
def token_for(session: Session) -> Callable[[User], dict[str, str]]:
    def make(user: User) -> dict[str, str]:
        _t, plain = issue_token(session, user, "tests")
        session.commit()
        return {"Authorization": f"Bearer {plain}"}

    return make


@pytest.fixture
def enrolled(app: Flask, session: Session) -> Callable[[Device], Device]:
    """Enrol a device in Trolley so commands can reach it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mqtt.envelope import encode_public_key
    from server.crypto import SecretBox
    from server.enrolment.services import enrol, issue_enrolment_token, server_key

    settings = app.extensions["trolley.settings"]
    box = SecretBox(settings.data_keys)

    def make(device: Device) -> Device:
        server_key(session, box)
        session.commit()
        _token, payload = issue_enrolment_token(session, None, device, settings)
        key = Ed25519PrivateKey.generate()
        enrol(
            session,
            box,
            settings,
            token=payload.token,
            public_key=encode_public_key(key.public_key()),
            platform="simulated",
        )
        return device

    return make


HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def post_confirmed(client: FlaskClient, path: str, data: dict[str, Any]) -> TestResponse:
    """Post a form that asks first, then say yes on the page it asks with (no scripts)."""
    import html

    asked = client.post(path, data=data)
    assert asked.headers.get("X-Trolley-Confirm") == "ask", asked.get_data(as_text=True)[:500]
    fields = [
        (html.unescape(n), html.unescape(v))
        for n, v in HIDDEN_RE.findall(asked.get_data(as_text=True))
    ]
    body: dict[str, list[str]] = {}
    for name, value in fields:
        body.setdefault(name, []).append(value)
    return client.post(path, data=body)
