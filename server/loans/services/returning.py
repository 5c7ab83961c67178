"""Putting devices back: the loan closes, photos are wiped, a wrong trolley and damage are noted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.devices.services import TRANSITIONS, change_status
from server.errors import Conflict
from server.loans.models import (
    ConditionFlag,
    DamageReport,
    DamageStatus,
    ItemState,
    Loan,
    LoanItem,
    LoanKind,
)
from server.loans.services.answers import ScanResult, _refuse_unusable
from server.loans.services.common import MISSING, _core, _event, _locks_rows, _notify
from server.loans.services.photo_wipes import _queue_wipe
from server.loans.services.places import _SQL
from server.profiles import services as profiles
from server.schools.models import Location, School
from server.schools.services.clock import when

_CLOSE_COLUMNS = (
    "state",
    "returned_at",
    "returned_by_id",
    "return_location_id",
    "wrong_trolley",
    "condition",
    "condition_note",
    "wipe_command_id",
    "wipe_note",
    "wipe_outstanding",
    "wipe_chased_at",
)
_CLOSE_ITEM = (
    update(LoanItem)
    .where(LoanItem.id == bindparam("item"), LoanItem.state == ItemState.OUT)
    .values({name: bindparam(f"new_{name}") for name in _CLOSE_COLUMNS})
)


def _close_item(session: Session, item: LoanItem, **values: Any) -> bool:
    """Close an open item once (a conditional UPDATE: a second return finds it closed)."""
    every = {name: getattr(item, name) for name in _CLOSE_COLUMNS} | values
    closed = _core(
        session, _CLOSE_ITEM, {"item": item.id} | {f"new_{k}": v for k, v in every.items()}
    )
    if closed.rowcount != 1:
        return False
    for name, value in values.items():
        set_committed_value(item, name, value)
    return True


def _home_loan_profile(session: Session, loan: Loan, *, at_home: bool) -> None:
    """A device at home gets the home-loan profile; back in school, its usual one."""
    for item in loan.items:
        profiles.set_home_loan(session, item.device, at_home=at_home)


def _close_if_done(session: Session, loan: Loan, now: datetime) -> None:
    """A loan closes once nothing on it is out any more (one statement, no read)."""
    closed = _core(session, _SQL["close_loan"], {"loan": loan.id, "now": now})
    if closed.rowcount == 1:
        set_committed_value(loan, "closed_at", now)
        if loan.kind is LoanKind.HOME:
            _home_loan_profile(session, loan, at_home=False)


def _return_one(
    session: Session,
    *,
    actor: User,
    device: Device,
    place: Location,
    now: datetime,
    condition: Sequence[ConditionFlag] = (),
    note: str | None = None,
    put_in_repair: bool = False,
    only_loan: Loan | None = None,
    locked: bool = False,
) -> ScanResult:
    """Put a device into a trolley: closes its loan item, queues the wipe, notes damage."""
    # The device is read under its lock (`locked`: already read so), then its open item: a
    # scan committed in between can be neither missed nor overwritten.
    if not locked and _locks_rows(session):
        session.refresh(device, with_for_update=True)
    if device.status in MISSING or device.status is DeviceStatus.DISPOSED:
        _refuse_unusable(session, actor, device, place, now)
    item: LoanItem | None = session.scalar(_SQL["open_item_locked"], {"device": device.id})
    if only_loan is not None and (item is None or item.loan_id != only_loan.id):
        raise Conflict(
            f"{device.asset_tag} is not out on this loan.",
            code="not_on_loan",
            details={"asset_tag": device.asset_tag},
        )
    note = (note or "").strip()[:500] or None
    if (
        item is None
        and device.holder_id is None
        and device.current_location_id == place.id
        and not condition
        and not put_in_repair
    ):
        return ScanResult(
            "already_in",
            f"{device.asset_tag} is already in {place.name}.",
            device.asset_tag,
            device.model,
            None,
            recorded=False,
        )
    wrong = device.home_location_id is not None and device.home_location_id != place.id
    wipe = _queue_wipe(session, actor, device, place, now)
    if item is not None and not _close_item(
        session,
        item,
        state=ItemState.RETURNED,
        returned_at=now,
        returned_by_id=actor.id,
        return_location_id=place.id,
        wrong_trolley=wrong,
        condition=[flag.value for flag in condition],
        condition_note=note,
        wipe_command_id=wipe.command_id,
        wipe_note=wipe.note,
        # Outstanding until the device confirms it (or a person records wiping it by hand).
        wipe_outstanding=True,
        wipe_chased_at=None,
    ):
        raise Conflict(
            f"{device.asset_tag} has just been put back by someone else.",
            code="already_returned",
            details={"asset_tag": device.asset_tag},
        )
    previous_holder = device.holder_id
    _core(session, _SQL["put_back"], {"device": device.id, "place": place.id, "now": now})
    set_committed_value(device, "holder_id", None)
    set_committed_value(device, "current_location_id", place.id)
    session.expire(device, ["holder", "current_location"])
    warnings: list[str] = []
    if wrong:
        home = session.get(Location, device.home_location_id)
        home_name = home.name if home else "another place"
        warnings.append(
            f"{device.asset_tag} lives in {home_name}, not {place.name}. "
            "It is recorded here and the school business manager has a note."
        )
        _notify(
            session,
            device.school_id,
            roles=[Role.SBM],
            kind="wrong_trolley",
            title=f"{device.asset_tag} was put in {place.name}, not {home_name}",
            body=f"{actor.name} returned {device.asset_tag} to {place.name} at "
            f"{when(now, session.get_one(School, device.school_id))}. It lives in {home_name}.",
            link=f"/devices/{device.asset_tag}",
            email=False,
        )
    if wipe.note:
        warnings.append(f"{device.asset_tag} is {wipe.note}.")
    if condition or put_in_repair:
        warnings.extend(
            _report_damage(session, actor, device, item, condition, note, put_in_repair)
        )
    summary = f"Returned to {place.name} by {actor.name}"
    if item is None:
        summary = f"Put back in {place.name} by {actor.name} (it was not signed out)"
    _event(
        session,
        device,
        now,
        kind="loan_return",
        summary=summary + (" — wrong trolley" if wrong else ""),
        actor=actor,
        details={
            "loan_id": item.loan_id if item else None,
            "condition": [flag.value for flag in condition],
        },
    )
    if item is None:
        message = f"{device.asset_tag} was not signed out; it is now recorded in {place.name}."
        if previous_holder is not None:
            message = f"{device.asset_tag} is back in {place.name}."
        return ScanResult(
            "put_back",
            message,
            device.asset_tag,
            device.model,
            None,
            warnings=warnings,
            wipe=wipe.words,
        )
    _close_if_done(session, item.loan, now)
    return ScanResult(
        "returned",
        f"{device.asset_tag} is back in {place.name}.",
        device.asset_tag,
        device.model,
        None,
        loan_id=item.loan_id,
        warnings=warnings,
        wipe=wipe.words,
        item_id=item.id,
    )


def _report_damage(
    session: Session,
    actor: User,
    device: Device,
    item: LoanItem | None,
    condition: Sequence[ConditionFlag],
    note: str | None,
    put_in_repair: bool,
) -> list[str]:
    """P-AUDIT-2: a damage report for the computing lead; optionally out of the loanable pool."""
    warnings = []
    words = ", ".join(flag.label.lower() for flag in condition) or "damage"
    report = DamageReport(
        school_id=device.school_id,
        device_id=device.id,
        item_id=item.id if item is not None else None,
        reported_by_id=actor.id,
        flags=[flag.value for flag in condition],
        note=note,
        status=DamageStatus.OPEN,
    )
    session.add(report)
    if put_in_repair:
        if DeviceStatus.IN_REPAIR in TRANSITIONS[device.status]:
            change_status(
                session,
                actor,
                device,
                DeviceStatus.IN_REPAIR,
                f"Reported at return: {words}" + (f" ({note})" if note else ""),
                commit=False,
            )
            report.status = DamageStatus.IN_REPAIR
            warnings.append(f"{device.asset_tag} is now in repair and will not go out.")
        else:
            warnings.append(
                f"{device.asset_tag} could not be put in repair from {device.status.label.lower()}."
            )
    session.flush()
    _notify(
        session,
        device.school_id,
        roles=[Role.COMPUTING_LEAD],
        kind="damage_report",
        title=f"{device.asset_tag} returned with a problem: {words}",
        body=f"{actor.name} reported {words} when returning {device.asset_tag}."
        + (f" Note: {note}" if note else "")
        + (" It has been put in repair." if report.status is DamageStatus.IN_REPAIR else ""),
        link="/loans/damage",
        devices=[device],
    )
    warnings.insert(0, f"Thanks: the computing lead has been told about the {words}.")
    return warnings
