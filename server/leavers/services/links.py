"""The leaver's personal link: their way in to their checklist without a Trolley account."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.leavers.models import LeaverCase
from server.leavers.services.cases import _managed_case
from server.leavers.services.common import LINK_GRACE, _event, _token_hash, _trail
from server.notifications.services import notify_address
from server.schools.services.clock import start_of


def _new_link(session: Session, case: LeaverCase, actor: User, base_url: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    case.link_token_hash = _token_hash(token)
    case.link_expires_at = start_of(case.last_day + LINK_GRACE + timedelta(days=1), case.school)
    _event(session, case, actor, "A personal link was made for the leaver", now)
    _trail(session, case, actor, "link_issued", now, expires=case.link_expires_at.isoformat())
    path = f"/leavers/link/{token}"
    # Without an account this link is their only way in: it goes to them directly, not only
    # to whoever opened the case, as the same minimal notice as any e-mail (the checklist behind
    # the link says the rest).
    notify_address(
        session,
        school_id=case.school_id,
        address=case.leaver_email,
        kind="leaver_link",
        link=path,
        case_id=case.id,
        at=now,
    )
    return f"{base_url.rstrip('/')}{path}"


def issue_link(
    session: Session, actor: User, case_id: int, *, base_url: str, now: datetime | None = None
) -> tuple[LeaverCase, str]:
    """A new personal link for the leaver (any earlier one stops working); shown once."""
    now = now or utcnow()
    case = _managed_case(session, actor, case_id)
    link = _new_link(session, case, actor, base_url, now)
    session.commit()
    return case, link
