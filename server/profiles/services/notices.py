"""Telling staff about filter exception requests and the computing lead's decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.auth.permissions import ROLE_PERMISSIONS, Permission
from server.notifications.services import notify

EXCEPTIONS_LINK = "/filter-exceptions"


def _filtering_managers(session: Session, school_id: int) -> Sequence[User]:
    """The school's active staff whose role manages web filtering."""
    roles = [r for r, perms in ROLE_PERMISSIONS.items() if Permission.FILTERING_MANAGE in perms]
    return session.scalars(
        select(User).where(User.school_id == school_id, User.role.in_(roles), User.active)
    ).all()


def _notify(
    session: Session,
    *,
    school_id: int,
    users: Sequence[User],
    kind: str,
    title: str,
    body: str,
    request_id: int,
    at: datetime,
) -> None:
    """Tell people in the app and by e-mail (naming only the request's number), with a link to
    the filter exception requests."""
    if not users:
        return
    notify(
        session,
        school_id=school_id,
        users=users,
        kind=kind,
        title=title[:200],
        body=body,
        link=EXCEPTIONS_LINK,
        case_id=request_id,
        at=at,
    )


def _sites(urls: Sequence[str]) -> str:
    """A short mention of the sites for a notification title."""
    first = urls[0] if len(urls[0]) <= 80 else urls[0][:77] + "..."
    return first if len(urls) == 1 else f"{first} and {len(urls) - 1} more"
