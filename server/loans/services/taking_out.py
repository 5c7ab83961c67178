"""Taking devices out: today's loan for the lesson, claiming each device, and taking one over."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from server.activity.services import record
from server.auth.models import User
from server.devices.models import Device
from server.loans.models import ItemState, Loan, LoanItem, LoanKind
from server.loans.services.answers import ScanResult, _held_by_other, _refuse_unusable, open_item
from server.loans.services.common import _event, _notify, _school
from server.loans.services.photo_wipes import _wipe_unconfirmed
from server.loans.services.places import _SQL, _TODAYS_LOAN
from server.loans.services.returning import _close_if_done, _close_item
from server.loans.services.school_day import school_day
from server.schools.models import Location
from server.schools.services.clock import local_today, start_of


def _lesson_loan_factory(
    session: Session,
    actor: User,
    trolley: Location,
    class_label: str,
    due_at: datetime | None,
    now: datetime,
) -> Callable[[], Loan]:
    """Today's open loan for this teacher, trolley and class, made on first use."""
    made: list[Loan] = []

    def get() -> Loan:
        if made:
            return made[0]
        # The school comes with the latest open loan: "today" is the day on the school's clock.
        row = session.execute(
            _TODAYS_LOAN[bool(class_label)],
            {
                "teacher": actor.id,
                "trolley": trolley.id,
                "label": class_label,
                "school_id": actor.school_id,
            },
        ).first()
        school, loan = row if row else (_school(session, actor.school_id), None)
        today = start_of(local_today(school, now), school)
        if loan is not None and loan.started_at < today:
            loan = None  # yesterday's, left open: today's lesson is a new loan
        if loan is None:
            loan = Loan(
                school_id=actor.school_id,
                kind=LoanKind.LESSON,
                teacher_id=actor.id,
                class_label=class_label,
                trolley_id=trolley.id,
                started_at=now,
                due_at=due_at or school_day(session, actor.school_id).default_due(now),
                requested_tags=[],
            )
            session.add(loan)
            session.flush()
        elif due_at is not None and due_at != loan.due_at:
            loan.due_at = due_at
            loan.due_notified_at = None
        made.append(loan)
        return loan

    return get


def _take_out_one(
    session: Session,
    *,
    actor: User,
    holder: User,
    device: Device,
    place: Location | None,
    loan: Callable[[], Loan],
    now: datetime,
    transfer: bool = False,
) -> ScanResult:
    """Give `holder` the device: refused, already theirs, taken over (if asked) or claimed."""
    _refuse_unusable(session, actor, device, place, now)
    if device.holder_id == holder.id:
        existing = open_item(session, device.id)
        return _already_out(actor, holder, device, existing.loan_id if existing else None)
    if device.holder_id is not None:
        if not transfer:
            raise _held_by_other(session, device)
        return _transfer(session, actor, holder, device, loan, now)
    came_from = device.current_location_id
    claimed = session.execute(_SQL["claim"], {"device": device.id, "holder": holder.id, "now": now})
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        # Someone else's scan won the race (or the device changed status) a moment ago.
        session.refresh(device)
        if device.holder_id == holder.id:
            return _already_out(actor, holder, device, None)
        _refuse_unusable(session, actor, device, place, now)
        raise _held_by_other(session, device)
    set_committed_value(device, "holder_id", holder.id)
    set_committed_value(device, "current_location_id", None)
    session.expire(device, ["holder", "current_location"])
    warnings = []
    unconfirmed = _wipe_unconfirmed(session, device)
    if unconfirmed:
        warnings.append(
            f"Photos from an earlier lesson may still be on {device.asset_tag} ({unconfirmed}). "
            "Check its photos before a pupil uses it."
        )
    if place is not None and came_from is not None and came_from != place.id:
        elsewhere = session.get(Location, came_from)
        warnings.append(
            f"{device.asset_tag} was recorded in {elsewhere.name if elsewhere else 'another place'}"
            f", not {place.name}."
        )
    current = loan()
    item_id = session.execute(
        _SQL["new_item"],
        {
            "school_id": device.school_id,
            "loan_id": current.id,
            "device_id": device.id,
            "state": ItemState.OUT,
            "from_location_id": came_from,
            "out_at": now,
            "out_by_id": actor.id,
            "condition": [],
            "wipe_unconfirmed_at_out": bool(unconfirmed),
            "wrong_trolley": False,
        },
    ).scalar_one()
    where = f"out of {place.name}" if place is not None else "out"
    who = holder.name if holder.id == actor.id else f"{holder.name} (by {actor.name})"
    _event(
        session,
        device,
        now,
        kind="loan_out",
        summary=f"Taken {where} by {who}"
        + (f" for {current.class_label}" if current.class_label else ""),
        actor=actor,
        details={"loan_id": current.id},
    )
    return ScanResult(
        "out",
        f"{device.asset_tag} is out with {_you(actor, holder)}.",
        device.asset_tag,
        device.model,
        None,
        loan_id=current.id,
        warnings=warnings,
        item_id=item_id,
    )


