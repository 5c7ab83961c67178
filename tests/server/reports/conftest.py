"""Governors' report fixtures: the school's autumn term, a moment inside it, and record builders."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.commands.models import Command, CommandStatus
from server.devices.models import Device
from server.schools.models import School, Term
from server.schools.services import terms as school_terms


@pytest.fixture
def term(session: Session, school: School) -> Term:
    """The school's first term (its autumn), whatever year the tests run in."""
    return school_terms(session, school.id)[0]


@pytest.fixture
def in_term(term: Term) -> Callable[..., datetime]:
    """A UTC time `days` into the term, at ten in the morning (UTC), plus any extra."""

    def at(days: int = 10, **extra: Any) -> datetime:
        day = term.starts_on + timedelta(days=days)
        return datetime.combine(day, time(10, 0), tzinfo=UTC) + timedelta(**extra)

    return at


@pytest.fixture
def named(make_user: Callable[..., User], session: Session) -> Callable[..., User]:
    """A member of staff with a name of their own."""

    def make(role: Role, name: str) -> User:
        user = make_user(role)
        user.name = name
        session.commit()
        return user

    return make


def command(
    device: Device, kind: str, status: CommandStatus, at: datetime, **fields: Any
) -> Command:
    """A command row as the outbox would hold it."""
    return Command(
        school_id=device.school_id,
        device_id=device.id,
        cmd_id=str(uuid.uuid4()),
        type=kind,
        status=status,
        created_at=at,
        expires_at=at + timedelta(days=3),
        **fields,
    )
