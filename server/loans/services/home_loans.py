"""Home loans: asking for a device to go home, the SBM's or head's decision, and what is at home."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from server.activity.services import record
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.loans.models import HomeApproval, ItemState, Loan, LoanItem, LoanKind
from server.loans.services.common import LOANABLE, _notify
from server.loans.services.places import _resolve_many
from server.loans.services.reading import get_loan
from server.loans.services.returning import _home_loan_profile
from server.loans.services.school_day import school_day
from server.loans.services.taking_out import _take_out_one
from server.schools.services.clock import local_today
from server.waiting import Waiting

HOME_LOAN_MAX_DAYS = 92
APPROVERS = frozenset({Role.SBM, Role.HEADTEACHER})


def request_home_loan(
    session: Session,
    actor: User,
    *,
    asset_tags: Sequence[str],
    return_by: date,
    reason: str,
    base_url: str,
    now: datetime | None = None,
) -> Loan:
    """Ask the SBM or headteacher to let devices go home until `return_by`."""
    now = now or utcnow()
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("Say why the device needs to go home.")
    if not asset_tags:
        raise ValidationFailed("Name the device (its asset tag).")
    if len(asset_tags) > 5:
        raise ValidationFailed("At most five devices go home on one loan.")
    day = school_day(session, actor.school_id)
    today = local_today(day.school, now)
    if not today <= return_by <= today + timedelta(days=HOME_LOAN_MAX_DAYS):
        raise ValidationFailed("Choose a return date from today to three months ahead.")
    devices = _resolve_many(session, actor.school_id, asset_tags, base_url)
    for device in devices:
        if device.status not in LOANABLE:
            raise ValidationFailed(
                f"{device.asset_tag} is {device.status.label.lower()}, so it cannot go home."
            )
    loan = Loan(
        school_id=actor.school_id,
        kind=LoanKind.HOME,
        teacher_id=actor.id,
        class_label="Home loan",
        trolley_id=None,
        started_at=now,
        due_at=day.at(return_by, day.day_ends),
        reason=reason[:500],
        approval=HomeApproval.REQUESTED,
        requested_tags=[d.asset_tag for d in devices],
        # Not out until approved: a request is closed until then.
        closed_at=now,
    )
    session.add(loan)
    session.flush()
    record(
        session,
        actor=actor,
        action="loans.home_requested",
        school_id=actor.school_id,
        target_type="loan",
        target_id=loan.id,
        details={"asset_tags": loan.requested_tags, "return_by": return_by.isoformat()},
    )
    _notify(
        session,
        actor.school_id,
        roles=sorted(APPROVERS),
        kind="home_loan_request",
        title=f"{actor.name} asks to take {', '.join(loan.requested_tags)} home",
        body=f"Until {return_by:%A %d %B}: {reason}",
        link="/loans/home",
        devices=devices,
        case_id=loan.id,
        at=now,
    )
    session.commit()
    return loan


def get_home_loan(session: Session, school_id: int, loan_id: int) -> Loan:
    loan = get_loan(session, school_id, loan_id)
    if loan.kind is not LoanKind.HOME:
        raise NotFound("No such home loan in your school.")
    return loan


def decide_home_loan(
    session: Session,
    actor: User,
    loan_id: int,
    *,
    approve: bool,
    note: str = "",
    now: datetime | None = None,
) -> Loan:
    """The SBM or headteacher (not the person asking) approves — devices go out — or declines."""
    now = now or utcnow()
    loan = get_home_loan(session, actor.school_id, loan_id)
    if actor.role not in APPROVERS:
        raise Forbidden("Only the school business manager or the headteacher approves home loans.")
    if loan.teacher_id == actor.id:
        raise Forbidden("Someone else must approve a home loan you asked for.")
    if loan.approval is not HomeApproval.REQUESTED:
        raise Conflict(f"This home loan is already {loan.approval.value if loan.approval else ''}.")
    note = " ".join(note.split())[:500]
    borrower = loan.teacher
    devices: Sequence[Device] = []
    if approve:
        devices = session.scalars(
            select(Device)
            .where(Device.school_id == actor.school_id, Device.asset_tag.in_(loan.requested_tags))
            .order_by(Device.asset_tag)
        ).all()
        loan.closed_at = None
        refused = []
        for device in devices:
            try:
                _take_out_one(
                    session,
                    actor=actor,
                    holder=borrower,
                    device=device,
                    place=None,
                    loan=lambda: loan,
                    now=now,
                )
            except Conflict as exc:
                refused.append(exc.message)
        if refused:
            session.rollback()
            raise Conflict("This home loan cannot start yet: " + " ".join(refused))
        session.flush()
        session.refresh(loan)
        _home_loan_profile(session, loan, at_home=True)
    else:
        if not note:
            raise ValidationFailed("Say why; the person who asked is told.")
    loan.approval = HomeApproval.APPROVED if approve else HomeApproval.DECLINED
    loan.decided_by_id = actor.id
    loan.decided_at = now
    loan.decision_note = note or None
    loan.started_at = now if approve else loan.started_at
    record(
        session,
        actor=actor,
        action="loans.home_" + ("approved" if approve else "declined"),
        school_id=actor.school_id,
        target_type="loan",
        target_id=loan.id,
        details={"asset_tags": loan.requested_tags, "note": note},
        at=now,
    )
    day = school_day(session, actor.school_id)
    _notify(
        session,
        actor.school_id,
        users=[borrower],
        kind="home_loan_decision",
        title=f"Home loan of {', '.join(loan.requested_tags)} "
        + ("approved" if approve else "declined"),
        body=(
            f"Bring it back by {day.local(loan.due_at):%A %d %B}, and scan it into its trolley."
            if approve
            else f"{actor.name} declined: {note}"
        ),
        link="/loans/home",
        devices=devices,
        case_id=loan.id,
        at=now,
    )
    session.commit()
    return loan


def home_loans(session: Session, user: User, *, everyone: bool, limit: int = 100) -> Sequence[Loan]:
    query = select(Loan).where(Loan.school_id == user.school_id, Loan.kind == LoanKind.HOME)
    if not everyone:
        query = query.where(Loan.teacher_id == user.id)
    return session.scalars(
        query.options(
            joinedload(Loan.teacher),
            joinedload(Loan.decided_by),
            selectinload(Loan.items).joinedload(LoanItem.device),
        )
        .order_by(Loan.started_at.desc(), Loan.id.desc())
        .limit(limit)
    ).all()


def is_on_home_loan(session: Session, device: Device) -> bool:
    """Whether the device is out on an approved home loan (it may be seen off-site)."""
    return (
        session.scalar(
            select(LoanItem.id)
            .join(Loan, Loan.id == LoanItem.loan_id)
            .where(
                LoanItem.device_id == device.id,
                LoanItem.state == ItemState.OUT,
                Loan.kind == LoanKind.HOME,
                Loan.approval == HomeApproval.APPROVED,
            )
        )
        is not None
    )


def home_loans_waiting_for(session: Session, user: User) -> list[Waiting]:
    """Home loans someone else asked for that `user` may approve or decline."""
    if user.role not in APPROVERS:
        return []
    count, since = session.execute(
        select(func.count(), func.min(Loan.started_at)).where(
            Loan.school_id == user.school_id,
            Loan.kind == LoanKind.HOME,
            Loan.approval == HomeApproval.REQUESTED,
            Loan.teacher_id != user.id,
        )
    ).one()
    if not count:
        return []
    what = "request" if count == 1 else "requests"
    return [Waiting(f"{count} home loan {what}", count, since, "/loans/home")]
