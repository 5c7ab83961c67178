"""Chasing photo wipes: outstanding until confirmed, told when one fails, recorded by hand."""

# P-PHOTO-1: the record never claims a wipe the device did not confirm. A wipe asked for at a
# return or at a lesson's end keeps its loan item outstanding until the device confirms it, a
# later wipe or report shows the photos gone, or a person records checking by hand (who, when,
# what they saw). One that fails or expires tells the teacher and the computing lead, once.

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, select, update
from sqlalchemy.orm import Session, aliased, joinedload, selectinload

from server.activity.services import record
from server.auth.models import Role, User
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.disposals.models import DeviceErasure, ErasureSource
from server.disposals.services import latest_erasure
from server.errors import Conflict, NotFound, ValidationFailed
from server.loans.models import ItemState, Loan, LoanItem
from server.loans.pages import WipeSummary
from server.loans.services.common import MAX_ID, _event, _notify, _school
from server.loans.services.photo_wipes import WIPE_WAITING, wipe_text
from server.schools.services.clock import plural, when

log = logging.getLogger(__name__)

KIND = "loans.wipe_not_confirmed"
# A wipe that ended in one of these left the photos where they were.
UNDONE = (
    CommandStatus.FAILED,
    CommandStatus.REJECTED,
    CommandStatus.EXPIRED,
    CommandStatus.CANCELLED,
)
MAX_PHOTOS = 1_000_000


def _since(item: LoanItem) -> datetime | None:
    """From when the item's photos must be gone: its return, or the lesson's end while out."""
    return item.returned_at if item.state is ItemState.RETURNED else item.lesson_wipe_at


def _command(item: LoanItem) -> Command | None:
    """The wipe that answers for the item: its return's, or the latest lesson's end's."""
    return item.wipe_command if item.state is ItemState.RETURNED else item.lesson_wipe_command


