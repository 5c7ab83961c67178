"""A leaver's own Trolley log-in ends on their last day once the case is signed off, unless the
headteacher recorded why it should stay (P-LEAVE-1)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.auth.models import Role, User
from server.auth.services import deactivate
from server.db import utcnow
from server.errors import Forbidden, TrolleyError, ValidationFailed
from server.leavers.models import CaseStatus, LeaverCase
from server.leavers.services.cases import get_case
from server.leavers.services.common import _event, _trail
from server.schools.services.clock import day_text, local_today


def end_leaver_account(session: Session, case: LeaverCase, now: datetime) -> bool:
    """Turn the leaver's account off if the case is closed and their last day has come; joins
    the caller's transaction (the sign-off's, or the daily job's)."""
    leaver = case.leaver
    if (
        leaver is None
        or case.status is not CaseStatus.CLOSED
        or case.account_ended_at is not None
        or case.keep_account_reason
        or local_today(case.school, now) < case.last_day
    ):
        return False
    case.account_ended_at = now
    try:
        reason = f"Left on {day_text(case.last_day)}: leaver case {case.id} signed off."
        deactivate(session, None, leaver, reason, now=now, commit=False)
    except TrolleyError as exc:
        # The school's only administrator leaving: the account stays on and the case says why.
        _event(session, case, None, f"Their Trolley account was left on: {exc.message}", now)
        _trail(session, case, None, "account_left_on", now, why=exc.message[:200])
        return False
    _event(session, case, None, "Their Trolley log-in was turned off (their last day)", now)
    return True


def end_leaver_accounts(session: Session, now: datetime) -> int:
    """The regular turn: cases signed off before the last day end the account on the day."""
    cases = session.scalars(
        select(LeaverCase)
        .where(
            LeaverCase.status == CaseStatus.CLOSED,
            LeaverCase.leaver_id.is_not(None),
            LeaverCase.account_ended_at.is_(None),
            LeaverCase.keep_account_reason.is_(None),
            # Widened by a day so every time zone's "today" is covered; checked exactly after.
            LeaverCase.last_day <= (now + timedelta(days=1)).date(),
        )
        .options(joinedload(LeaverCase.school), joinedload(LeaverCase.leaver))
    ).all()
    return sum(end_leaver_account(session, case, now) for case in cases)


def keep_account(
    session: Session, actor: User, case_id: int, reason: str, *, now: datetime | None = None
) -> LeaverCase:
    """The headteacher records why the leaver keeps their Trolley log-in (e.g. they stay on as
    a governor); in the case's record and the trail; commits."""
    now = now or utcnow()
    if actor.role is not Role.HEADTEACHER:
        raise Forbidden("Only the headteacher can decide that a leaver keeps their log-in.")
    reason = " ".join(reason.split())
    if len(reason) < 5:
        raise ValidationFailed("Say why they keep their Trolley log-in, for the record.")
    case = get_case(session, actor, case_id)
    if case.leaver is None:
        raise ValidationFailed("This leaver has no Trolley account.")
    case.keep_account_reason = reason[:500]
    _event(session, case, actor, f"Keeps their Trolley log-in: {reason[:200]}", now)
    _trail(session, case, actor, "account_kept", now, reason=reason[:500])
    session.commit()
    return case
