"""Register fixtures: the people who use it, an office safe, and helpers for reading results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.devices.models import Device, DeviceEvent
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def teacher(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER)


@pytest.fixture
def office(session: Session, school: School) -> Location:
    room = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.ROOM, name="School office"
    )
    session.commit()
    return room


@pytest.fixture
def safe(session: Session, school: School, office: Location) -> Location:
    """P-TROLLEY-3: the office safe where class teachers' iPads are kept (two slots)."""
    place = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.SAFE,
        name="Office safe",
        parent=office,
        capacity=2,
    )
    session.commit()
    return place


def events(session: Session, device: Device, kind: str | None = None) -> list[DeviceEvent]:
    query = select(DeviceEvent).where(DeviceEvent.device_id == device.id)
    if kind is not None:
        query = query.where(DeviceEvent.kind == kind)
    return list(session.scalars(query.order_by(DeviceEvent.id)))


def activity(session: Session, action: str) -> list[ActivityEntry]:
    return list(
        session.scalars(
            select(ActivityEntry).where(ActivityEntry.action == action).order_by(ActivityEntry.seq)
        )
    )


def is_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The API's one error shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]
