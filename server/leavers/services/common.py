"""What every leaver step shares: who is acting, the case's own record and the activity trail."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from server.activity.services import record
from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.devices.models import Device
from server.errors import Conflict, Forbidden, NotFound
from server.leavers.models import ItemKind, LeaverCase, LeaverEvent, LeaverItem

RESET = "factory_reset"
# The personal link works until a week after the last day (time to finish from home).
LINK_GRACE = timedelta(days=7)
MEETING_MINUTES = (10, 240)
MIN_EVIDENCE = 10
MAX_TAGS = 50
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DUE_SOON = timedelta(days=7)

# A case is always shown with its items and their devices.
WITH_ITEMS = selectinload(LeaverCase.items).joinedload(LeaverItem.device)


# --- who is acting --------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkAccess:
    """The leaver through their personal link (no log-in): may see and act on one case only."""

    case: LeaverCase


Who = User | LinkAccess


def is_manager(user: User) -> bool:
    return has_permission(user.role, Permission.LEAVERS_MANAGE)


def _require_manager(actor: User) -> None:
    if not is_manager(actor):
        raise Forbidden("Only the school business manager or the headteacher can do this.")


def _label(who: Who) -> str:
    if isinstance(who, LinkAccess):
        return f"{who.case.leaver_name} (with their personal link)"
    return who.name


def _stand_in(case: LeaverCase) -> User:
    """An unsaved stand-in for a leaver without an account, so their deposits name them."""
    # Never added to the session: escrow keeps deposited_by_id=None, and the activity trail
    # shows this e-mail label as the actor.
    return User(
        school_id=case.school_id,
        email=f"{case.leaver_email} (leaver's link)"[:254],
        name=case.leaver_name,
        role=Role.TEACHER,
        active=False,
    )


def _user_or_none(who: Who | None) -> User | None:
    return None if who is None or isinstance(who, LinkAccess) else who


# --- small helpers --------------------------------------------------------------------------


def _event(
    session: Session, case: LeaverCase, who: Who | None, what: str, now: datetime
) -> LeaverEvent:
    actor = _user_or_none(who)
    event = LeaverEvent(
        school_id=case.school_id,
        case_id=case.id,
        at=now,
        actor_id=actor.id if actor else None,
        actor_label=_label(who) if who is not None else "Trolley",
        what=what[:500],
    )
    session.add(event)
    case.events.append(event)
    return event


def _trail(
    session: Session,
    case: LeaverCase,
    who: Who | None,
    action: str,
    now: datetime,
    **details: object,
) -> None:
    label = None
    if isinstance(who, LinkAccess):
        label = f"{who.case.leaver_email} (leaver's link)"[:254]
    record(
        session,
        actor=_user_or_none(who),
        actor_label=label,
        action=f"leaver.{action}",
        school_id=case.school_id,
        target_type="leaver_case",
        target_id=case.id,
        details=dict(details),
        at=now,
    )


def _school_user(session: Session, school_id: int, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    return session.scalar(
        select(User).where(User.id == user_id, User.school_id == school_id, User.active.is_(True))
    )


def _staff(
    session: Session, school_id: int, roles: Iterable[Role], *, but: int | None = None
) -> list[User]:
    """The school's active staff in these roles (leaving out one person, if asked)."""
    query = select(User).where(
        User.school_id == school_id, User.active.is_(True), User.role.in_(list(roles))
    )
    if but is not None:
        query = query.where(User.id != but)
    return list(session.scalars(query))


def _describe(device: Device) -> str:
    return f"{device.asset_tag}: {device.make} {device.model}"[:300]


def _names(items: Iterable[LeaverItem]) -> str:
    labels = [_short(item) for item in items]
    shown = ", ".join(labels[:6])
    return shown + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")


def _short(item: LeaverItem) -> str:
    if item.device is not None:
        return item.device.asset_tag
    return "their own device in the staff register"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _open(case: LeaverCase) -> None:
    if not case.is_open:
        raise Conflict("This leaver case is closed; nothing more can change on it.", code="closed")


def _item(case: LeaverCase, item_id: int, kind: ItemKind | None = ItemKind.DEVICE) -> LeaverItem:
    for item in case.items:
        if item.id == item_id and (kind is None or item.kind is kind):
            return item
    raise NotFound("No such item on this leaver case.")


def _flush_or_conflict(session: Session) -> None:
    """Two people acting at once: the database's unique indexes decide, in plain words."""
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "Someone else has just put this person or one of these devices on an open leaver "
            "case. Reload the page to see it.",
            code="device_in_open_case",
        ) from exc
