"""Reading loans: a loan, the school's loans, what is out now, and how the photo wipes stand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.devices.models import Device
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.loans.models import ItemState, Loan, LoanItem, LoanKind
from server.loans.pages import OutItem
from server.loans.services.common import MAX_ID, _school
from server.schools.models import Location
from server.schools.services.clock import local_today, start_of


def get_loan(session: Session, school_id: int, loan_id: int) -> Loan:
    if not 1 <= loan_id <= MAX_ID:
        raise NotFound("No such loan in your school.")
    loan = session.scalar(
        select(Loan)
        .where(Loan.id == loan_id, Loan.school_id == school_id)
        .options(
            selectinload(Loan.items).joinedload(LoanItem.device),
            selectinload(Loan.items).joinedload(LoanItem.wipe_command),
            selectinload(Loan.items).joinedload(LoanItem.return_location),
            joinedload(Loan.teacher),
            joinedload(Loan.trolley),
        )
        .execution_options(populate_existing=True)
    )
    if loan is None:
        raise NotFound("No such loan in your school.")
    return loan


def list_loans(
    session: Session,
    school_id: int,
    *,
    teacher_id: int | None = None,
    open_only: bool = False,
    kind: LoanKind | None = None,
    limit: int = 50,
) -> Sequence[Loan]:
    query = select(Loan).where(Loan.school_id == school_id)
    if teacher_id is not None:
        query = query.where(Loan.teacher_id == teacher_id)
    if open_only:
        query = query.where(Loan.closed_at.is_(None))
    if kind is not None:
        query = query.where(Loan.kind == kind)
    return session.scalars(
        query.options(
            selectinload(Loan.items).joinedload(LoanItem.device),
            selectinload(Loan.items).joinedload(LoanItem.wipe_command),
            joinedload(Loan.teacher),
            joinedload(Loan.trolley),
        )
        .order_by(Loan.started_at.desc(), Loan.id.desc())
        .limit(limit)
    ).all()


def recent_class_labels(session: Session, user: User, limit: int = 8) -> list[str]:
    rows = session.execute(
        select(Loan.class_label, func.max(Loan.started_at))
        .where(Loan.teacher_id == user.id, Loan.class_label != "", Loan.kind == LoanKind.LESSON)
        .group_by(Loan.class_label)
        .order_by(func.max(Loan.started_at).desc())
        .limit(limit)
    ).all()
    return [label for label, _at in rows]


def change_due(
    session: Session, actor: User, loan_id: int, due_at: datetime, *, now: datetime | None = None
) -> Loan:
    """The teacher (or a lead) moves the time a lesson's devices are due back."""
    now = now or utcnow()
    loan = get_loan(session, actor.school_id, loan_id)
    if loan.teacher_id != actor.id and not has_permission(actor.role, Permission.REPORTS_READ):
        raise Forbidden("Only the teacher who took the devices out can change when they are due.")
    if loan.closed_at is not None:
        raise Conflict("Everything on this loan is already back.")
    if loan.kind is not LoanKind.LESSON:
        raise ValidationFailed("A home loan's return date is set when it is approved.")
    if not now - timedelta(hours=1) <= due_at <= now + timedelta(days=7):
        raise ValidationFailed("Choose a time from now to a week ahead.")
    loan.due_at = due_at
    loan.due_notified_at = None
    session.commit()
    return loan


def devices_out(
    session: Session,
    school_id: int,
    *,
    now: datetime | None = None,
    teacher_id: int | None = None,
    trolley_id: int | None = None,
    limit: int = 500,
) -> list[OutItem]:
    """Everything out now (one joined query), oldest first."""
    now = now or utcnow()
    school = _school(session, school_id)
    start = start_of(local_today(school, now), school)
    query = (
        select(LoanItem, Loan, Device, User, Location.name)
        .join(Loan, Loan.id == LoanItem.loan_id)
        .join(Device, Device.id == LoanItem.device_id)
        .join(User, User.id == Loan.teacher_id)
        .outerjoin(Location, Location.id == Loan.trolley_id)
        .where(LoanItem.state == ItemState.OUT, LoanItem.school_id == school_id)
    )
    if teacher_id is not None:
        query = query.where(Loan.teacher_id == teacher_id)
    if trolley_id is not None:
        query = query.where(Device.home_location_id == trolley_id)
    rows = session.execute(query.order_by(LoanItem.out_at, Device.asset_tag).limit(limit)).all()
    return [
        OutItem(
            asset_tag=device.asset_tag,
            model=device.model,
            loan_id=loan.id,
            kind=loan.kind.value,
            teacher=user.name,
            teacher_id=user.id,
            class_label=loan.class_label,
            trolley=trolley_name,
            out_at=item.out_at,
            due_at=loan.due_at,
            overdue=loan.due_at < now,
            overnight=loan.kind is LoanKind.LESSON and item.out_at < start,
            last_seen_at=device.last_seen_at,
        )
        for item, loan, device, user, trolley_name in rows
    ]


def device_loans(session: Session, device: Device, limit: int = 5) -> Sequence[LoanItem]:
    """The device's latest loans, for its page."""
    return session.scalars(
        select(LoanItem)
        .where(LoanItem.device_id == device.id)
        .options(
            joinedload(LoanItem.loan).joinedload(Loan.teacher),
            joinedload(LoanItem.wipe_command),
            joinedload(LoanItem.return_location),
        )
        .order_by(LoanItem.out_at.desc())
        .limit(limit)
    ).all()


def misplaced(session: Session, school_id: int, *, since: datetime) -> list[LoanItem]:
    """Recent wrong-trolley returns whose device is still away from home (the SBM's note)."""
    return list(
        session.scalars(
            select(LoanItem)
            .join(Device, Device.id == LoanItem.device_id)
            .where(
                LoanItem.school_id == school_id,
                LoanItem.wrong_trolley.is_(True),
                LoanItem.returned_at >= since,
                Device.holder_id.is_(None),
                Device.current_location_id == LoanItem.return_location_id,
                Device.home_location_id != LoanItem.return_location_id,
            )
            .options(joinedload(LoanItem.device), joinedload(LoanItem.return_location))
            .order_by(LoanItem.returned_at.desc())
            .limit(50)
        ).unique()
    )
