"""The governors' loss log: every loss per term, with no names and no asset tags."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.db import utcnow
from server.errors import NotFound
from server.losses.models import Decision, LossReport
from server.losses.pages import LogEntry, TermLog
from server.losses.services.breach_clock import clock
from server.schools.models import School, Term
from server.schools.services import local_today


def _season(day: date) -> str:
    """A term name when the school has not entered its term dates."""
    if day.month >= 9:
        return f"Autumn {day.year}"
    if day.month <= 3:
        return f"Spring {day.year}"
    return f"Summer {day.year}"


def term_log(session: Session, school_id: int, now: datetime | None = None) -> list[TermLog]:
    """Every loss, newest term first, anonymised for governors: no names, no asset tags."""
    now = now or utcnow()
    school = session.get(School, school_id)
    if school is None:
        raise NotFound("No such school.")
    terms = session.scalars(select(Term).where(Term.school_id == school_id)).all()
    rows = session.scalars(
        select(LossReport)
        .where(LossReport.school_id == school_id)
        .options(joinedload(LossReport.device))
        .order_by(LossReport.reported_at.desc(), LossReport.id.desc())
    ).all()
    grouped: dict[str, list[LogEntry]] = {}
    for loss in rows:
        day = local_today(school, loss.reported_at)
        term = next((t.name for t in terms if t.starts_on <= day <= t.ends_on), None)
        the_clock = clock(loss, now)
        if loss.decision is Decision.REPORT:
            ico = "Reported to the ICO" if loss.ico_reference else "To be reported to the ICO"
        elif loss.decision is Decision.NO_REPORT:
            ico = "Not reportable"
        else:
            ico = "Decision pending"
        if the_clock.met is None:
            on_time = "Overdue" if the_clock.overdue else "Clock running"
        else:
            on_time = "Yes" if the_clock.met else "No"
        grouped.setdefault(term or _season(day), []).append(
            LogEntry(
                reported_on=day,
                model=loss.device.model,
                kind=loss.kind,
                outcome=loss.outcome.label if loss.outcome else "Open",
                ico=ico,
                on_time=on_time,
            )
        )
    return [TermLog(name, entries) for name, entries in grouped.items()]
