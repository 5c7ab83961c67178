"""Loan fixtures: people, two trolleys, a small fleet, enrolled devices and a fixed clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from mqtt.messages import AckState, Report, build_ack
from server.auth.models import Role, User
from server.commands import services as commands
from server.commands.models import Command
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity
from server.loans import services
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location

# The device channel's live fixtures (a committed database, a real broker, the worker's
# channel, devices that verify and ack), reused for the wipe acknowledgement and race tests.
from tests.server.commands.conftest import *  # noqa: F403

BASE = "http://127.0.0.1:5000"
# A Tuesday in term, 10:20 in London (09:20 UTC): lesson 2 (10:00–10:45) is on.
TUESDAY_1020 = datetime(2025, 3, 11, 10, 20, tzinfo=UTC)


def scan(
    session: Session,
    user: User,
    device: Device | str,
    trolley: Location,
    mode: str = "out",
    *,
    key: str | None = None,
    now: Any = TUESDAY_1020,
    **options: Any,
) -> services.ScanResult:
    """One scan of `device` (or a code) at `trolley`, as a teacher would make it."""
    code = device if isinstance(device, str) else device.asset_tag
    return services.scan(
        session,
        user,
        mode=mode,
        trolley_id=trolley.id,
        code=code,
        base_url=BASE,
        key=key or uuid.uuid4().hex,
        now=now,
        **options,
    )


@pytest.fixture
def teacher(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER)


@pytest.fixture
def other_teacher(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER)


@pytest.fixture
def lead(make_user: Callable[..., User]) -> User:
    return make_user(Role.COMPUTING_LEAD)


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    return make_user(Role.HEADTEACHER)


@pytest.fixture
def other_trolley(session: Session, school: School, trolley: Location) -> Location:
    place = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.TROLLEY,
        name="Year 3 trolley",
        parent=trolley.parent,
        capacity=30,
    )
    session.commit()
    return place


@pytest.fixture
def fleet(make_device: Callable[..., Device], trolley: Location) -> list[Device]:
    """Five iPads that live in the Year 4 trolley (TAG-0001 … TAG-0005)."""
    return [make_device(home=trolley, home_slot=n) for n in range(1, 6)]


@pytest.fixture
def enrol(session: Session) -> Callable[[Device], DeviceIdentity]:
    """Give a device an enrolment identity, so commands can reach it."""

    def make(device: Device) -> DeviceIdentity:
        identity = DeviceIdentity(
            school_id=device.school_id,
            device_id=device.id,
            mqtt_id=f"dev-{uuid.uuid4().hex[:16]}",
            public_key="0" * 43,
            kid="k" * 16,
            broker_secret_hash="x",
            platform="simulated",
        )
        session.add(identity)
        session.commit()
        return identity

    return make


@pytest.fixture
def ack(session: Session) -> Callable[..., Command]:
    """Record a device's answer to a command, as the worker would after verifying it."""

    def answer(command: Command, state: str = "done", **result: int) -> Command:
        identity = session.scalars(
            select(DeviceIdentity).where(DeviceIdentity.device_id == command.device_id)
        ).one()
        recorded = commands.record_ack(
            session,
            identity,
            build_ack(
                command.cmd_id,
                AckState(state),
                device_id=identity.mqtt_id,
                kid=identity.kid,
                now=int(datetime.now(UTC).timestamp()),
                result=result,
            ),
            now=datetime.now(UTC),
        )
        session.commit()
        assert recorded is not None
        return recorded

    return answer


def network_report(identity: DeviceIdentity, at: datetime, **network: str) -> Report:
    """A verified report from the device naming the network it is on (no address: the broker's)."""
    stamp = int(at.timestamp())
    return Report(
        kid=identity.kid,
        device_id=identity.mqtt_id,
        iat=stamp,
        exp=stamp + 60,
        network=network or None,
    )


def report_network(identity: DeviceIdentity, at: datetime, **network: str) -> None:
    """The worker's path for a verified report that names a network (joins the transaction)."""
    session = object_session(identity)
    assert session is not None
    commands.record_report(session, identity, network_report(identity, at, **network), now=at)
