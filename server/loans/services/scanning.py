"""Scans from the trolley page: one device, a whole trolley, a loan's return, and undoing a scan."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.errors import Conflict, NotFound, TrolleyError, ValidationFailed
from server.loans.models import (
    ConditionFlag,
    DamageReport,
    ItemState,
    Loan,
    LoanItem,
    Scan,
    ScanAction,
)
from server.loans.services.answers import BatchResult, Refusal, ScanResult
from server.loans.services.common import MISSING, _core, _event, _locks_rows, _school
from server.loans.services.places import (
    _SQL,
    Counts,
    _resolve_many,
    _trolley_and_counts,
    get_trolley,
    home_trolley,
    own_trolley,
    resolve_code,
    taken_from,
    trolley_counts,
)
from server.loans.services.reading import get_loan
from server.loans.services.returning import _return_one
from server.loans.services.taking_out import _lesson_loan_factory, _take_out_one
from server.schools.models import Location
from server.schools.services.clock import from_local, local_today

log = logging.getLogger(__name__)


UNDO_WINDOW = timedelta(minutes=15)
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def _check_key(key: str | None) -> None:
    if key is not None and not KEY_RE.match(key):
        raise ValidationFailed(
            "A scan's idempotency key is 8 to 64 letters, digits, '-' or '_'.", code="bad_key"
        )


def _replay(session: Session, actor: User, key: str | None) -> Scan | None:
    if key is None:
        return None
    return session.scalar(select(Scan).where(Scan.school_id == actor.school_id, Scan.key == key))


def _replayed(scan: Scan) -> ScanResult:
    result = ScanResult.from_json(scan.response)
    result.replayed = True
    return result


def _store(
    session: Session,
    actor: User,
    key: str | None,
    action: ScanAction,
    result: ScanResult | None,
    device: Device | None,
    now: datetime,
    response: dict[str, Any] | None = None,
) -> None:
    if key is None or (result is not None and not result.recorded):
        return
    _core(
        session,
        _SQL["new_scan"],
        {
            "school_id": actor.school_id,
            "key": key,
            "user_id": actor.id,
            "action": action,
            "device_id": device.id if device is not None else None,
            "item_id": result.item_id if result is not None else None,
            "at": now,
            "response": response if response is not None else (result.to_json() if result else {}),
        },
    )


def _commit_or_replay(
    session: Session, actor: User, key: str | None, record_scan: Callable[[], None]
) -> Scan | None:
    """Record the scan and commit; if its key is already taken, return the scan that took it."""
    try:
        record_scan()
        session.commit()
    except IntegrityError:
        session.rollback()
        earlier = _replay(session, actor, key)
        if earlier is None:
            raise
        return earlier
    return None


def scan(
    session: Session,
    actor: User,
    *,
    mode: str,
    trolley_id: int | None,
    code: str,
    base_url: str,
    key: str | None = None,
    class_label: str = "",
    due_at: datetime | None = None,
    transfer: bool = False,
    condition: Sequence[ConditionFlag] = (),
    condition_note: str | None = None,
    put_in_repair: bool = False,
    now: datetime | None = None,
) -> ScanResult:
    """One scan from the trolley page: take a device out ('out') or put it back ('in').

    With no trolley chosen, a device comes out of the trolley it is in and goes back into the
    one it lives in. A re-sent key is answered as the first time: a scan is recorded with its
    key in the same transaction, so a second one with that key fails to commit and finds the
    first instead.
    """
    now = now or utcnow()
    _check_key(key)
    if mode not in ("out", "in"):
        raise ValidationFailed("Choose 'out' to take devices out or 'in' to put them back.")
    try:
        school_id = actor.school_id
        chosen = None if trolley_id is None else _trolley_and_counts(session, school_id, trolley_id)
        locked = mode == "in" and _locks_rows(session)
        device = resolve_code(session, actor.school_id, code, base_url, lock=locked)
        if device.status in MISSING and key is not None:
            earlier = _replay(session, actor, key)
            if earlier is not None:  # an old scan re-sent: the device was not found again
                return _replayed(earlier)
        trolley, counts = chosen or own_trolley(session, actor.school_id, device, mode)
        return _scan_device(
            session,
            actor,
            device,
            trolley,
            counts,
            mode=mode,
            key=key,
            class_label=class_label,
            due_at=due_at,
            transfer=transfer,
            condition=condition,
            condition_note=condition_note,
            put_in_repair=put_in_repair,
            now=now,
            locked=locked,
        )
    except TrolleyError:
        # Things may have moved on since the first time this key was sent.
        earlier = _replay(session, actor, key)
        if earlier is not None:
            return _replayed(earlier)
        raise


def _scan_device(
    session: Session,
    actor: User,
    device: Device,
    trolley: Location,
    counts: Counts,
    *,
    mode: str,
    now: datetime,
    key: str | None = None,
    class_label: str = "",
    due_at: datetime | None = None,
    transfer: bool = False,
    condition: Sequence[ConditionFlag] = (),
    condition_note: str | None = None,
    put_in_repair: bool = False,
    locked: bool = False,
) -> ScanResult:
    class_label = " ".join(class_label.split())[:64]
    before = (device.holder_id, device.current_location_id)
    try:
        if mode == "out":
            if condition or put_in_repair:
                raise ValidationFailed("Condition is noted when a device comes back, not out.")
            result = _take_out_one(
                session,
                actor=actor,
                holder=actor,
                device=device,
                place=trolley,
                loan=_lesson_loan_factory(session, actor, trolley, class_label, due_at, now),
                now=now,
                transfer=transfer,
            )
            action = ScanAction.TRANSFER if result.outcome == "transferred" else ScanAction.OUT
        else:
            result = _return_one(
                session,
                actor=actor,
                device=device,
                place=trolley,
                now=now,
                condition=condition,
                note=condition_note,
                put_in_repair=put_in_repair,
                locked=locked,
            )
            action = ScanAction.IN
    except TrolleyError as exc:
        if exc.code == "reported_lost":
            session.commit()  # the head is told even though the scan itself is refused
        else:
            session.rollback()
        raise
    if not result.recorded:
        # The same scan sent twice at once: the twin that won has recorded it; answer as it did.
        twin = _replay(session, actor, key)
        if twin is not None:
            session.rollback()
            return _replayed(twin)
        session.commit()
        result.counts = counts
        return result
    after = (device.holder_id, device.current_location_id)
    result.counts = counts.moved(device.home_location_id, before, after)
    result.key = key
    twin = _commit_or_replay(
        session, actor, key, lambda: _store(session, actor, key, action, result, device, now)
    )
    if twin is not None:
        return _replayed(twin)
    log.info("scan %s %s by user %s: %s", mode, device.asset_tag, actor.id, result.outcome)
    return result


def quick_take_out(
    session: Session,
    actor: User,
    device: Device,
    *,
    transfer: bool = False,
    now: datetime | None = None,
) -> ScanResult:
    """One tap on the device page (a phone opened its label): out of the trolley it is in."""
    now = now or utcnow()
    place = taken_from(device)
    if place is None:
        raise ValidationFailed(
            f"{device.asset_tag} is not recorded in a trolley; take it out on the scan page."
        )
    counts = trolley_counts(session, actor.school_id, place)
    return _scan_device(
        session, actor, device, place, counts, mode="out", transfer=transfer, now=now
    )


def quick_return(
    session: Session, actor: User, device: Device, *, now: datetime | None = None
) -> ScanResult:
    """One tap on the device page: back into the trolley it lives in."""
    now = now or utcnow()
    place = home_trolley(device)
    if place is None:
        raise ValidationFailed(
            f"{device.asset_tag} has no home trolley; put it back on the scan page instead."
        )
    counts = trolley_counts(session, actor.school_id, place)
    return _scan_device(session, actor, device, place, counts, mode="in", now=now)


def take_out(
    session: Session,
    actor: User,
    *,
    trolley_id: int,
    base_url: str,
    asset_tags: Sequence[str] = (),
    take_all: bool = False,
    class_label: str = "",
    due_at: datetime | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Take several devices (or the whole trolley) out in one action; refusals are listed."""
    now = now or utcnow()
    _check_key(key)
    earlier = _replay(session, actor, key)
    if earlier is not None:
        return _batch_replayed(session, actor, earlier)
    if take_all == bool(asset_tags):
        raise ValidationFailed("Send either a list of asset tags or all: true, not both.")
    trolley = get_trolley(session, actor.school_id, trolley_id)
    if take_all:
        devices = list(
            session.scalars(
                select(Device)
                .where(
                    Device.school_id == actor.school_id,
                    Device.current_location_id == trolley.id,
                    Device.holder_id.is_(None),
                    Device.status != DeviceStatus.DISPOSED,
                )
                .order_by(Device.asset_tag)
            )
        )
        if not devices:
            raise ValidationFailed(f"There is nothing in {trolley.name} to take out.")
    else:
        devices = _resolve_many(session, actor.school_id, asset_tags, base_url)
    label = " ".join(class_label.split())[:64]
    loan = _lesson_loan_factory(session, actor, trolley, label, due_at, now)
    results, refused = _one_by_one(
        devices,
        lambda device: _take_out_one(
            session, actor=actor, holder=actor, device=device, place=trolley, loan=loan, now=now
        ),
    )
    taken = [r for r in results if r.outcome == "out"]
    if not taken and not [r for r in results if r.outcome == "already_out"]:
        session.commit()  # a lost device's discovery is kept even though nothing went out
        raise Conflict(
            "None of those devices could be taken out.",
            code="nothing_taken",
            details=[dataclasses.asdict(r) for r in refused],
        )
    return _record_batch(session, actor, key, loan(), trolley, results, refused, now)


