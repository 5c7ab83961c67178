"""The half-termly photo check (P-PHOTO-2): who holds photos, the wipe, and the counts after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.audits.models import PhotoCheck, PhotoCheckItem, PhotoCheckStatus
from server.audits.pages import CheckLine, HalfTerm, HalfTermCompliance, HoldingLine, PhotoPicture
from server.audits.services.common import LIST_LIMIT, UNUSABLE, _clean, _school_row, place_paths
from server.audits.services.photo_reminders import remind_class_teachers
from server.audits.services.terms import half_term_on, half_terms
from server.auth.models import User
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import (
    add_event,
    counted_since,
    get_device,
    known_photo_count,
    known_photo_count_at,
)
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, NotFound, ValidationFailed
from server.schools.models import School
from server.schools.services import terms as school_terms
from server.schools.services.clock import age_text, local_today, plural

NO_SUCH_CHECK = "No such photo check in your school."


def _enrolled(device_id: Any) -> Any:
    return exists().where(
        DeviceIdentity.device_id == device_id, DeviceIdentity.revoked_at.is_(None)
    )


def photo_picture(
    session: Session, school_id: int, *, now: datetime | None = None, limit: int = LIST_LIMIT
) -> PhotoPicture:
    """Which devices still hold photos now, with how old each report is."""
    now = now or utcnow()
    live = [Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED]
    # A count reported before the device's storage was last erased is not known, not held.
    count = known_photo_count()
    total, holding, never, erased = session.execute(
        select(
            func.count(),
            func.sum(case((count > 0, 1), else_=0)),
            func.sum(case((Device.photo_count.is_(None), 1), else_=0)),
            func.sum(case((Device.photo_count.is_not(None) & count.is_(None), 1), else_=0)),
        ).where(*live)
    ).one()
    paths = place_paths(session, school_id)
    rows = session.execute(
        select(
            Device.asset_tag,
            Device.model,
            Device.home_location_id,
            Device.photo_count,
            Device.photo_count_at,
            _enrolled(Device.id),
        )
        .where(*live, count > 0)
        .order_by(Device.photo_count_at, Device.asset_tag)
        .limit(limit)
    ).all()
    total, holding = int(total or 0), int(holding or 0)
    never, erased = int(never or 0), int(erased or 0)
    return PhotoPicture(
        total=total,
        clear=total - holding - never - erased,
        holding=holding,
        never_reported=never,
        erased=erased,
        lines=[
            HoldingLine(
                tag,
                model,
                paths.get(home) if home else None,
                int(count),
                at,
                age_text(at, now),
                bool(enrolled),
            )
            for tag, model, home, count, at, enrolled in rows
        ],
    )


def _current_half(session: Session, school: School, now: datetime) -> HalfTerm:
    half = half_term_on(school_terms(session, school.id), local_today(school, now))
    if half is None:
        raise ValidationFailed(
            "No term has started yet. Ask your administrator to set this year's term dates."
        )
    return half


def get_photo_check(session: Session, school_id: int, check_id: int) -> PhotoCheck:
    """The school's photo check by id, with its term."""
    load = [joinedload(PhotoCheck.term)]
    return _school_row(session, PhotoCheck, check_id, school_id, NO_SUCH_CHECK, load=load)


def list_photo_checks(session: Session, school_id: int, limit: int = 50) -> Sequence[PhotoCheck]:
    return session.scalars(
        select(PhotoCheck)
        .where(PhotoCheck.school_id == school_id)
        .options(joinedload(PhotoCheck.term), joinedload(PhotoCheck.started_by))
        .order_by(PhotoCheck.started_at.desc(), PhotoCheck.id.desc())
        .limit(limit)
    ).all()


