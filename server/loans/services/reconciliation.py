"""Chasing devices not back (due, end of day, next morning, home loans) and photo wipes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from server.auth.models import Role
from server.loans.models import HomeApproval, ItemState, Loan, LoanItem, LoanKind
from server.loans.services.common import _event, _notify
from server.loans.services.home_loans import APPROVERS
from server.loans.services.lesson_end import wipe_at_lesson_ends
from server.loans.services.school_day import SchoolDay, school_day
from server.loans.services.wipe_chasing import chase_wipes
from server.losses import services as losses
from server.losses.models import PossibleLossSource
from server.schools.services.clock import day as clock_day
from server.schools.services.clock import local_today, plural, when

log = logging.getLogger(__name__)


@dataclass
class Reconciliation:
    """What one run of the reconciliation job did."""

    due_reminders: int = 0
    escalated: int = 0
    home_overdue: int = 0
    offered_as_lost: int = 0
    lesson_wipes: int = 0
    wipes_chased: int = 0


def _lock(query: Any, session: Session, of: Any) -> Any:
    """Several workers on PostgreSQL: each row is chased by exactly one of them."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of)
    return query


def _last_scan_text(item: LoanItem, day: SchoolDay) -> str:
    place = item.from_location.name if item.from_location else "a trolley"
    seen = item.device.last_seen_at
    text = f"taken out of {place} at {when(item.out_at, day.school)}"
    if seen is not None:
        text += f"; the device last checked in at {when(seen, day.school)}"
    return text


def run_reconciliation(session: Session, *, now: datetime) -> Reconciliation:
    """Remind teachers at the due time, escalate at the day's end, chase overdue home loans."""
    report = Reconciliation()
    days: dict[int, SchoolDay] = {}

    def day_for(school_id: int) -> SchoolDay:
        if school_id not in days:
            days[school_id] = school_day(session, school_id)
        return days[school_id]

    # 0. A loan whose last two devices came back at the same instant may have missed closing.
    session.execute(
        update(Loan)
        .where(
            Loan.closed_at.is_(None),
            Loan.kind == LoanKind.LESSON,
            ~exists().where(LoanItem.loan_id == Loan.id, LoanItem.state == ItemState.OUT),
        )
        .values(closed_at=now)
        .execution_options(synchronize_session=False)
    )

    # 1. At the due time the teacher is told what is still out.
    due = session.scalars(
        _lock(
            select(Loan).where(
                Loan.closed_at.is_(None),
                Loan.due_at <= now,
                Loan.due_notified_at.is_(None),
                Loan.kind == LoanKind.LESSON,
            ),
            session,
            Loan,
        )
    ).all()
    for loan in due:
        out = [i for i in loan.items if i.state is ItemState.OUT]
        loan.due_notified_at = now
        if not out:
            continue
        day = day_for(loan.school_id)
        tags = ", ".join(i.device.asset_tag for i in out)
        trolley = loan.trolley.name if loan.trolley else "the trolley"
        _notify(
            session,
            loan.school_id,
            users=[loan.teacher],
            kind="loan_due",
            title=f"{plural(len(out), 'device')} still out from {trolley}",
            body=f"Due back at {when(loan.due_at, day.school)}: {tags}. "
            f"Scan them back into {trolley}.",
            link=f"/loans/{loan.id}",
            devices=[i.device for i in out],
            case_id=loan.id,
            at=now,
        )
        report.due_reminders += 1

    # 2. At the end of the school day, whatever is not back goes to the computing lead and SBM.
    candidates = session.scalars(
        _lock(
            select(LoanItem)
            .join(Loan, Loan.id == LoanItem.loan_id)
            .where(
                LoanItem.state == ItemState.OUT,
                LoanItem.escalated_at.is_(None),
                Loan.kind == LoanKind.LESSON,
            )
            .order_by(LoanItem.school_id, LoanItem.out_at),
            session,
            LoanItem,
        )
    ).all()
    per_school: dict[int, list[LoanItem]] = {}
    for item in candidates:
        if item.out_at < day_for(item.school_id).last_day_end(now):
            per_school.setdefault(item.school_id, []).append(item)
    for school_id, items in per_school.items():
        day = day_for(school_id)
        lines = [
            f"{i.device.asset_tag}: last with {i.loan.teacher.name}"
            + (f" ({i.loan.class_label})" if i.loan.class_label else "")
            + f"; {_last_scan_text(i, day)}"
            for i in items
        ]
        _notify(
            session,
            school_id,
            roles=[Role.COMPUTING_LEAD, Role.SBM],
            kind="loans_not_back",
            title=f"{plural(len(items), 'device')} not back in a trolley at the end of the day",
            body="\n".join(lines),
            link="/loans/out",
            devices=[i.device for i in items],
            at=now,
        )
        for item in items:
            item.escalated_at = now
            _event(
                session,
                item.device,
                now,
                kind="loan_overdue",
                summary=f"Not back at the end of the day; last with {item.loan.teacher.name}",
                actor=None,
            )
        report.escalated += len(items)

    # 3. Overdue home loans: the SBM, the headteacher and the borrower, once a day.
    home = session.scalars(
        _lock(
            select(Loan).where(
                Loan.closed_at.is_(None),
                Loan.kind == LoanKind.HOME,
                Loan.approval == HomeApproval.APPROVED,
                Loan.due_at < now,
            ),
            session,
            Loan,
        )
    ).all()
    for loan in home:
        day = day_for(loan.school_id)
        today = local_today(day.school, now)
        if loan.overdue_notified_on == today:
            continue
        still_out = [i.device for i in loan.items if i.state is ItemState.OUT]
        out = [device.asset_tag for device in still_out]
        if not out:
            continue
        loan.overdue_notified_on = today
        title = (
            f"Home loan overdue: {', '.join(out)} with {loan.teacher.name} "
            f"(due {clock_day(loan.due_at, day.school)})"
        )
        body = (
            f"{loan.teacher.name} took {', '.join(out)} home ({loan.reason}); it was due back "
            f"at {when(loan.due_at, day.school)}."
        )
        _notify(
            session,
            loan.school_id,
            roles=sorted(APPROVERS),
            kind="home_loan_overdue",
            title=title,
            body=body,
            link="/loans/home",
            devices=still_out,
            case_id=loan.id,
            at=now,
        )
        _notify(
            session,
            loan.school_id,
            users=[loan.teacher],
            kind="home_loan_overdue",
            title=title,
            body=body + " Please bring it back and scan it into its trolley.",
            link="/loans/home",
            devices=still_out,
            case_id=loan.id,
            at=now,
        )
        report.home_overdue += 1

    # 4. Not back at the end of the day and still out next morning: a possible loss (P-LOSS-1).
    report.offered_as_lost = _offer_still_missing(session, now, day_for)
    # 5. P-PHOTO-1: devices still out when a lesson ends wipe too; failed wipes are chased.
    report.lesson_wipes = wipe_at_lesson_ends(session, now=now, day_for=day_for)
    session.flush()
    report.wipes_chased = chase_wipes(session, now=now)
    if any(vars(report).values()):
        log.info("loans reconciliation: %s", vars(report))
    return report


