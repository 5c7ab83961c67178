"""What all lending leans on: which devices may go out, the school, timelines and telling people."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.errors import NotFound
from server.notifications import services as notifications
from server.schools.models import School

# Only devices in use (or waiting in stock) may go out; the rest are refused with the reason.
LOANABLE = (DeviceStatus.IN_SERVICE, DeviceStatus.IN_STOCK)
MISSING = (DeviceStatus.LOST, DeviceStatus.STOLEN)
# Ids are 32-bit in PostgreSQL: anything larger cannot exist (and must not reach the driver).
MAX_ID = 2**31 - 1


def _school(session: Session, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None:
        raise NotFound("No such school.")
    return school


def _core(session: Session, statement: Any, params: dict[str, Any]) -> CursorResult[Any]:
    """Run a prepared statement that touches no loaded object on the session's connection."""
    # It skips the ORM's per-statement work (and its autoflush: pending rows land at commit).
    return session.connection().execute(statement, params)


def _locks_rows(session: Session) -> bool:
    """Whether writers run side by side (PostgreSQL); SQLite's writers take turns already."""
    return session.get_bind().dialect.name != "sqlite"


def _event(
    session: Session,
    device: Device,
    now: datetime,
    *,
    kind: str,
    summary: str,
    actor: User | None,
    details: dict[str, object] | None = None,
) -> None:
    event = add_event(session, device, kind=kind, summary=summary, actor=actor, details=details)
    event.at = now


def _notify(
    session: Session,
    school_id: int,
    *,
    kind: str,
    title: str,
    body: str,
    link: str | None,
    roles: Sequence[Role] = (),
    users: Sequence[User] = (),
    email: bool = True,
    devices: Sequence[Device] = (),
    case_id: int | None = None,
    at: datetime | None = None,
) -> None:
    """Tell people in the app (and by e-mail, naming only `devices` and `case_id`); joins this
    transaction."""
    if roles:
        notifications.notify_roles(
            session,
            school_id=school_id,
            roles=roles,
            kind=kind,
            title=title[:200],
            body=body,
            link=link,
            email=email,
            devices=devices,
            case_id=case_id,
            at=at,
        )
    if users:
        notifications.notify(
            session,
            school_id=school_id,
            users=users,
            kind=kind,
            title=title[:200],
            body=body,
            link=link,
            email=email,
            devices=devices,
            case_id=case_id,
            at=at,
        )
