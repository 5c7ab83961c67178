"""Terms, half terms, when the termly audit is due, and the reminders before and after."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.audits.models import Audit, AuditReminder, PhotoCheck, PhotoCheckStatus
from server.audits.pages import HalfTerm, TermAudit
from server.audits.services.photo_reminders import chase_open_checks
from server.auth.models import Role
from server.notifications import services as notifications
from server.schools.models import School, Term
from server.schools.services import terms as school_terms
from server.schools.services.clock import day_text, local_today

log = logging.getLogger(__name__)

# The audit is due by the last day of term; the computing lead hears two weeks before and on the
# day, and the headteacher too once it is overdue.
REMIND_BEFORE = timedelta(days=14)
# A photo check is asked for in the last week of each half term that has none yet.
PHOTO_REMIND_BEFORE = timedelta(days=7)


def half_terms(terms: Sequence[Term]) -> list[HalfTerm]:
    halves = []
    for term in sorted(terms, key=lambda t: t.starts_on):
        halves.append(HalfTerm(term, 1, term.starts_on, term.half_term_starts_on - timedelta(1)))
        halves.append(HalfTerm(term, 2, term.half_term_ends_on + timedelta(1), term.ends_on))
    return halves


def half_term_on(terms: Sequence[Term], day: date) -> HalfTerm | None:
    """The half term under way on `day` (in a break, the one just finished)."""
    started = [h for h in half_terms(terms) if h.starts_on <= day]
    return started[-1] if started else None


def term_on(terms: Sequence[Term], day: date) -> Term | None:
    """The term under way on `day` (in the holidays, the one just finished)."""
    started = [t for t in terms if t.starts_on <= day]
    return max(started, key=lambda t: t.starts_on) if started else None


def audit_due_on(term: Term) -> date:
    """The termly audit is due by the last day of term."""
    return term.ends_on


def term_audits(session: Session, school_id: int, today: date) -> list[TermAudit]:
    """Every term's audit status; only the latest term past its date counts as overdue."""
    terms = school_terms(session, school_id)
    audits = session.scalars(
        select(Audit).where(Audit.school_id == school_id).order_by(Audit.started_at)
    ).all()
    done: dict[int, Audit] = {}
    running: dict[int, Audit] = {}
    for audit in audits:
        if audit.is_open:
            running[audit.term_id] = audit
        elif audit.whole_school:
            done[audit.term_id] = audit
    past_due = [t for t in terms if audit_due_on(t) < today]
    latest_past = past_due[-1].id if past_due else None
    out = []
    for term in terms:
        due = audit_due_on(term)
        if term.id in done:
            state = "done"
        elif due < today:
            state = "overdue" if term.id == latest_past else "missed"
        elif term.id in running:
            state = "in_progress"
        elif due - REMIND_BEFORE <= today:
            state = "due_soon"
        else:
            state = "not_due"
        out.append(TermAudit(term, due, state, done.get(term.id), running.get(term.id), today))
    return out


def overdue_audit(session: Session, school_id: int, today: date) -> TermAudit | None:
    return next((t for t in term_audits(session, school_id, today) if t.state == "overdue"), None)


def _claim_reminder(
    session: Session, school_id: int, term_id: int, kind: str, now: datetime
) -> bool:
    """True for the one worker that records this reminder first (it then sends it)."""
    try:
        with session.begin_nested():
            session.add(AuditReminder(school_id=school_id, term_id=term_id, kind=kind, sent_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def send_reminders(session: Session, now: datetime) -> int:
    """The scheduler's job: audit reminders, photo checks due, and class teachers to check."""
    sent = 0
    for school in session.scalars(select(School).order_by(School.id)).all():
        today = local_today(school, now)
        for status in term_audits(session, school.id, today):
            kind = None
            if status.state == "overdue":
                kind = "overdue"
            elif status.state in ("due_soon", "in_progress"):
                kind = "due" if today == status.due_on else "before"
            if kind is None or not _claim_reminder(session, school.id, status.term.id, kind, now):
                continue
            _remind(session, school, status, kind, now)
            sent += 1
        sent += _photo_reminder(session, school, today, now)
    return sent + chase_open_checks(session, now)


def _remind(session: Session, school: School, status: TermAudit, kind: str, now: datetime) -> None:
    term, due = status.term.name, day_text(status.due_on)
    running = " An audit is under way; sign it off when it is finished." if status.open else ""
    if kind == "overdue":
        roles, title = [Role.COMPUTING_LEAD, Role.HEADTEACHER], f"The {term} audit is overdue"
        body = (
            f"The termly device audit for {term} was due by {due} and has not been signed off. "
            f"School policy asks the computing lead for a termly check of the equipment.{running}"
        )
    elif kind == "due":
        roles, title = [Role.COMPUTING_LEAD], f"The {term} audit is due today"
        body = f"The termly device audit for {term} is due today, {due}.{running}"
    else:
        roles, title = [Role.COMPUTING_LEAD], f"The {term} audit is due by {due}"
        body = (
            f"The termly device audit for {term} is due by {due}. Start it from the Audits page; "
            f"staff can help scan trolleys at the same time.{running}"
        )
    notifications.notify_roles(
        session,
        school_id=school.id,
        roles=roles,
        kind=f"audit.{kind}",
        title=title,
        body=body,
        link="/audits",
        at=now,
    )
    log.info("audit reminder %s for term %s in school %s", kind, status.term.id, school.id)


def _photo_reminder(session: Session, school: School, today: date, now: datetime) -> int:
    half = half_term_on(school_terms(session, school.id), today)
    if half is None or not (half.ends_on - PHOTO_REMIND_BEFORE <= today <= half.ends_on):
        return 0
    done = session.scalar(
        select(PhotoCheck.id).where(
            PhotoCheck.school_id == school.id,
            PhotoCheck.term_id == half.term.id,
            PhotoCheck.half == half.half,
            PhotoCheck.status == PhotoCheckStatus.COMPLETE,
        )
    )
    if done is not None or not _claim_reminder(
        session, school.id, half.term.id, f"photos_{half.half}", now
    ):
        return 0
    notifications.notify_roles(
        session,
        school_id=school.id,
        roles=[Role.COMPUTING_LEAD],
        kind="audit.photo_check",
        title=f"Photo check due: {half.label}",
        body=f"School policy asks for a check at least every half term that all photos have "
        f"been erased. This half term ends on {day_text(half.ends_on)} and has no photo check yet.",
        link="/photo-checks",
        at=now,
    )
    return 1
