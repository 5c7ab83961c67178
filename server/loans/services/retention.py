"""How long loan history is kept, and forgetting what is older (P-SEC-3)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.devices.models import DeviceEvent
from server.errors import ValidationFailed
from server.loans.models import Loan, LoanSettings, Scan
from server.loans.services.school_day import _settings_changed_by
from server.schools.models import School

# P-SEC-3: a school year and a term of loan history, unless the school keeps less or more.
DEFAULT_HISTORY_MONTHS = 15
HISTORY_MONTHS_RANGE = (1, 84)
# Timeline entries the loans domain writes; they name teachers and classes, so they go too.
LOAN_EVENT_KINDS = (
    "scan",
    "loan_out",
    "loan_transfer",
    "wrong_trolley",
    "loan_return",
    "loan_undo",
    "loan_overdue",
    "home_loan_request",
    "home_loan_decision",
    "home_loan_overdue",
)


@dataclass(frozen=True)
class Purged:
    loans: int
    scans: int
    events: int


def history_months(session: Session, school_id: int) -> int:
    """How many months of loan history the school keeps."""
    saved = session.get(LoanSettings, school_id)
    return saved.history_months if saved and saved.history_months else DEFAULT_HISTORY_MONTHS


def set_history_months(session: Session, actor: User, months: int) -> int:
    """Change how long loan history is kept (admin or SBM); commits."""
    low, high = HISTORY_MONTHS_RANGE
    if not low <= months <= high:
        raise ValidationFailed(
            f"Keep loan history for between {low} and {high} months.",
            details=[{"field": "history_months", "message": f"Choose {low} to {high} months."}],
        )
    school_id = actor.school_id
    before = history_months(session, school_id)
    _settings_changed_by(session, actor).history_months = months
    record(
        session,
        actor=actor,
        action="loans.history_retention_changed",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        details={"months": months, "was": before},
    )
    session.commit()
    return months


def _months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the 31st becomes the 28th)."""
    years, month = divmod(moment.month - 1 - months, 12)
    return moment.replace(year=moment.year + years, month=month + 1, day=min(moment.day, 28))


def purge_loan_history(session: Session, school_id: int, *, now: datetime) -> Purged:
    """Delete loans closed, scans made and loan timeline entries written before the school's
    retention period; damage reports and the activity trail stay. Flushes, does not commit."""
    cutoff = _months_before(now, history_months(session, school_id))
    loans = session.execute(
        delete(Loan).where(
            Loan.school_id == school_id, Loan.closed_at.is_not(None), Loan.closed_at < cutoff
        )
    )
    scans = session.execute(delete(Scan).where(Scan.school_id == school_id, Scan.at < cutoff))
    events = session.execute(
        delete(DeviceEvent).where(
            DeviceEvent.school_id == school_id,
            DeviceEvent.kind.in_(LOAN_EVENT_KINDS),
            DeviceEvent.at < cutoff,
        )
    )
    purged = Purged(_rows(loans), _rows(scans), _rows(events))
    if purged != Purged(0, 0, 0):
        record(
            session,
            actor=None,
            action="loans.history_purged",
            school_id=school_id,
            target_type="school",
            target_id=school_id,
            details={"before": cutoff.isoformat(), **dataclasses.asdict(purged)},
        )
    return purged


def run_retention(session: Session, *, now: datetime) -> dict[int, Purged]:
    """P-SEC-3: each school's loan history beyond its retention period is deleted; commits."""
    done: dict[int, Purged] = {}
    for school_id in session.scalars(select(School.id).order_by(School.id)).all():
        done[school_id] = purge_loan_history(session, school_id, now=now)
        session.commit()
    return done


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