def _outstanding(session: Session, *conditions: Any) -> Sequence[LoanItem]:
    query = (
        select(LoanItem)
        .where(LoanItem.wipe_outstanding, *conditions)
        .options(
            selectinload(LoanItem.device),
            selectinload(LoanItem.wipe_command),
            selectinload(LoanItem.lesson_wipe_command),
            selectinload(LoanItem.returned_by),
            selectinload(LoanItem.loan).selectinload(Loan.teacher),
        )
        .order_by(LoanItem.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several workers: each outstanding item is chased by exactly one of them.
        query = query.with_for_update(skip_locked=True, of=LoanItem)
    return session.scalars(query).all()


def _outstanding_in(session: Session, school_id: int, *, limit: int | None) -> list[LoanItem]:
    query = (
        select(LoanItem)
        .where(LoanItem.wipe_outstanding, LoanItem.school_id == school_id)
        .options(
            joinedload(LoanItem.device),
            joinedload(LoanItem.wipe_command),
            joinedload(LoanItem.lesson_wipe_command),
            joinedload(LoanItem.returned_by),
            joinedload(LoanItem.loan).joinedload(Loan.teacher),
        )
        .order_by(func.coalesce(LoanItem.returned_at, LoanItem.lesson_wipe_at).desc())
    )
    return list(session.scalars(query if limit is None else query.limit(limit)).all())


def wipes_to_check(session: Session, school_id: int, *, limit: int = 100) -> list[LoanItem]:
    """Every outstanding wipe in the school, however old, newest first: until it is resolved."""
    return _outstanding_in(session, school_id, limit=limit)


def wipe_summary(session: Session, school_id: int) -> WipeSummary:
    """The outstanding wipes by how they stand: pending, failed or to check by hand (one query)."""
    returned, lesson = aliased(Command), aliased(Command)
    status = case((LoanItem.state == ItemState.RETURNED, returned.status), else_=lesson.status)
    rows = session.execute(
        select(status, func.count())
        .select_from(LoanItem)
        .outerjoin(returned, returned.id == LoanItem.wipe_command_id)
        .outerjoin(lesson, lesson.id == LoanItem.lesson_wipe_command_id)
        .where(LoanItem.wipe_outstanding, LoanItem.school_id == school_id)
        .group_by(status)
    ).all()
    counts = {"pending": 0, "failed": 0, "by_hand": 0}
    for found, n in rows:
        if found is None:
            counts["by_hand"] += n
        elif found in WIPE_WAITING:
            counts["pending"] += n
        elif found is not CommandStatus.DONE:  # a done one is settled at the job's next run
            counts["failed"] += n
    return WipeSummary(**counts)


def earlier_wipes(session: Session, loan: Loan) -> dict[int, LoanItem]:
    """For each device on `loan`, an earlier loan's wipe still outstanding (by device id)."""
    taken = {item.device_id: item.out_at for item in loan.items}
    if not taken:
        return {}
    rows = session.scalars(
        select(LoanItem)
        .where(
            LoanItem.wipe_outstanding,
            LoanItem.device_id.in_(sorted(taken)),
            LoanItem.loan_id != loan.id,
        )
        .options(
            joinedload(LoanItem.wipe_command),
            joinedload(LoanItem.lesson_wipe_command),
            joinedload(LoanItem.returned_by),
        )
        .order_by(LoanItem.out_at)
    ).all()
    return {item.device_id: item for item in rows if item.out_at < taken[item.device_id]}


def record_wiped_by_hand(
    session: Session,
    actor: User,
    item_id: int,
    *,
    photos_left: int | None,
    saw: str,
    now: datetime | None = None,
) -> LoanItem:
    """A person checked the device's photos by hand: who, when, what they saw and what is left."""
    now = now or utcnow()
    text = " ".join((saw or "").split())
    if photos_left is not None and not 0 <= photos_left <= MAX_PHOTOS:
        raise ValidationFailed(
            "The number of photos left cannot be negative.",
            details=[{"field": "photos_left", "message": "0 or more"}],
        )
    if photos_left is None and not text:
        raise ValidationFailed(
            "Say what you saw on the device, or how many photos are left on it.",
            details=[{"field": "saw", "message": "Say what you saw."}],
        )
    if len(text) > 500:
        raise ValidationFailed("Say what you saw in 500 characters or fewer.")
    item = None
    if 1 <= item_id <= MAX_ID:
        query = select(LoanItem).where(
            LoanItem.id == item_id, LoanItem.school_id == actor.school_id
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        item = session.scalar(query)
    if item is None:
        raise NotFound("No such loan in your school.")
    device = item.device
    if not item.wipe_outstanding:
        raise Conflict(f"{device.asset_tag}'s photos from this loan are already confirmed deleted.")
    item.wipe_resolved_at = now
    item.wipe_resolved_by_id = actor.id
    item.wipe_resolution = text or None
    item.wipe_photos_left = photos_left
    # Photos still on it are still to delete: the record is kept, the wipe stays outstanding.
    item.wipe_outstanding = photos_left != 0
    left = "photos not counted" if photos_left is None else f"{plural(photos_left, 'photo')} left"
    _event(
        session,
        device,
        now,
        kind="photo_wipe",
        summary=f"Photos checked by hand by {actor.name}: {left}" + (f". {text}" if text else ""),
        actor=actor,
        details={"loan_id": item.loan_id},
    )
    record(
        session,
        actor=actor,
        action="loans.wiped_by_hand",
        school_id=item.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"loan_id": item.loan_id, "item_id": item.id, "photos_left": photos_left},
        at=now,
    )
    session.commit()
    return item


@dataclass(frozen=True)
class _Later:
    """How the device's photos were later shown gone: when, in words, and by whom (None: the
    device itself)."""

    at: datetime
    how: str
    by_id: int | None = None


def _later_evidence(session: Session, items: Sequence[LoanItem]) -> dict[int, _Later]:
    """Per item id: when and how the device's photos were later shown gone."""
    device_ids = sorted({item.device_id for item in items})
    done = dict(
        session.execute(
            select(Command.device_id, func.max(Command.finished_at))
            .where(
                Command.device_id.in_(device_ids),
                Command.type == "wipe_photos",
                Command.status == CommandStatus.DONE,
            )
            .group_by(Command.device_id)
        ).all()
    )
    found = {}
    for item in items:
        since = _since(item)
        if since is None:
            continue
        device = item.device
        wiped = done.get(item.device_id)
        if wiped is not None and wiped >= since:
            found[item.id] = _Later(wiped, "a later photo wipe was confirmed by the device")
        elif (
            device.photo_count == 0
            and device.photo_count_at is not None
            and device.photo_count_at >= since
        ):
            found[item.id] = _Later(
                device.photo_count_at, "the device later reported no photos on it"
            )
        elif device.erased_at is not None and device.erased_at >= since:
            # Its storage erased since: the photos went with it, as the device or a named
            # technician vouches (the erasure record says which).
            erasure = latest_erasure(session, device)
            if erasure is not None:
                found[item.id] = _erased(erasure)
    return found


def _erased(erasure: DeviceErasure) -> _Later:
    """An erasure as evidence the photos are gone, in the words of who vouches for it."""
    if erasure.source is ErasureSource.DEVICE_ACKNOWLEDGEMENT:
        return _Later(erasure.confirmed_at, "the device later confirmed a factory reset")
    who = erasure.recorded_by.name if erasure.recorded_by else "a technician"
    method = erasure.method.label.lower()
    # The note is cut so the whole resolution fits its column (names are at most 120).
    note = (erasure.evidence or "no note")[:300]
    return _Later(
        erasure.confirmed_at,
        f"{who} later recorded its storage erased ({method}: {note})",
        erasure.recorded_by_id,
    )


# The wipe that answers for an item, and from when its photos must be gone, in SQL.
_RELEVANT = case(
    (LoanItem.state == ItemState.RETURNED, LoanItem.wipe_command_id),
    else_=LoanItem.lesson_wipe_command_id,
)
_SINCE = case(
    (LoanItem.state == ItemState.RETURNED, LoanItem.returned_at), else_=LoanItem.lesson_wipe_at
)


def chase_wipes(session: Session, *, now: datetime) -> int:
    """The job: settle what the device confirmed, and tell people of wipes that failed."""
    # Most outstanding wipes are settled by the device's own `done`: one statement.
    session.execute(
        update(LoanItem)
        .where(
            LoanItem.wipe_outstanding,
            exists().where(Command.id == _RELEVANT, Command.status == CommandStatus.DONE),
        )
        .values(wipe_outstanding=False)
        .execution_options(synchronize_session=False)
    )
    # The rest are read only when the device has since shown its photos gone, or when a wipe
    # has failed and nobody has been told yet; otherwise there is nothing to do this minute.
    later_wipe = exists().where(
        Command.device_id == LoanItem.device_id,
        Command.type == "wipe_photos",
        Command.status == CommandStatus.DONE,
        Command.finished_at >= _SINCE,
    )
    # A device's `done` wipe also stamps its photo count, so only a device that has said
    # something since can have shown its photos gone: the wipes are read for those alone.
    heard_since = exists().where(
        Device.id == LoanItem.device_id,
        ((Device.photo_count_at >= _SINCE) & ((Device.photo_count == 0) | later_wipe))
        | (Device.erased_at >= _SINCE),
    )
    undone = exists().where(Command.id == _RELEVANT, Command.status.in_(UNDONE))
    items = _outstanding(session, heard_since | (LoanItem.wipe_chased_at.is_(None) & undone))
    if not items:
        return 0
    evidence = _later_evidence(session, items)
    to_chase = []
    for item in items:
        if item.id in evidence:
            later = evidence[item.id]
            school = _school(session, item.school_id)
            item.wipe_outstanding = False
            item.wipe_resolved_at = now
            item.wipe_resolved_by_id = later.by_id
            item.wipe_resolution = f"Confirmed later: {later.how} ({when(later.at, school)})."
            continue
        command = _command(item)
        if command is not None and command.status in UNDONE and item.wipe_chased_at is None:
            to_chase.append(item)
    per_school: dict[int, list[LoanItem]] = {}
    for item in to_chase:
        per_school.setdefault(item.school_id, []).append(item)
    for school_id, chased in per_school.items():
        _tell(session, school_id, chased, now)
    return len(to_chase)


def _why(item: LoanItem) -> str:
    command = _command(item)
    assert command is not None
    detail = f": {command.detail}" if command.detail else ""
    if command.status is CommandStatus.EXPIRED:
        return "the photo wipe expired before the device collected it"
    if command.status is CommandStatus.CANCELLED:
        return f"the photo wipe was cancelled{detail}"
    return f"the device answered the photo wipe with {wipe_text(command.status, None)}{detail}"


def _tell(session: Session, school_id: int, items: list[LoanItem], now: datetime) -> None:
    """The teacher who returned each device (or has it now) and the computing lead, once."""
    school = _school(session, school_id)
    per_teacher: dict[int, tuple[User, list[LoanItem]]] = {}
    lines = []
    for item in items:
        returned = item.state is ItemState.RETURNED
        teacher = item.returned_by if returned and item.returned_by else item.loan.teacher
        per_teacher.setdefault(teacher.id, (teacher, []))[1].append(item)
        moment = (
            f"returned {when(item.returned_at, school)}"
            if returned
            else f"out with {teacher.name} when a lesson ended {when(item.lesson_wipe_at, school)}"
        )
        lines.append(f"{item.device.asset_tag} ({moment}, by {teacher.name}): {_why(item)}.")
        item.wipe_chased_at = now
        _event(
            session,
            item.device,
            now,
            kind="photo_wipe",
            summary=f"Photos not confirmed deleted ({_why(item)}); "
            f"{teacher.name} and the computing lead were told",
            actor=None,
            details={"loan_id": item.loan_id},
        )
    for teacher, theirs in per_teacher.values():
        tags = ", ".join(i.device.asset_tag for i in theirs)
        loans = {i.loan_id for i in theirs}
        _notify(
            session,
            school_id,
            users=[teacher],
            kind=KIND,
            title=f"Photos may still be on {tags}",
            body="\n".join(
                f"{i.device.asset_tag}: {_why(i)}"
                + (
                    f" (you returned it {when(i.returned_at, school)})"
                    if i.state is ItemState.RETURNED
                    else f" (it was with you when a lesson ended {when(i.lesson_wipe_at, school)})"
                )
                + "."
                for i in theirs
            )
            + "\n\nSchool policy is that pupils' photos are deleted at the end of the lesson: "
            "check the photos on the device by hand, delete any that are left, and record it "
            "on the loan's page.",
            link=f"/loans/{theirs[0].loan_id}" if len(loans) == 1 else "/loans/out#wipes",
            devices=[i.device for i in theirs],
            case_id=theirs[0].loan_id if len(loans) == 1 else None,
            at=now,
        )
    _notify(
        session,
        school_id,
        roles=[Role.COMPUTING_LEAD],
        kind=KIND,
        title=f"{plural(len(items), 'photo wipe')} not confirmed: "
        + ", ".join(i.device.asset_tag for i in items),
        body="\n".join(lines)
        + "\n\nEach stays on the list of unconfirmed wipes until the device confirms it or "
        "someone records checking it by hand.",
        link="/loans/out#wipes",
        devices=[i.device for i in items],
        at=now,
    )
    log.info("chased %d photo wipes in school %s", len(items), school_id)