def _offer_still_missing(
    session: Session, now: datetime, day_for: Callable[[int], SchoolDay]
) -> int:
    """Offer the headteacher each lesson device escalated last night that is still out."""
    candidates = session.scalars(
        _lock(
            select(LoanItem)
            .join(Loan, Loan.id == LoanItem.loan_id)
            .where(
                LoanItem.state == ItemState.OUT,
                LoanItem.escalated_at.is_not(None),
                LoanItem.loss_offered_at.is_(None),
                Loan.kind == LoanKind.LESSON,
            )
            .order_by(LoanItem.school_id, LoanItem.out_at),
            session,
            LoanItem,
        )
    ).all()
    per_school: dict[int, list[LoanItem]] = {}
    for item in candidates:
        assert item.escalated_at is not None
        if day_for(item.school_id).next_morning(item.escalated_at) <= now:
            per_school.setdefault(item.school_id, []).append(item)
    offered = 0
    for school_id, items in per_school.items():
        day = day_for(school_id)
        offers = []
        for item in items:
            item.loss_offered_at = now
            place = item.from_location.name if item.from_location else "a trolley"
            teacher = item.loan.teacher.name
            label = f" for {item.loan.class_label}" if item.loan.class_label else ""
            seen = item.device.last_seen_at
            offers.append(
                losses.Offer(
                    device=item.device,
                    source=PossibleLossSource.NOT_BACK,
                    source_id=item.id,
                    last_seen_at=item.out_at,
                    last_seen_where=f"Taken out of {place} by {teacher}{label}",
                    circumstances=(
                        f"Taken out of {place} by {teacher}{label} "
                        f"{when(item.out_at, day.school)}; not back in its trolley at the end of "
                        "the day, and still not found the next morning."
                        + (
                            f" The device last checked in {when(seen, day.school)}."
                            if seen is not None
                            else ""
                        )
                    ),
                )
            )
        offered += len(losses.offer_possible_losses(session, school_id, offers, now=now))
    return offered