def start_photo_check(session: Session, actor: User, *, now: datetime | None = None) -> PhotoCheck:
    """Take in every device in the register and ask each enrolled one for a fresh count."""
    now = now or utcnow()
    half = _current_half(session, actor.school, now)
    school_id = actor.school_id
    running = session.scalar(
        select(PhotoCheck.id).where(
            PhotoCheck.school_id == school_id, PhotoCheck.status == PhotoCheckStatus.OPEN
        )
    )
    if running is not None:
        raise Conflict(
            "A photo check is already open. Complete it before starting another.",
            details={"check_id": running},
        )
    live = [Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED]
    # Devices erased since they last counted their photos start the check not known, as those
    # that never counted them do.
    total, never = session.execute(
        select(func.count(), func.sum(case((known_photo_count().is_(None), 1), else_=0))).where(
            *live
        )
    ).one()
    check = PhotoCheck(
        school_id=school_id,
        term_id=half.term.id,
        half=half.half,
        status=PhotoCheckStatus.OPEN,
        started_at=now,
        started_by_id=actor.id,
        devices_total=int(total or 0),
        never_reported=int(never or 0),
    )
    try:
        with session.begin_nested():
            session.add(check)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("Someone has just started a photo check; open it from the list.") from exc
    # Every device, not only those that last said they held photos: silence is not a count.
    session.execute(
        insert(PhotoCheckItem).from_select(
            ["school_id", "check_id", "device_id", "photos_before", "reported_at", "enrolled"],
            select(
                literal(school_id),
                literal(check.id),
                Device.id,
                known_photo_count(),
                known_photo_count_at(),
                _enrolled(Device.id),
            ).where(*live),
        )
    )
    holding, photos = session.execute(
        select(func.count(), func.coalesce(func.sum(PhotoCheckItem.photos_before), 0)).where(
            PhotoCheckItem.check_id == check.id, PhotoCheckItem.photos_before > 0
        )
    ).one()
    check.holding_before, check.photos_before = int(holding), int(photos or 0)
    check.asked = _ask_for_counts(session, actor, check, now)
    record(
        session,
        actor=actor,
        action="photo_check.started",
        school_id=school_id,
        target_type="photo_check",
        target_id=check.id,
        details={
            "half_term": half.label,
            "devices": check.devices_total,
            "holding_photos": check.holding_before,
            "photos": check.photos_before,
            "never_reported": check.never_reported,
            "asked": check.asked,
        },
        at=now,
    )
    session.commit()
    return check


def _ask_for_counts(session: Session, actor: User, check: PhotoCheck, now: datetime) -> int:
    """Send `report_inventory` to every enrolled device in the check (routine: no budget)."""
    rows = session.execute(
        select(PhotoCheckItem, Device)
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .where(PhotoCheckItem.check_id == check.id, PhotoCheckItem.enrolled.is_(True))
        .order_by(Device.asset_tag)
    ).all()
    if not rows:
        return 0
    issued = commands.issue(
        session,
        actor,
        [device for _item, device in rows],
        "report_inventory",
        {},
        reason=f"Half-termly photo check ({check.term.name}, half {check.half}): a fresh count",
        now=now,
        commit=False,
    )
    for (item, _device), command in zip(rows, issued, strict=True):
        item.inventory_command_id = command.id
    return len(issued)


def _open_check(session: Session, school_id: int, check_id: int) -> PhotoCheck:
    """The open photo check, locked until this transaction ends."""
    check = _school_row(session, PhotoCheck, check_id, school_id, NO_SUCH_CHECK, lock=True)
    if check.status is not PhotoCheckStatus.OPEN:
        raise Conflict("This photo check is complete and kept as evidence; start a new one.")
    return check


@dataclass(frozen=True)
class WipeOutcome:
    sent: int
    needs_approval: bool
    by_hand: list[str]

    @property
    def message(self) -> str:
        parts = []
        if self.sent:
            parts.append(
                f"A photo wipe was asked for on {plural(self.sent, 'device')}"
                + (
                    "; it waits for a second person to approve it on the Commands page"
                    if self.needs_approval
                    else ""
                )
            )
        if self.by_hand:
            parts.append(
                f"{plural(len(self.by_hand), 'device is', 'devices are')} not enrolled, so wipe "
                f"{'it' if len(self.by_hand) == 1 else 'them'} by hand: {', '.join(self.by_hand)}"
            )
        return ". ".join(parts) + "." if parts else "Nothing to wipe."


def _wipe_candidates(
    session: Session, check: PhotoCheck
) -> tuple[list[tuple[PhotoCheckItem, Device]], list[str]]:
    """The devices a wipe would be sent to, and those only a person can check."""
    # Those that may still hold photos: nobody has checked them by hand, and neither their
    # answer since the check started nor (without one) their last report says none.
    known = case(
        (counted_since(check.started_at), Device.photo_count),
        # Answered, then erased: not known, so a candidate (the device cannot say otherwise).
        (Device.photo_count_at >= check.started_at, None),
        else_=PhotoCheckItem.photos_before,
    )
    items = session.execute(
        select(PhotoCheckItem, Device)
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .where(
            PhotoCheckItem.check_id == check.id,
            PhotoCheckItem.hand_at.is_(None),
            known.is_(None) | (known > 0),
        )
        .order_by(Device.asset_tag)
    ).all()
    enrolled = set(
        session.scalars(
            select(DeviceIdentity.device_id).where(
                DeviceIdentity.device_id.in_([d.id for _i, d in items]),
                DeviceIdentity.revoked_at.is_(None),
            )
        )
    )
    to_wipe = [
        (item, device)
        for item, device in items
        if device.id in enrolled and item.command_id is None and device.status not in UNUSABLE
    ]
    by_hand = [device.asset_tag for item, device in items if device.id not in enrolled]
    return to_wipe, by_hand