def _one_by_one(
    devices: Sequence[Device], act: Callable[[Device], ScanResult]
) -> tuple[list[ScanResult], list[Refusal]]:
    """Each device in turn: one refused is listed with its reason and the rest go on."""
    results, refused = [], []
    for device in devices:
        try:
            results.append(act(device))
        except Conflict as exc:
            refused.append(Refusal(device.asset_tag, exc.code, exc.message))
    return results, refused


def _record_batch(
    session: Session,
    actor: User,
    key: str | None,
    loan: Loan,
    trolley: Location,
    results: list[ScanResult],
    refused: list[Refusal],
    now: datetime,
) -> BatchResult:
    """Record a batch under its key and commit; if a twin took the key first, answer as it did."""
    counts = trolley_counts(session, actor.school_id, trolley)
    batch = BatchResult(loan, results, refused, counts, key=key)
    twin = _commit_or_replay(
        session,
        actor,
        key,
        lambda: _store(session, actor, key, ScanAction.BATCH, None, None, now, _batch_json(batch)),
    )
    if twin is not None:
        return _batch_replayed(session, actor, twin)
    batch.loan = get_loan(session, actor.school_id, loan.id)
    return batch


def _batch_json(batch: BatchResult) -> dict[str, Any]:
    return {
        "loan_id": batch.loan.id if batch.loan else None,
        "results": [r.to_json() for r in batch.results],
        "refused": [dataclasses.asdict(r) for r in batch.refused],
        "counts": dataclasses.asdict(batch.counts) if batch.counts else None,
    }


