"""The regulator's 72 hours: where each case stands, and the reminders at 24 and 48 hours."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.db import utcnow
from server.losses.models import Decision, LossReport
from server.losses.pages import CLOCK, Clock, duration
from server.losses.services.common import _event, _school
from server.losses.services.telling import _tell_heads
from server.schools.services import when

log = logging.getLogger(__name__)

# (level, time since awareness): each reminder goes out once, the last one means overdue.
ESCALATIONS = ((1, timedelta(hours=24)), (2, timedelta(hours=48)), (3, CLOCK))


# --- the clock ------------------------------------------------------------------------------


def clock_stopped_at(loss: LossReport) -> datetime | None:
    """Deciding not to report, or reporting to the ICO, stops the clock."""
    if loss.decision is Decision.NO_REPORT:
        return loss.decided_at
    if loss.decision is Decision.REPORT:
        return loss.ico_reported_at
    return None


def clock(loss: LossReport, now: datetime | None = None) -> Clock:
    return Clock(loss.aware_at, loss.aware_at + CLOCK, clock_stopped_at(loss), now or utcnow())


def _due_level(loss: LossReport, now: datetime) -> int:
    gone = now - loss.aware_at
    return max((level for level, after in ESCALATIONS if gone >= after), default=0)


# --- the clock's reminders (the worker's job) ---------------------------------------------------


def escalate(session: Session, now: datetime) -> int:
    """Send the 24-hour, 48-hour and overdue reminders that have fallen due; commits."""
    candidates = select(LossReport).where(
        LossReport.closed_at.is_(None),
        LossReport.escalation_level < 3,
        LossReport.aware_at <= now - ESCALATIONS[0][1],
        or_(
            LossReport.decision.is_(None),
            (LossReport.decision == Decision.REPORT) & LossReport.ico_reported_at.is_(None),
        ),
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several workers may run this job: each case is reminded by one of them.
        candidates = candidates.with_for_update(skip_locked=True)
    sent = 0
    for loss in session.scalars(candidates.order_by(LossReport.id)).all():
        level = _due_level(loss, now)
        if level <= loss.escalation_level:
            continue
        loss.escalation_level = level
        _remind(session, loss, level, now)
        sent += 1
    session.commit()
    if sent:
        log.info("sent %d loss reminder(s)", sent)
    return sent


def _remind(session: Session, loss: LossReport, level: int, now: datetime) -> None:
    school = _school(session, loss)
    tag = loss.device.asset_tag
    deadline = when(loss.aware_at + CLOCK, school)
    waiting_for = (
        "the ICO's reference once the report is made"
        if loss.decision is Decision.REPORT
        else "the decision on reporting to the ICO"
    )
    if level == 3:
        title = f"Overdue: the 72 hours for the loss of {tag} have run out"
        body = (
            f"The 72 hours to report the loss of {tag} to the Information Commissioner's Office "
            f"ran out at {deadline}, and Trolley still needs {waiting_for}. If the loss must be "
            "reported, report it now and say why it is late."
        )
        summary = f"Overdue: the 72 hours ran out at {deadline}"
    else:
        left = duration(loss.aware_at + CLOCK - now)
        title = f"{left} left to decide on the loss of {tag}"
        body = (
            f"The loss of {tag} was reported {when(loss.reported_at, school)}. The school has "
            f"until {deadline} ({left} from now) to report it to the Information Commissioner's "
            f"Office if it must be reported. Trolley still needs {waiting_for}."
        )
        summary = f"Reminder: {left} of the 72 hours left"
    _event(
        session,
        loss,
        kind="escalation",
        summary=summary,
        actor=None,
        at=now,
        details={"level": level},
    )
    # From 48 hours on, the data protection officer is reminded too.
    _tell_heads(
        session, loss, kind="loss.escalation", title=title, body=body, dpo=level >= 2, at=now
    )
