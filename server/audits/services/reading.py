"""What the home page and a device's page show about audits, and the register by status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from server.audits.models import Audit, AuditItem, AuditStatus, PhotoCheck, PhotoCheckStatus
from server.audits.pages import STATUS_ORDER, HomeCard, RegisterPicture
from server.audits.services.common import place_paths
from server.audits.services.progress import _totals_found
from server.audits.services.starting import open_audit
from server.audits.services.terms import half_term_on, term_audits, term_on
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.schools.models import School
from server.schools.services.clock import local_today


def device_history(
    session: Session, device: Device, limit: int = 3
) -> list[tuple[Audit, AuditItem]]:
    """The device's last few audit results, for its page."""
    rows = session.execute(
        select(Audit, AuditItem)
        .join(AuditItem, AuditItem.audit_id == Audit.id)
        .where(AuditItem.device_id == device.id, Audit.school_id == device.school_id)
        .options(joinedload(Audit.term), joinedload(AuditItem.scanned_location))
        .order_by(Audit.started_at.desc())
        .limit(limit)
    ).all()
    return [(audit, item) for audit, item in rows]


def home_card(session: Session, school: School, now: datetime | None = None) -> HomeCard:
    """What each role's home page shows about audits and photo checks."""
    now = now or utcnow()
    today = local_today(school, now)
    statuses = term_audits(session, school.id, today)
    terms = [s.term for s in statuses]
    current_term = term_on(terms, today)
    current = next((s for s in statuses if current_term and s.term.id == current_term.id), None)
    running = open_audit(session, school.id)
    found, expected = _totals_found(session, running.id) if running else (0, 0)
    last_closed = session.scalar(
        select(Audit)
        .where(Audit.school_id == school.id, Audit.status == AuditStatus.CLOSED)
        .options(joinedload(Audit.term))
        .order_by(Audit.closed_at.desc())
        .limit(1)
    )
    half = half_term_on(terms, today)
    checks = (
        session.scalars(
            select(PhotoCheck)
            .where(
                PhotoCheck.school_id == school.id,
                PhotoCheck.term_id == half.term.id,
                PhotoCheck.half == half.half,
            )
            .order_by(PhotoCheck.started_at.desc())
        ).all()
        if half
        else []
    )
    return HomeCard(
        today=today,
        current=current,
        overdue=next((s for s in statuses if s.state == "overdue"), None),
        running=running,
        found=found,
        expected=expected,
        last_closed=last_closed,
        awaiting_countersign=(
            last_closed if last_closed and last_closed.countersigned_at is None else None
        ),
        half=half,
        photo_check_done=next((c for c in checks if c.status is PhotoCheckStatus.COMPLETE), None),
        photo_check_open=next((c for c in checks if c.status is PhotoCheckStatus.OPEN), None),
    )


def register_picture(session: Session, school_id: int, *, places: int = 15) -> RegisterPicture:
    """One GROUP BY of the live register by home and status, for the chart."""
    rows = session.execute(
        select(Device.home_location_id, Device.status, func.count())
        .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
        .group_by(Device.home_location_id, Device.status)
    ).all()
    column = {status: n for n, status in enumerate(STATUS_ORDER)}
    totals = [0] * len(STATUS_ORDER)
    per_place: dict[int | None, list[int]] = {}
    for home, status, n in rows:
        totals[column[status]] += n
        per_place.setdefault(home, [0] * len(STATUS_ORDER))[column[status]] += n
    names = place_paths(session, school_id)
    biggest = sorted(per_place.items(), key=lambda item: (-sum(item[1]), item[0] or 0))
    return RegisterPicture(
        statuses=list(zip(STATUS_ORDER, totals, strict=True)),
        places=[
            (names.get(home, "No home set").split(" › ")[-1] if home else "No home set", c, sum(c))
            for home, c in biggest[:places]
        ],
        more_places=max(0, len(biggest) - places),
    )
