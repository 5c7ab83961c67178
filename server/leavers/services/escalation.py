"""The last day: anything still open goes to the headteacher, once each school day."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.auth.models import Role
from server.leavers.models import CaseStatus, LeaverCase
from server.leavers.services.common import WITH_ITEMS, _event, _staff, _trail
from server.leavers.services.state import _note_resets, case_state
from server.notifications.services import notify
from server.schools.services.clock import local_today


def escalate(session: Session, now: datetime) -> int:
    """Open items on and after the last day go to the headteacher, once per school day."""
    # Joins the caller's transaction (the scheduler commits).
    cases = session.scalars(
        select(LeaverCase)
        .where(
            LeaverCase.status == CaseStatus.OPEN,
            # Widened by a day so every time zone's "today" is covered; checked exactly below.
            LeaverCase.last_day <= (now + timedelta(days=1)).date(),
        )
        .options(joinedload(LeaverCase.school), WITH_ITEMS)
    ).all()
    told = 0
    for case in cases:
        today = local_today(case.school, now)
        if today < case.last_day or case.escalated_on == today:
            continue
        _note_resets(session, case, now)
        state = case_state(session, case, now=now)
        if not state.open_items:
            continue
        days = (today - case.last_day).days
        timing = "today is their last day" if days == 0 else f"their last day was {days} day(s) ago"
        lines = [f"- {s.item.description}: {s.next_step}" for s in state.open_items]
        notify(
            session,
            school_id=case.school_id,
            users=_staff(session, case.school_id, (Role.HEADTEACHER,)),
            kind="leaver_escalation",
            title=f"{case.leaver_name}: {len(state.open_items)} thing(s) still open ({timing})",
            body=f"{case.leaver_name}'s leaver case still has open items:\n" + "\n".join(lines),
            link=f"/leavers/{case.id}",
            case_id=case.id,
            at=now,
        )
        case.escalated_on = today
        _event(session, case, None, f"The headteacher was told: {len(state.open_items)} open", now)
        _trail(session, case, None, "escalated", now, open=len(state.open_items))
        told += 1
    return told