def _batch_replayed(session: Session, actor: User, scan_row: Scan) -> BatchResult:
    data = scan_row.response
    loan = get_loan(session, actor.school_id, data["loan_id"]) if data.get("loan_id") else None
    return BatchResult(
        loan,
        [ScanResult.from_json(r) for r in data.get("results", [])],
        [Refusal(**r) for r in data.get("refused", [])],
        Counts(**data["counts"]) if data.get("counts") else None,
        key=scan_row.key,
        replayed=True,
    )


def return_devices(
    session: Session,
    actor: User,
    loan_id: int,
    *,
    asset_tags: Sequence[str],
    base_url: str,
    trolley_id: int | None = None,
    condition: Sequence[ConditionFlag] = (),
    condition_note: str | None = None,
    put_in_repair: bool = False,
    key: str | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Return devices of one loan into a trolley (its own by default); refusals are listed."""
    now = now or utcnow()
    _check_key(key)
    earlier = _replay(session, actor, key)
    if earlier is not None:
        return _batch_replayed(session, actor, earlier)
    loan = get_loan(session, actor.school_id, loan_id)
    if not asset_tags:
        raise ValidationFailed("List the asset tags of the devices coming back.")
    target = trolley_id or loan.trolley_id
    if target is None:
        raise ValidationFailed("Say which trolley the devices are going back into.")
    trolley = get_trolley(session, actor.school_id, target)
    devices = _resolve_many(session, actor.school_id, asset_tags, base_url)
    results, refused = _one_by_one(
        devices,
        lambda device: _return_one(
            session,
            actor=actor,
            device=device,
            place=trolley,
            now=now,
            condition=condition,
            note=condition_note,
            put_in_repair=put_in_repair,
            only_loan=loan,
        ),
    )
    return _record_batch(session, actor, key, loan, trolley, results, refused, now)


@dataclass(frozen=True)
class Undone:
    message: str
    asset_tag: str
    counts: Counts | None


def undo_scan(session: Session, actor: User, key: str, *, now: datetime | None = None) -> Undone:
    """Undo your own last take-out or return of a device (within 15 minutes)."""
    now = now or utcnow()
    _check_key(key)
    row = session.scalar(
        select(Scan).where(
            Scan.school_id == actor.school_id, Scan.key == key, Scan.user_id == actor.id
        )
    )
    if row is None or row.device_id is None:
        raise NotFound("There is no scan of yours to undo there.")
    if row.undone_at is not None:
        raise Conflict("That scan has already been undone.")
    if row.action not in (ScanAction.OUT, ScanAction.IN):
        raise Conflict("Only a single take-out or return can be undone; scan the device instead.")
    if now - row.at > UNDO_WINDOW:
        raise Conflict("Scans can only be undone for 15 minutes; scan the device again instead.")
    later = session.scalar(
        select(func.count())
        .select_from(Scan)
        .where(Scan.device_id == row.device_id, Scan.id > row.id, Scan.undone_at.is_(None))
    )
    device = session.get(Device, row.device_id)
    item = session.get(LoanItem, row.item_id) if row.item_id else None
    if device is None or item is None:
        raise Conflict("Only a take-out or a return on a loan can be undone; scan it instead.")
    if later:
        raise Conflict(f"{device.asset_tag} has been scanned again since; scan it instead.")
    loan = item.loan
    trolley = loan.trolley
    if row.action is ScanAction.OUT:
        if item.state is not ItemState.OUT or device.holder_id != actor.id:
            raise Conflict(f"{device.asset_tag} has moved on since; scan it again instead.")
        back_to = item.from_location_id
        session.delete(item)
        session.flush()
        device.holder_id = None
        device.current_location_id = back_to
        where = session.get(Location, back_to) if back_to else None
        message = f"Undone: {device.asset_tag} is back in {where.name if where else 'its place'}."
        summary = "Take-out undone"
        if not session.scalar(
            select(func.count()).select_from(LoanItem).where(LoanItem.loan_id == loan.id)
        ):
            session.delete(loan)
    else:
        if item.state is not ItemState.RETURNED or device.holder_id is not None:
            raise Conflict(f"{device.asset_tag} has moved on since; scan it again instead.")
        damage = session.scalar(select(DamageReport.id).where(DamageReport.item_id == item.id))
        if damage is not None:
            raise Conflict(
                "That return reported damage, so it cannot be undone here. "
                "Ask the computing lead to correct it."
            )
        item.state = ItemState.OUT
        item.returned_at = None
        item.returned_by_id = None
        item.return_location_id = None
        item.wrong_trolley = False
        item.wipe_command_id = None
        item.wipe_note = None
        # Back out: only a lesson's-end wipe (if one was asked for) is still to confirm.
        item.wipe_outstanding = item.lesson_wipe_at is not None
        device.holder_id = loan.teacher_id
        device.current_location_id = None
        loan.closed_at = None
        message = (
            f"Undone: {device.asset_tag} is out with "
            f"{'you' if loan.teacher_id == actor.id else loan.teacher.name} again. "
            "The photo wipe already asked for will still happen."
        )
        summary = "Return undone"
    row.undone_at = now
    _event(session, device, now, kind="loan_undo", summary=summary, actor=actor)
    session.flush()
    counts = trolley_counts(session, actor.school_id, trolley) if trolley else None
    session.commit()
    return Undone(message, device.asset_tag, counts)


# How far ahead a typed "back by" time may fall on the next day (a loan is for a lesson or so).
DUE_AHEAD = timedelta(hours=12)


def due_today_at(
    session: Session, school_id: int, when: time, *, now: datetime | None = None
) -> datetime:
    """A time typed on the scan page ("back by 10:45") as its next moment in the school's zone."""
    now = now or utcnow()
    school = _school(session, school_id)
    today = local_today(school, now)
    due = from_local(datetime.combine(today, when), school)
    if due <= now:
        # Late in the evening "back by 00:30" means after midnight; an earlier time is a slip.
        due = from_local(datetime.combine(today + timedelta(days=1), when), school)
        if due - now > DUE_AHEAD:
            raise ValidationFailed(f"{when:%H:%M} has already passed today; choose a later time.")
    return due
