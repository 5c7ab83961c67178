"""Audit fixtures: last year's terms, the people who take part, two trolleys and their devices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.schools.models import Location, LocationKind, School, Term
from server.schools.services import add_location, uk_default_terms

# 10:42 in London on Tuesday 3 March 2026, in the Spring term (GMT, so UTC is the same).
NOW = datetime(2026, 3, 3, 10, 42, tzinfo=UTC)
BASE_URL = "http://127.0.0.1:5000"


@pytest.fixture
def terms(session: Session, school: School) -> dict[str, Term]:
    """The 2025/26 terms: Autumn ends Fri 19 Dec 2025, Spring runs 5 Jan to 31 Mar 2026."""
    made = uk_default_terms(date(2025, 10, 1))
    for term in made:
        term.school_id = school.id
    session.add_all(made)
    session.commit()
    return {term.name.split(" ")[0]: term for term in made}


@pytest.fixture
def lead(make_user: Callable[..., User]) -> User:
    return make_user(Role.COMPUTING_LEAD, email="tom@oakfield.example")


@pytest.fixture
def teacher(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER, email="amira@oakfield.example")


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM, email="sue@oakfield.example")


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    return make_user(Role.HEADTEACHER, email="helen@oakfield.example")


@pytest.fixture
def technician(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN, email="raj@oakfield.example")


@dataclass
class Fleet:
    """Year 4 trolley (Y4-1..4), Year 3 trolley (Y3-1..3) and the office safe (empty)."""

    y4: Location
    y3: Location
    safe: Location
    y4_devices: list[Device]
    y3_devices: list[Device]

    @property
    def all(self) -> list[Device]:
        return [*self.y4_devices, *self.y3_devices]


def _storage(
    session: Session, school: School, room: str, name: str, kind: LocationKind
) -> Location:
    parent = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.ROOM, name=room
    )
    return add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=kind,
        name=name,
        parent=parent,
        capacity=30,
    )


@pytest.fixture
def fleet(
    session: Session,
    school: School,
    terms: dict[str, Term],
    make_device: Callable[..., Device],
) -> Fleet:
    y4 = _storage(session, school, "Year 4 classroom", "Year 4 trolley", LocationKind.TROLLEY)
    y3 = _storage(session, school, "Year 3 classroom", "Year 3 trolley", LocationKind.TROLLEY)
    safe = _storage(session, school, "Office", "Office safe", LocationKind.SAFE)
    session.commit()
    y4_devices = [
        make_device(home=y4, asset_tag=f"Y4-{n}", serial=f"Y4SERIAL{n:04d}") for n in range(1, 5)
    ]
    y3_devices = [
        make_device(home=y3, asset_tag=f"Y3-{n}", serial=f"Y3SERIAL{n:04d}") for n in range(1, 4)
    ]
    return Fleet(y4, y3, safe, y4_devices, y3_devices)