def wipe_count(session: Session, school_id: int, check_id: int) -> int:
    """How many devices a wipe for the check would be sent to now."""
    to_wipe, _by_hand = _wipe_candidates(session, _open_check(session, school_id, check_id))
    return len(to_wipe)


def wipe_photo_check(
    session: Session, actor: User, check_id: int, *, now: datetime | None = None
) -> WipeOutcome:
    """Ask every enrolled device in the check to wipe its photos (approval rules apply)."""
    now = now or utcnow()
    check = _open_check(session, actor.school_id, check_id)
    to_wipe, by_hand = _wipe_candidates(session, check)
    if not to_wipe and not by_hand:
        raise ValidationFailed("Every device in this check already has a wipe asked for.")
    issued: list[Command] = []
    if to_wipe:
        issued = commands.issue(
            session,
            actor,
            [device for _item, device in to_wipe],
            "wipe_photos",
            {},
            reason=f"Half-termly photo check ({check.term.name}, half {check.half})",
            now=now,
            commit=False,
        )
        for (item, _device), command in zip(to_wipe, issued, strict=True):
            item.command_id = command.id
            item.enrolled = True
        check.wipe_requested_at = now
        check.wipe_requested_by_id = actor.id
    session.commit()
    return WipeOutcome(
        sent=len(issued),
        needs_approval=bool(issued) and issued[0].status is CommandStatus.PENDING_APPROVAL,
        by_hand=by_hand,
    )


def mark_wiped_by_hand(
    session: Session,
    actor: User,
    check_id: int,
    asset_tag: str,
    *,
    photos_left: int | None = 0,
    saw: str = "",
    now: datetime | None = None,
) -> PhotoCheckItem:
    """A person checked the device itself: who, when, the photos left and what they saw."""
    now = now or utcnow()
    if photos_left is not None and photos_left < 0:
        raise ValidationFailed("The number of photos left cannot be negative.")
    text = _clean(saw, 500, "what you saw")
    if photos_left is None and not text:
        raise ValidationFailed("Say what you saw on the device, or how many photos are left.")
    check = _open_check(session, actor.school_id, check_id)
    device = get_device(session, actor.school_id, asset_tag)
    item = session.scalar(
        select(PhotoCheckItem).where(
            PhotoCheckItem.check_id == check.id, PhotoCheckItem.device_id == device.id
        )
    )
    if item is None:
        raise NotFound(f"{device.asset_tag} is not in this photo check.")
    item.by_hand_by_id = actor.id
    item.hand_at = now
    item.hand_photos = photos_left
    item.hand_note = text or None
    left = "photos not counted" if photos_left is None else f"{photos_left} left"
    event = add_event(
        session,
        device,
        kind="photo_check",
        summary=f"Photo check: checked by hand, {left}" + (f" ({text})" if text else ""),
        actor=actor,
        details={"photo_check_id": check.id},
    )
    event.at = now
    record(
        session,
        actor=actor,
        action="photo_check.checked_by_hand",
        school_id=check.school_id,
        target_type="photo_check",
        target_id=check.id,
        details={"asset_tag": device.asset_tag, "photos_left": photos_left},
        at=now,
    )
    session.commit()
    return item


def complete_photo_check(
    session: Session, actor: User, check_id: int, *, note: str = "", now: datetime | None = None
) -> PhotoCheck:
    """Record the counts after; refused while a device is silent or holding, unchecked."""
    now = now or utcnow()
    text = _clean(note, 1000, "the note")
    check = _open_check(session, actor.school_id, check_id)
    # Each device's latest answer since the check started (a wipe's answer counts too).
    session.execute(
        update(PhotoCheckItem)
        .where(
            PhotoCheckItem.check_id == check.id,
            PhotoCheckItem.device_id == Device.id,
            counted_since(check.started_at),
            Device.photo_count.is_not(None),
        )
        .values(photos_after=Device.photo_count, after_at=Device.photo_count_at)
        .execution_options(synchronize_session=False)
    )
    _refuse_silence(session, check)
    by_hand = PhotoCheckItem.hand_at.is_not(None) & (
        PhotoCheckItem.after_at.is_(None) | (PhotoCheckItem.hand_at >= PhotoCheckItem.after_at)
    )
    result = case((by_hand, PhotoCheckItem.hand_photos), else_=PhotoCheckItem.photos_after)
    cleared, holding, unconfirmed, photos, hand = session.execute(
        select(
            func.sum(case((result == 0, 1), else_=0)),
            func.sum(case((result > 0, 1), else_=0)),
            func.sum(case((result.is_(None), 1), else_=0)),
            func.coalesce(func.sum(result), 0),
            func.sum(case((by_hand, 1), else_=0)),
        ).where(PhotoCheckItem.check_id == check.id)
    ).one()
    check.cleared, check.still_holding = int(cleared or 0), int(holding or 0)
    check.unconfirmed, check.photos_after = int(unconfirmed or 0), int(photos or 0)
    check.checked_by_hand = int(hand or 0)
    check.status = PhotoCheckStatus.COMPLETE
    check.completed_at = now
    check.completed_by_id = actor.id
    check.note = text or None
    record(
        session,
        actor=actor,
        action="photo_check.completed",
        school_id=check.school_id,
        target_type="photo_check",
        target_id=check.id,
        details={
            "holding_before": check.holding_before,
            "photos_before": check.photos_before,
            "cleared": check.cleared,
            "still_holding": check.still_holding,
            "unconfirmed": check.unconfirmed,
            "checked_by_hand": check.checked_by_hand,
            "photos_after": check.photos_after,
            "note": text,
        },
        at=now,
    )
    session.commit()
    return check


