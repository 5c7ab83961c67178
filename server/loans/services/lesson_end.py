"""The end of each lesson: devices still out are asked to wipe their photos, as a return does."""

# P-PHOTO-1: pupils' photos are "deleted at the end of the lesson". A device kept across lessons
# would otherwise keep them until it is returned, so at each lesson's end (the school's own
# periods) every device still out on a lesson loan is asked to wipe, unless the school turns
# this off. It is a return's wipe early: the fleet budget never holds it.

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from server.activity.services import record
from server.auth.models import User
from server.commands import services as commands
from server.devices.models import DeviceStatus
from server.enrolment.models import DeviceIdentity
from server.loans.models import ItemState, Loan, LoanItem, LoanKind, LoanSettings
from server.loans.services.school_day import Period, SchoolDay, _settings_changed_by
from server.schools.services.clock import local_today

log = logging.getLogger(__name__)


def wipes_at_lesson_end(session: Session, school_id: int) -> bool:
    """Whether the school asks devices still out to wipe at each lesson's end (default: yes)."""
    saved = session.get(LoanSettings, school_id)
    return saved.wipe_at_lesson_end if saved is not None else True


def set_lesson_end_wipe(session: Session, actor: User, *, enabled: bool) -> bool:
    """Turn the lesson's-end wipe on or off (admin or SBM); commits."""
    _settings_changed_by(session, actor).wipe_at_lesson_end = enabled
    record(
        session,
        actor=actor,
        action="loans.lesson_end_wipe_changed",
        school_id=actor.school_id,
        target_type="school",
        target_id=actor.school_id,
        details={"enabled": enabled},
    )
    session.commit()
    return enabled


def _last_lesson_end(day: SchoolDay, now: datetime) -> tuple[Period, datetime] | None:
    """Today's lesson that ended most recently, at or before `now`, and when."""
    today = local_today(day.school, now)
    ended = [(p, day.at(today, p.ends)) for p in day.lessons_on(today)]
    ended = [(p, at) for p, at in ended if at <= now]
    return max(ended, key=lambda pair: pair[1]) if ended else None


def wipe_at_lesson_ends(
    session: Session, *, now: datetime, day_for: Callable[[int], SchoolDay]
) -> int:
    """The job: ask each device out since before its lesson ended to wipe, once per lesson."""
    out = (LoanItem.state == ItemState.OUT, Loan.kind == LoanKind.LESSON)
    schools = session.scalars(
        select(LoanItem.school_id).join(Loan, Loan.id == LoanItem.loan_id).where(*out).distinct()
    ).all()
    asked = 0
    for school_id in sorted(schools):
        last = _last_lesson_end(day_for(school_id), now)
        if last is None or not wipes_at_lesson_end(session, school_id):
            continue
        period, ended = last
        # Only the items this lesson's end has not reached yet: none, most minutes.
        query = (
            select(LoanItem)
            .join(Loan, Loan.id == LoanItem.loan_id)
            .where(
                *out,
                LoanItem.school_id == school_id,
                LoanItem.out_at < ended,
                LoanItem.lesson_wipe_at.is_(None) | (LoanItem.lesson_wipe_at < ended),
            )
            .options(selectinload(LoanItem.device))
            .order_by(LoanItem.id)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=LoanItem)
        due = session.scalars(query).all()
        if due:
            asked += _ask(session, due, period, ended, now)
    return asked


def _ask(
    session: Session, items: Sequence[LoanItem], period: Period, ended: datetime, now: datetime
) -> int:
    """One batch of wipes for the school's devices still out; the rest are wiped by hand."""
    enrolled = set(
        session.scalars(
            select(DeviceIdentity.device_id).where(
                DeviceIdentity.device_id.in_([item.device_id for item in items]),
                DeviceIdentity.revoked_at.is_(None),
            )
        )
    )
    remote = [
        item
        for item in items
        if item.device_id in enrolled and item.device.status is not DeviceStatus.DISPOSED
    ]
    if remote:
        issued = commands.issue(
            session,
            None,
            [item.device for item in remote],
            "wipe_photos",
            {},
            reason=f"End of {period.name}: photos are deleted at the end of the lesson",
            now=now,
            commit=False,
            trail_at_commit=True,
            on_return=True,
        )
        for item, command in zip(remote, issued, strict=True):
            item.lesson_wipe_command_id = command.id
    reached = {item.id for item in remote}
    for item in items:
        if item.id not in reached:
            item.lesson_wipe_command_id = None  # Trolley cannot reach it: wiped by hand
        item.lesson_wipe_at = ended
        # Outstanding until the device (or, for one Trolley cannot reach, a person) confirms it.
        item.wipe_outstanding = True
        item.wipe_chased_at = None
    log.info(
        "end of %s: %d devices still out asked to wipe, %d to wipe by hand",
        period.name,
        len(remote),
        len(items) - len(remote),
    )
    return len(items)