def _you(actor: User, holder: User) -> str:
    return "you" if actor.id == holder.id else holder.name


def _already_out(actor: User, holder: User, device: Device, loan_id: int | None) -> ScanResult:
    """The device is already with `holder`: said so, and nothing is recorded."""
    return ScanResult(
        "already_out",
        f"{device.asset_tag} is already out with {_you(actor, holder)}.",
        device.asset_tag,
        device.model,
        None,
        loan_id=loan_id,
        recorded=False,
    )


def _transfer(
    session: Session,
    actor: User,
    holder: User,
    device: Device,
    loan: Callable[[], Loan],
    now: datetime,
) -> ScanResult:
    """Hand a device that is out with someone else to `holder` (logged; they are told)."""
    previous = open_item(session, device.id)
    old_holder_id = device.holder_id
    moved = session.execute(
        update(Device)
        .where(Device.id == device.id, Device.holder_id == old_holder_id)
        .values(holder_id=holder.id, current_location_id=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(device)
        raise _held_by_other(session, device)
    set_committed_value(device, "holder_id", holder.id)
    set_committed_value(device, "current_location_id", None)
    session.expire(device, ["holder", "current_location"])
    old = session.get(User, old_holder_id) if old_holder_id else None
    if previous is not None:
        # Closed before the new item exists: one open item per device, even mid-flush.
        _close_item(
            session,
            previous,
            state=ItemState.TRANSFERRED,
            returned_at=now,
            returned_by_id=actor.id,
        )
        _close_if_done(session, previous.loan, now)
    current = loan()
    item = LoanItem(
        school_id=device.school_id,
        loan=current,
        device_id=device.id,
        state=ItemState.OUT,
        from_location_id=None,
        out_at=now,
        out_by_id=actor.id,
        condition=[],
        wipe_unconfirmed_at_out=False,
        wrong_trolley=False,
    )
    session.add(item)
    session.flush()
    old_name = old.name if old else "someone"
    _event(
        session,
        device,
        now,
        kind="loan_transfer",
        summary=f"Taken over from {old_name} by {holder.name}",
        actor=actor,
        details={"loan_id": current.id, "from_user_id": old_holder_id},
    )
    record(
        session,
        actor=actor,
        action="loans.transferred",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"from_user_id": old_holder_id, "to_user_id": holder.id, "loan_id": current.id},
        at=now,
    )
    if old is not None and old.id != actor.id:
        _notify(
            session,
            device.school_id,
            users=[old],
            kind="loan_transfer",
            title=f"{holder.name} has taken over {device.asset_tag}",
            body=f"{device.asset_tag} is no longer on your loan: {holder.name} scanned it and "
            "took it over. Nothing else to do.",
            link=f"/devices/{device.asset_tag}",
            email=False,
        )
    return ScanResult(
        "transferred",
        f"{device.asset_tag} is now out with {_you(actor, holder)} (taken over from {old_name}).",
        device.asset_tag,
        device.model,
        None,
        loan_id=current.id,
        item_id=item.id,
    )
