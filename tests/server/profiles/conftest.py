"""Fixtures for the profiles domain: a computing lead, a place tree and a profile to assign."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.jobs import JobContext
from server.profiles import jobs, services
from server.profiles.models import Profile
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def lead(make_user: Callable[..., User]) -> User:
    """The computing lead: the role holding filtering:manage."""
    return make_user(Role.COMPUTING_LEAD)


@pytest.fixture
def teacher(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER)


@dataclass(frozen=True)
class Places:
    site: Location
    building: Location
    room: Location
    trolley: Location


@pytest.fixture
def places(session: Session, school: School) -> Places:
    """Site › building › room › trolley, the tree resolution walks up."""

    def add(kind: LocationKind, name: str, parent: Location | None, **extra: int) -> Location:
        return add_location(
            session,
            actor=None,
            school_id=school.id,
            kind=kind,
            name=name,
            parent=parent,
            **extra,
        )

    site = add(LocationKind.SITE, "Main site", None)
    building = add(LocationKind.BUILDING, "Juniors", site)
    room = add(LocationKind.ROOM, "Year 4", building)
    trolley = add(LocationKind.TROLLEY, "Year 4 trolley", room, capacity=30)
    session.commit()
    return Places(site, building, room, trolley)


@pytest.fixture
def make_profile(session: Session, lead: User) -> Callable[..., Profile]:
    def make(name: str, start_from: str | None = "ks2-ipad") -> Profile:
        return services.create_profile(session, lead, name=name, start_from=start_from)

    return make


@pytest.fixture
def run_job(app: Flask, session: Session) -> Callable[[str, datetime], object]:
    """Run one registered job the way the worker does, at an injected time."""
    registered = {
        "profiles.expire_filter_exceptions": jobs.expire_filter_exceptions,
        "profiles.reconcile_desired_state": jobs.reconcile_desired_state,
    }

    def run(name: str, now: datetime) -> object:
        result = registered[name](JobContext(session, now, app.extensions["trolley.settings"]))
        session.commit()
        return result

    return run