def _refuse_silence(session: Session, check: PhotoCheck) -> None:
    """P-PHOTO-2: no check passes on silence, nor with photos left that nobody looked at."""
    rows = session.execute(
        select(Device.asset_tag, PhotoCheckItem.photos_after)
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .where(
            PhotoCheckItem.check_id == check.id,
            PhotoCheckItem.hand_at.is_(None),
            PhotoCheckItem.photos_after.is_(None) | (PhotoCheckItem.photos_after > 0),
        )
        .order_by(Device.asset_tag)
    ).all()
    if not rows:
        return
    silent = [tag for tag, after in rows if after is None]
    holding = [tag for tag, after in rows if after is not None]
    parts = []
    if silent:
        parts.append(f"{plural(len(silent), 'device has', 'devices have')} not answered")
    if holding:
        parts.append(f"{plural(len(holding), 'device still holds', 'devices still hold')} photos")
    shown = [tag for tag, _after in rows[:10]]
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    raise Conflict(
        f"{' and '.join(parts).capitalize()}. Check each by hand and record what you saw, "
        f"then complete the check: {', '.join(shown)}{more}.",
        details={"unconfirmed": silent, "holding": holding},
    )


def remind_now(session: Session, actor: User, check_id: int, *, now: datetime | None = None) -> int:
    """The computing lead reminds class teachers at once rather than after a day; commits."""
    now = now or utcnow()
    named = remind_class_teachers(session, _open_check(session, actor.school_id, check_id), now)
    session.commit()
    return named


def photo_check_lines(
    session: Session, check: PhotoCheck, limit: int = LIST_LIMIT
) -> list[CheckLine]:
    """The check's devices, those still needing a person first (answers read live if open)."""
    answer: Any = PhotoCheckItem.photos_after
    answered: Any = PhotoCheckItem.after_at
    if check.status is PhotoCheckStatus.OPEN:
        fresh = counted_since(check.started_at)
        answer = case((fresh, Device.photo_count), else_=None)
        answered = case((fresh, Device.photo_count_at), else_=None)
    waiting = PhotoCheckItem.hand_at.is_(None) & (answer.is_(None) | (answer > 0))
    rows = session.execute(
        select(
            PhotoCheckItem,
            Device.asset_tag,
            Device.model,
            Command.status,
            User.name,
            answer,
            answered,
        )
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .outerjoin(Command, Command.id == PhotoCheckItem.command_id)
        .outerjoin(User, User.id == PhotoCheckItem.by_hand_by_id)
        .where(PhotoCheckItem.check_id == check.id)
        .order_by(case((waiting, 0), else_=1), Device.asset_tag)
        .limit(limit)
    ).all()
    return [
        CheckLine(
            tag,
            model,
            item.photos_before,
            item.reported_at,
            item.enrolled,
            item.inventory_command_id is not None,
            status,
            after,
            after_at,
            by,
            item.hand_at,
            item.hand_photos,
            item.hand_note,
        )
        for item, tag, model, status, by, after, after_at in rows
    ]


def photo_compliance(
    session: Session, school_id: int, today: date, *, halves: int = 6
) -> list[HalfTermCompliance]:
    """The last few half terms, each with its completed photo check (or none)."""
    started = [h for h in half_terms(school_terms(session, school_id)) if h.starts_on <= today]
    recent = started[-halves:]
    checks = session.scalars(
        select(PhotoCheck)
        .where(
            PhotoCheck.school_id == school_id,
            PhotoCheck.status == PhotoCheckStatus.COMPLETE,
            PhotoCheck.term_id.in_({h.term.id for h in recent}),
        )
        .order_by(PhotoCheck.completed_at)
    ).all()
    latest = {(c.term_id, c.half): c for c in checks}
    return [HalfTermCompliance(h, latest.get((h.term.id, h.half))) for h in recent]
