"""The scheduler's audit reminders, driven by the real job with an injected clock (P-AUDIT-1)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audits import services
from server.auth.models import User
from server.jobs import JobContext, discover_jobs
from server.notifications.models import Notification
from tests.server.audits.conftest import Fleet


def _run(app: Flask, session: Session, when: datetime) -> int:
    job = discover_jobs()["audits.reminders"]
    result = job.run(JobContext(session, when, app.extensions["trolley.settings"]))
    session.commit()
    assert isinstance(result, int)
    return result


def _told(session: Session, kind: str) -> list[tuple[int, str]]:
    return [
        (n.user_id, n.title)
        for n in session.scalars(
            select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        )
    ]


def _at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T08:00:00").replace(tzinfo=UTC)


def test_reminders_before_on_and_after_the_due_date(
    app: Flask, session: Session, lead: User, head: User, fleet: Fleet
) -> None:
    """Spring 2025/26 ends on 31 March: two weeks before, on the day, then overdue."""
    _run(app, session, _at("2026-03-10"))
    # The autumn audit was never done: overdue, to the computing lead and the headteacher.
    assert _told(session, "audit.overdue") == [
        (lead.id, "The Autumn 2025/26 audit is overdue"),
        (head.id, "The Autumn 2025/26 audit is overdue"),
    ]
    assert _told(session, "audit.before") == []
    _run(app, session, _at("2026-03-17"))
    assert _told(session, "audit.before") == [
        (lead.id, "The Spring 2025/26 audit is due by Tue 31 March 2026")
    ]
    assert _run(app, session, _at("2026-03-17")) == 0  # every worker may run it: once only
    _run(app, session, _at("2026-03-31"))
    assert _told(session, "audit.due") == [(lead.id, "The Spring 2025/26 audit is due today")]
    _run(app, session, _at("2026-04-01"))
    assert _told(session, "audit.overdue")[-2:] == [
        (lead.id, "The Spring 2025/26 audit is overdue"),
        (head.id, "The Spring 2025/26 audit is overdue"),
    ]


def test_a_signed_off_audit_stops_the_reminders(
    app: Flask, session: Session, lead: User, head: User, fleet: Fleet
) -> None:
    services.start_audit(session, lead, now=_at("2026-03-12"))
    audit = services.open_audit(session, lead.school_id)
    assert audit is not None
    services.close_audit(session, lead, audit.id, now=_at("2026-03-13"))
    for day in ("2026-03-17", "2026-03-31", "2026-04-01"):
        _run(app, session, _at(day))
    assert [t for _u, t in _told(session, "audit.overdue") if "Spring" in t] == []
    assert _told(session, "audit.before") == [] and _told(session, "audit.due") == []
    statuses = {
        s.term.name: s.state
        for s in services.term_audits(session, lead.school_id, _at("2026-04-01").date())
    }
    assert statuses["Spring 2025/26"] == "done" and statuses["Autumn 2025/26"] == "missed"


def test_the_overdue_audit_is_what_the_home_pages_show(
    session: Session, lead: User, fleet: Fleet
) -> None:
    overdue = services.overdue_audit(session, lead.school_id, _at("2026-03-10").date())
    assert overdue is not None and overdue.term.name == "Autumn 2025/26"
    assert overdue.text == "Overdue: the Autumn 2025/26 audit was due by Fri 19 December 2025."
    due = services.term_audits(session, lead.school_id, _at("2026-03-20").date())
    spring = next(s for s in due if s.term.name == "Spring 2025/26")
    assert spring.state == "due_soon" and spring.text == "Due by Tue 31 March 2026 (11 days left)."


def test_a_photo_check_is_asked_for_in_the_last_week_of_each_half_term(
    app: Flask, session: Session, lead: User, fleet: Fleet
) -> None:
    """P-PHOTO-2: the second half of spring ends on 31 March with no check yet."""
    _run(app, session, _at("2026-03-20"))
    assert _told(session, "audit.photo_check") == []
    _run(app, session, _at("2026-03-25"))
    _run(app, session, _at("2026-03-26"))
    assert _told(session, "audit.photo_check") == [
        (lead.id, "Photo check due: Spring 2025/26, second half")
    ]


def test_no_reminder_when_this_half_terms_check_is_done(
    app: Flask, session: Session, lead: User, fleet: Fleet
) -> None:
    check = services.start_photo_check(session, lead, now=_at("2026-03-02"))
    for device in fleet.all:  # every device answers the check: no photos
        device.photo_count, device.photo_count_at = 0, _at("2026-03-02")
    session.commit()
    services.complete_photo_check(session, lead, check.id, now=_at("2026-03-02"))
    _run(app, session, _at("2026-03-26"))
    assert _told(session, "audit.photo_check") == []
