"""Leaver cases: everything a leaver holds comes back, every device is reset, three people sign.

The rules (P-LEAVE-1): per device the leaver either hands over the PIN and account details (kept
in escrow, P-LEAVE-2) or a reset meeting is booked on their last day; the device is scanned back
in; the technician resets it (the device's own acknowledgement, or evidence for a device without
the kiosk client); the leaver, the line manager and the technician sign off; the case closes only
when nothing is left open. Open items on and after the last day go to the headteacher daily.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from provisioning.errors import LabelCodeError
from provisioning.payload import parse_label_url
from server.activity.services import record
from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device, DeviceStatus, Platform
from server.devices.services import add_event
from server.disposals.models import ErasureSource
from server.disposals.services import mark_reset_confirmed
from server.enrolment.services import active_identity, revoke_identities
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.escrow import services as escrow
from server.escrow.models import SecretKind
from server.leavers.models import (
    CaseStatus,
    HandoverRoute,
    ItemKind,
    LeaverCase,
    LeaverEvent,
    LeaverItem,
    ResetSource,
    Signer,
)
from server.notifications.services import Attachment, notify, notify_address
from server.personal_devices import services as personal_devices
from server.schools.models import STORAGE_KINDS, School

log = logging.getLogger(__name__)

RESET = "factory_reset"
# The personal link works until a week after the last day (time to finish from home).
LINK_GRACE = timedelta(days=7)
MEETING_MINUTES = (10, 240)
MIN_EVIDENCE = 10
MAX_TAGS = 50
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DUE_SOON = timedelta(days=7)


# --- who is acting --------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkAccess:
    """The leaver through their personal link (no log-in): may see and act on one case only."""

    case: LeaverCase


Who = User | LinkAccess


def is_manager(user: User) -> bool:
    return has_permission(user.role, Permission.LEAVERS_MANAGE)


def _require_manager(actor: User) -> None:
    if not is_manager(actor):
        raise Forbidden("Only the school business manager or the headteacher can do this.")


def _label(who: Who) -> str:
    if isinstance(who, LinkAccess):
        return f"{who.case.leaver_name} (with their personal link)"
    return who.name


def _stand_in(case: LeaverCase) -> User:
    """An unsaved stand-in for a leaver without an account, so their deposits name them."""
    # Never added to the session: escrow keeps deposited_by_id=None, and the activity trail
    # shows this e-mail label as the actor.
    return User(
        school_id=case.school_id,
        email=f"{case.leaver_email} (leaver's link)"[:254],
        name=case.leaver_name,
        role=Role.TEACHER,
        active=False,
    )


def _user_or_none(who: Who) -> User | None:
    return None if isinstance(who, LinkAccess) else who


# --- time in the school ---------------------------------------------------------------------


def zone(school: School) -> ZoneInfo:
    try:
        return ZoneInfo(school.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/London")


def school_today(school: School, now: datetime) -> date:
    return now.astimezone(zone(school)).date()


def local(moment: datetime, school: School) -> datetime:
    return moment.astimezone(zone(school))


def when(moment: datetime | None, school: School) -> str:
    """'14:30 on Fri 17 Jul 2026' in the school's own time."""
    if moment is None:
        return "—"
    at = local(moment, school)
    return f"{at:%H:%M} on {at:%a} {at.day} {at:%b %Y}"


def day_text(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def _start_of(day: date, school: School) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone(school)).astimezone(UTC)


# --- small helpers --------------------------------------------------------------------------


def _event(
    session: Session, case: LeaverCase, who: Who | None, what: str, now: datetime
) -> LeaverEvent:
    actor = _user_or_none(who) if who is not None else None
    event = LeaverEvent(
        school_id=case.school_id,
        case_id=case.id,
        at=now,
        actor_id=actor.id if actor else None,
        actor_label=_label(who) if who is not None else "Trolley",
        what=what[:500],
    )
    session.add(event)
    case.events.append(event)
    return event


def _trail(
    session: Session,
    case: LeaverCase,
    who: Who | None,
    action: str,
    now: datetime,
    **details: object,
) -> None:
    actor = _user_or_none(who) if who is not None else None
    label = None
    if isinstance(who, LinkAccess):
        label = f"{who.case.leaver_email} (leaver's link)"[:254]
    record(
        session,
        actor=actor,
        actor_label=label,
        action=f"leaver.{action}",
        school_id=case.school_id,
        target_type="leaver_case",
        target_id=case.id,
        details=dict(details),
        at=now,
    )


def _school_user(session: Session, school_id: int, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    return session.scalar(
        select(User).where(User.id == user_id, User.school_id == school_id, User.active.is_(True))
    )


def _find_device(session: Session, school_id: int, tag: str) -> Device | None:
    device = session.scalar(
        select(Device).where(Device.school_id == school_id, Device.asset_tag == tag)
    )
    if device is None and tag.upper() != tag:
        # Keyboard-wedge scanners sometimes arrive with caps lock the wrong way round.
        device = session.scalar(
            select(Device).where(Device.school_id == school_id, Device.asset_tag == tag.upper())
        )
    return device


def _describe(device: Device) -> str:
    return f"{device.asset_tag}: {device.make} {device.model}"[:300]


def _names(items: Iterable[LeaverItem]) -> str:
    labels = [_short(item) for item in items]
    shown = ", ".join(labels[:6])
    return shown + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")


def _short(item: LeaverItem) -> str:
    if item.device is not None:
        return item.device.asset_tag
    return "their own device in the staff register"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- what a person holds --------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    device: Device
    source: str


def _on_loan(session: Session, user: User) -> dict[str, str]:
    """The loans domain's view of what the person has out now: asset tag → how it is out."""
    from server.loans.services import devices_out

    out = {}
    for row in devices_out(session, user.school_id, teacher_id=user.id):
        if row.kind == "home":
            out[row.asset_tag] = "Home loan"
        else:
            out[row.asset_tag] = f"Lesson loan ({row.class_label or 'no class given'})"
    return out


def held_by(session: Session, user: User) -> list[Held]:
    """Every school device the register and the loans say the person holds."""
    loans = _on_loan(session, user)
    holds = Device.holder_id == user.id
    if loans:
        holds = or_(holds, Device.asset_tag.in_(list(loans)))
    devices = session.scalars(
        select(Device)
        .where(Device.school_id == user.school_id, Device.status != DeviceStatus.DISPOSED, holds)
        .order_by(Device.asset_tag)
    ).all()
    return [Held(d, loans.get(d.asset_tag, "Held (asset register)")) for d in devices]


def _busy(session: Session, device_ids: Sequence[int], *, but: int | None = None) -> list[Device]:
    """Devices already on another open case."""
    if not device_ids:
        return []
    query = (
        select(Device)
        .join(LeaverItem, LeaverItem.device_id == Device.id)
        .where(LeaverItem.device_id.in_(list(device_ids)), LeaverItem.settled_at.is_(None))
    )
    if but is not None:
        query = query.where(LeaverItem.case_id != but)
    return list(session.scalars(query.order_by(Device.asset_tag)).unique())


def _busy_error(session: Session, busy: Sequence[Device]) -> Conflict:
    owners = session.execute(
        select(Device.asset_tag, LeaverCase.leaver_name)
        .join(LeaverItem, LeaverItem.device_id == Device.id)
        .join(LeaverCase, LeaverCase.id == LeaverItem.case_id)
        .where(Device.id.in_([d.id for d in busy]), LeaverItem.settled_at.is_(None))
    ).all()
    words = "; ".join(f"{tag} is on the open leaver case for {name}" for tag, name in owners)
    return Conflict(
        f"{words or 'A device is already on another open leaver case'}. "
        "A device can be on only one open case: finish or close that case first.",
        code="device_in_open_case",
        details=[{"asset_tag": tag, "case_of": name} for tag, name in owners],
    )


def _device_item(case: LeaverCase, device: Device, source: str, now: datetime) -> LeaverItem:
    return LeaverItem(
        school_id=case.school_id,
        kind=ItemKind.DEVICE,
        device_id=device.id,
        device=device,
        description=_describe(device),
        source=source[:120],
        added_at=now,
        escrow_ids=[],
    )


def _personal_items(
    session: Session, case: LeaverCase, leaver: User, now: datetime, *, skip: set[int]
) -> list[LeaverItem]:
    return [
        LeaverItem(
            school_id=case.school_id,
            kind=ItemKind.PERSONAL_DEVICE,
            personal_device_id=entry.id,
            description=f"{entry.make} {entry.model}, serial {entry.serial}"[:300],
            source="Staff personal devices register",
            added_at=now,
            escrow_ids=[],
        )
        for entry in personal_devices.personal_devices_of(session, leaver)
        if entry.id not in skip
    ]


# --- opening a case -------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A new case, and the personal link (shown once) for a leaver without an account."""

    case: LeaverCase
    link: str | None


def open_case(
    session: Session,
    actor: User,
    *,
    leaver_id: int | None,
    leaver_name: str = "",
    leaver_email: str = "",
    last_day: date,
    line_manager_id: int | None,
    technician_id: int | None,
    asset_tags: Sequence[str] = (),
    base_url: str,
    now: datetime | None = None,
) -> Opened:
    """Open a leaver case listing what they hold; someone who holds nothing closes at once."""
    _require_manager(actor)
    now = now or utcnow()
    school = actor.school
    problems: list[dict[str, str]] = []

    def problem(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    # A leaver whose account is already closed is still chosen from the list.
    leaver = (
        session.scalar(select(User).where(User.id == leaver_id, User.school_id == actor.school_id))
        if leaver_id is not None
        else None
    )
    name, email = " ".join(leaver_name.split()), leaver_email.strip().lower()
    if leaver_id is not None:
        if leaver is None:
            problem("leaver_id", "Choose a member of staff from your school.")
        else:
            name, email = leaver.name, leaver.email
    else:
        if not name:
            problem("leaver_name", "Enter the leaver's name, or choose them from the list.")
        if not EMAIL_RE.match(email):
            problem("leaver_email", "Enter an e-mail address we can send their checklist to.")
        elif session.scalar(
            select(User.id).where(
                User.school_id == actor.school_id, func.lower(User.email) == email
            )
        ):
            problem("leaver_email", "They have a Trolley account: choose them from the list.")
    manager = _school_user(session, actor.school_id, line_manager_id)
    technician = _school_user(session, actor.school_id, technician_id)
    if manager is None:
        problem("line_manager_id", "Choose their line manager.")
    elif leaver is not None and manager.id == leaver.id:
        problem("line_manager_id", "The line manager must be someone other than the leaver.")
    if technician is None or technician.role is not Role.TECHNICIAN:
        problem("technician_id", "Choose one of the school's technicians.")
    elif leaver is not None and technician.id == leaver.id:
        problem("technician_id", "The technician must be someone other than the leaver.")
    elif manager is not None and technician.id == manager.id:
        problem("technician_id", "The line manager and the technician must be two people.")
    today = school_today(school, now)
    if last_day < today:
        problem("last_day", "The last day cannot be in the past.")
    elif last_day > today + timedelta(days=366):
        problem("last_day", "The last day must be within the next year.")
    tags = [t.strip() for t in asset_tags if t and t.strip()]
    if len(tags) > MAX_TAGS:
        problem("asset_tags", f"Add at most {MAX_TAGS} devices by hand.")
    extra: list[Device] = []
    for tag in dict.fromkeys(tags):
        device = _find_device(session, actor.school_id, tag)
        if device is None:
            problem("asset_tags", f"No device {tag} in your school's register.")
        elif device.status is DeviceStatus.DISPOSED:
            problem("asset_tags", f"{device.asset_tag} has been disposed of.")
        else:
            extra.append(device)
    if problems:
        raise ValidationFailed(
            "Some details need correcting before the case can open.", details=problems
        )
    duplicate = session.scalar(
        select(LeaverCase).where(
            LeaverCase.school_id == actor.school_id,
            LeaverCase.status == CaseStatus.OPEN,
            LeaverCase.leaver_id == leaver.id
            if leaver is not None
            else func.lower(LeaverCase.leaver_email) == email,
        )
    )
    if duplicate is not None:
        raise Conflict(
            f"{name} already has an open leaver case (last day {day_text(duplicate.last_day)}).",
            code="case_already_open",
            details={"case_id": duplicate.id},
        )
    held = held_by(session, leaver) if leaver is not None else []
    sources = {h.device.id: h.source for h in held}
    devices = {h.device.id: h.device for h in held}
    for device in extra:
        devices.setdefault(device.id, device)
        sources.setdefault(device.id, f"Added by {actor.name}")
    busy = _busy(session, list(devices))
    if busy:
        raise _busy_error(session, busy)
    case = LeaverCase(
        school_id=actor.school_id,
        leaver_id=leaver.id if leaver else None,
        leaver_name=name,
        leaver_email=email,
        last_day=last_day,
        line_manager_id=manager.id if manager else None,
        technician_id=technician.id if technician else None,
        status=CaseStatus.OPEN,
        opened_by_id=actor.id,
        opened_at=now,
        meeting_sequence=0,
    )
    session.add(case)
    for device in sorted(devices.values(), key=lambda d: d.asset_tag):
        case.items.append(_device_item(case, device, sources[device.id], now))
    if leaver is not None:
        case.items.extend(_personal_items(session, case, leaver, now, skip=set()))
    _flush_or_conflict(session)
    _event(session, case, actor, f"Case opened: last day {day_text(last_day)}", now)
    _trail(
        session,
        case,
        actor,
        "opened",
        now,
        leaver=name,
        last_day=last_day.isoformat(),
        items=len(case.items),
    )
    link = None
    if not case.items:
        what = f"{name} held no school devices and nothing in the staff personal devices register"
        _close(session, case, actor, now, note=f"{what}, so the case closed straight away.")
    else:
        if leaver is None or not leaver.active:
            link = _new_link(session, case, actor, base_url, now)
        _tell_people(session, case, now)
    _flush_or_conflict(session)
    session.commit()
    log.info("leaver case %s opened with %d item(s)", case.id, len(case.items))
    return Opened(case, link)


def _flush_or_conflict(session: Session) -> None:
    """Two people acting at once: the database's unique indexes decide, in plain words."""
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "Someone else has just put this person or one of these devices on an open leaver "
            "case. Reload the page to see it.",
            code="device_in_open_case",
        ) from exc


def _tell_people(session: Session, case: LeaverCase, now: datetime) -> None:
    link = f"/leavers/{case.id}"
    devices = sum(1 for i in case.items if i.is_device)
    when_text = day_text(case.last_day)
    if case.leaver is not None:
        notify(
            session,
            school_id=case.school_id,
            users=[case.leaver],
            kind="leaver_checklist",
            title="Your leaving checklist for school devices",
            body=f"Before your last day ({when_text}), please give back {devices} school "
            "device(s) and tell us how to reset them. Your checklist explains each step.",
            link="/leavers/mine",
        )
    helpers = [u for u in (case.line_manager, case.technician) if u is not None]
    notify(
        session,
        school_id=case.school_id,
        users=helpers,
        kind="leaver_case",
        title=f"{case.leaver_name} is leaving on {when_text}",
        body=f"You are asked to sign off {case.leaver_name}'s leaver case once their "
        f"{devices} device(s) are back and reset.",
        link=link,
    )


# --- finding cases --------------------------------------------------------------------------


def _load(session: Session, school_id: int, case_id: int) -> LeaverCase | None:
    return session.scalar(
        select(LeaverCase)
        .where(LeaverCase.id == case_id, LeaverCase.school_id == school_id)
        .options(selectinload(LeaverCase.items).joinedload(LeaverItem.device))
    )


def roles_on(case: LeaverCase, user: User) -> set[Signer]:
    """The parts a person plays on a case (a person plays at most one)."""
    parts = {
        Signer.LEAVER: case.leaver_id,
        Signer.LINE_MANAGER: case.line_manager_id,
        Signer.TECHNICIAN: case.technician_id,
    }
    return {signer for signer, user_id in parts.items() if user_id == user.id}


def get_case(session: Session, actor: User, case_id: int) -> LeaverCase:
    """A case the person may see: managers see all; others only a case they have a part in."""
    case = _load(session, actor.school_id, case_id)
    if case is None or not (is_manager(actor) or roles_on(case, actor)):
        raise NotFound("No such leaver case for you in your school.")
    return case


def list_cases(
    session: Session, actor: User, *, status: CaseStatus | None = None, limit: int = 200
) -> Sequence[LeaverCase]:
    _require_manager(actor)
    query = select(LeaverCase).where(LeaverCase.school_id == actor.school_id)
    if status is not None:
        query = query.where(LeaverCase.status == status)
    return session.scalars(
        query.options(selectinload(LeaverCase.items))
        .order_by(LeaverCase.status.desc(), LeaverCase.last_day, LeaverCase.id)
        .limit(limit)
    ).all()


def my_case(session: Session, user: User) -> LeaverCase | None:
    """The person's own case as a leaver: the open one, else the latest."""
    found = session.scalar(
        select(LeaverCase)
        .where(LeaverCase.school_id == user.school_id, LeaverCase.leaver_id == user.id)
        .options(selectinload(LeaverCase.items).joinedload(LeaverItem.device))
        .order_by(LeaverCase.status.desc(), LeaverCase.opened_at.desc(), LeaverCase.id.desc())
        .limit(1)
    )
    return found


def case_for_link(session: Session, token: str, *, now: datetime | None = None) -> LinkAccess:
    """The case a personal link opens, while it is open and the link has not expired."""
    now = now or utcnow()
    gone = NotFound(
        "This link is not valid or has expired. Ask the school business manager for a new one."
    )
    if not token or len(token) > 128:
        raise gone
    case = session.scalar(
        select(LeaverCase)
        .where(LeaverCase.link_token_hash == _token_hash(token))
        .options(selectinload(LeaverCase.items).joinedload(LeaverItem.device))
    )
    if (
        case is None
        or not case.is_open
        or case.link_expires_at is None
        or case.link_expires_at <= now
    ):
        raise gone
    return LinkAccess(case)


def _leaver_case(session: Session, who: Who, case_id: int) -> LeaverCase:
    """The leaver's own case: through their account, or the one their link opens."""
    if isinstance(who, LinkAccess):
        if who.case.id != case_id:
            raise NotFound("No such leaver checklist.")
        return who.case
    case = _load(session, who.school_id, case_id)
    if case is None or case.leaver_id != who.id:
        raise NotFound("No such leaver checklist of yours.")
    return case


def _open(case: LeaverCase) -> None:
    if not case.is_open:
        raise Conflict("This leaver case is closed; nothing more can change on it.", code="closed")


def _item(case: LeaverCase, item_id: int, kind: ItemKind | None = ItemKind.DEVICE) -> LeaverItem:
    for item in case.items:
        if item.id == item_id and (kind is None or item.kind is kind):
            return item
    raise NotFound("No such item on this leaver case.")


# --- the state of a case --------------------------------------------------------------------


@dataclass(frozen=True)
class ItemState:
    """One item as people see it: each step, whether it is done, and what happens next."""

    item: LeaverItem
    handed_over: bool
    returned: bool
    reset_done: bool
    reset_at: datetime | None
    reset_words: str
    command: Command | None
    done: bool
    next_step: str

    @property
    def awaiting_reset(self) -> bool:
        return self.command is not None and not self.command.status.finished


@dataclass(frozen=True)
class CaseState:
    case: LeaverCase
    items: list[ItemState]
    today: date

    @property
    def open_items(self) -> list[ItemState]:
        return [s for s in self.items if not s.done]

    @property
    def devices(self) -> list[ItemState]:
        return [s for s in self.items if s.item.is_device]

    @property
    def personal(self) -> list[ItemState]:
        return [s for s in self.items if not s.item.is_device]

    @property
    def ready(self) -> bool:
        return not self.open_items

    @property
    def overdue(self) -> bool:
        return self.case.is_open and self.today > self.case.last_day

    @property
    def leaver_to_do(self) -> list[ItemState]:
        """Devices the leaver must still give back or say how to reset."""
        return [
            s
            for s in self.devices
            if not s.done and not (s.returned and (s.handed_over or s.reset_done))
        ]

    @property
    def needs_meeting(self) -> bool:
        return self.case.meeting_starts_at is None and any(
            s.item.route is HandoverRoute.MEETING for s in self.devices
        )

    def signatures(self) -> list[tuple[Signer, User | None, datetime | None]]:
        case = self.case
        return [
            (Signer.LEAVER, case.leaver, case.leaver_signed_at),
            (Signer.LINE_MANAGER, case.line_manager, case.line_manager_signed_at),
            (Signer.TECHNICIAN, case.technician, case.technician_signed_at),
        ]


def _reset_command(item: LeaverItem, command: Command | None) -> Command | None:
    """The item's reset command, only if it really is a reset of this very device."""
    if command is None or command.device_id != item.device_id or command.type != RESET:
        return None
    return command


def _item_state(case: LeaverCase, item: LeaverItem, command: Command | None) -> ItemState:
    school = case.school
    if not item.is_device:
        done = item.removed_at is not None
        return ItemState(
            item,
            True,
            True,
            done,
            item.removed_at,
            "Removed from the register" if done else "Still in the register",
            None,
            done,
            "" if done else "The school business manager removes it from the staff register.",
        )
    command = _reset_command(item, command)
    handed = (item.route is HandoverRoute.CREDENTIALS and item.credentials_at is not None) or (
        item.route is HandoverRoute.MEETING and case.meeting_starts_at is not None
    )
    reset_at = item.reset_at
    if reset_at is None and command is not None and command.status is CommandStatus.DONE:
        reset_at = command.finished_at  # the worker recorded the ack; the job will note it
    if item.reset_at is not None and item.reset_source is ResetSource.EVIDENCE:
        words = f"Reset confirmed with evidence at {when(item.reset_at, school)}"
    elif reset_at is not None:
        words = f"Reset confirmed by the device at {when(reset_at, school)}"
    elif command is None:
        words = "Not reset yet"
    elif command.status is CommandStatus.PENDING_APPROVAL:
        words = "Factory reset asked for: waiting for a second person to approve"
    elif command.status in (CommandStatus.QUEUED, CommandStatus.SENT):
        words = "Factory reset on its way to the device"
    elif command.status is CommandStatus.RECEIVED:
        words = "The device has the factory reset and is carrying it out"
    else:
        words = f"The factory reset {command.status.label}: {command.detail or 'send it again'}"
    returned = item.returned_at is not None
    reset_done = reset_at is not None
    if not handed and not reset_done:
        step = "The leaver hands over the PIN and account details, or a reset meeting is booked."
    elif not returned:
        step = "Scan the device in when the leaver gives it back."
    elif not reset_done:
        step = "The technician resets the device."
    else:
        step = ""
    return ItemState(
        item,
        handed,
        returned,
        reset_done,
        reset_at,
        words,
        command,
        returned and reset_done,
        step,
    )


def case_state(session: Session, case: LeaverCase, *, now: datetime | None = None) -> CaseState:
    """Every item's steps (reading reset commands in one query)."""
    now = now or utcnow()
    ids = [i.reset_command_id for i in case.items if i.reset_command_id is not None]
    found = (
        {c.id: c for c in session.scalars(select(Command).where(Command.id.in_(ids)))}
        if ids
        else {}
    )
    items = [
        _item_state(case, item, found.get(item.reset_command_id) if item.reset_command_id else None)
        for item in case.items
    ]
    return CaseState(case, items, school_today(case.school, now))


# --- keeping a case up to date --------------------------------------------------------------


def _note_resets(session: Session, case: LeaverCase, now: datetime) -> int:
    """Record device-acknowledged resets on the case's items (joins the caller's transaction)."""
    noted = 0
    for state in case_state(session, case, now=now).devices:
        item = state.item
        if item.reset_at is None and state.reset_at is not None:
            item.reset_at = state.reset_at
            item.reset_source = ResetSource.DEVICE
            noted += 1
            _event(
                session, case, None, f"{_short(item)}: factory reset confirmed by the device", now
            )
            _trail(session, case, None, "reset_confirmed", now, item=item.id, source="device")
    if noted:
        _check_ready(session, case, now)
    return noted


def note_acknowledged_resets(session: Session, now: datetime) -> int:
    """The job: a reset the device acknowledged completes its item (joins the caller's work)."""
    # Matched by command id AND device id, so another device's acknowledgement never counts.
    case_ids = session.scalars(
        select(LeaverItem.case_id)
        .join(
            Command,
            and_(
                Command.id == LeaverItem.reset_command_id,
                Command.device_id == LeaverItem.device_id,
            ),
        )
        .where(
            LeaverItem.reset_at.is_(None),
            LeaverItem.settled_at.is_(None),
            Command.type == RESET,
            Command.status == CommandStatus.DONE,
        )
        .distinct()
    ).all()
    noted = 0
    for case_id in case_ids:
        case = session.scalar(
            select(LeaverCase)
            .where(LeaverCase.id == case_id)
            .options(selectinload(LeaverCase.items).joinedload(LeaverItem.device))
        )
        if case is not None:
            noted += _note_resets(session, case, now)
    return noted


def _check_ready(session: Session, case: LeaverCase, now: datetime) -> None:
    """Once nothing is left to do, the line manager and technician are asked to sign."""
    state = case_state(session, case, now=now)
    if not state.ready:
        case.ready_at = None
        return
    if case.ready_at is not None:
        return
    case.ready_at = now
    _event(session, case, None, "Everything is back and reset: ready for sign-off", now)
    waiting = [
        user
        for user, signed in (
            (case.line_manager, case.line_manager_signed_at),
            (case.technician, case.technician_signed_at),
            (case.leaver, case.leaver_signed_at),
        )
        if user is not None and signed is None
    ]
    if waiting:
        notify(
            session,
            school_id=case.school_id,
            users=waiting,
            kind="leaver_sign_off",
            title=f"{case.leaver_name}'s leaver case is ready for your sign-off",
            body="Every device is back and reset. Please check the case and sign it off.",
            link=f"/leavers/{case.id}",
        )


def _unsign_helpers(session: Session, case: LeaverCase, now: datetime, why: str) -> None:
    """A new item means the line manager and technician sign again for the whole list."""
    if case.line_manager_signed_at or case.technician_signed_at:
        case.line_manager_signed_at = None
        case.technician_signed_at = None
        _event(session, case, None, f"Sign-offs cleared: {why}", now)
    case.ready_at = None


# --- the leaver's steps ---------------------------------------------------------------------


def hand_over_credentials(
    session: Session,
    box: SecretBox,
    who: Who,
    case_id: int,
    item_id: int,
    *,
    passcode: str = "",
    account_email: str = "",
    account_password: str = "",
    now: datetime | None = None,
) -> LeaverItem:
    """Route (a): the leaver's PIN and account details go into escrow, sealed (P-LEAVE-2)."""
    now = now or utcnow()
    case = _leaver_case(session, who, case_id)
    _open(case)
    state = _state_of(session, case, item_id, now)
    item, device = state.item, state.item.device
    assert device is not None
    if state.reset_done:
        raise Conflict(
            f"{device.asset_tag} has already been reset, so there is nothing to hand over.",
            code="already_reset",
        )
    account_email = account_email.strip()
    problems = []
    if account_email and not account_password:
        problems.append({"field": "account_password", "message": "Enter the account's password."})
    if account_password and not account_email:
        problems.append({"field": "account_email", "message": "Enter the account's e-mail."})
    if not passcode.strip() and not account_email and not account_password:
        problems.append(
            {"field": "passcode", "message": "Enter the passcode, or the account details."}
        )
    if problems:
        raise ValidationFailed(
            "Enter the device's passcode or PIN, and the account it is signed in with if any.",
            details=problems,
        )
    actor = _stand_in(case) if isinstance(who, LinkAccess) else who
    kept = []
    if passcode.strip():
        kept.append(
            escrow.deposit(
                session,
                box,
                actor,
                device,
                SecretKind.PASSCODE,
                passcode.strip(),
                label="Screen passcode or PIN, from the leaver",
                commit=False,
            )
        )
    if account_email:
        kind = {
            Platform.IPADOS: SecretKind.APPLE_ID,
            Platform.CHROMEOS: SecretKind.GOOGLE_ACCOUNT,
        }.get(device.platform, SecretKind.OTHER)
        kept.append(
            escrow.deposit(
                session,
                box,
                actor,
                device,
                kind,
                f"{account_email}\n{account_password}",
                label="Account e-mail and password, from the leaver",
                commit=False,
            )
        )
    item.route = HandoverRoute.CREDENTIALS
    item.credentials_at = now
    item.escrow_ids = [*item.escrow_ids, *(entry.id for entry in kept)]
    _event(
        session, case, who, f"{device.asset_tag}: PIN and account details handed over safely", now
    )
    _trail(
        session,
        case,
        who,
        "credentials_handed_over",
        now,
        item=item.id,
        device=device.asset_tag,
        kinds=[entry.kind.value for entry in kept],
    )
    session.commit()
    return item


def choose_meeting(
    session: Session, who: Who, case_id: int, item_id: int, *, now: datetime | None = None
) -> LeaverItem:
    """Route (b) for one device: it is reset at a meeting on the last day."""
    now = now or utcnow()
    case = _case_for(session, who, case_id)
    if not isinstance(who, LinkAccess) and not (
        is_manager(who) or Signer.LEAVER in roles_on(case, who)
    ):
        raise Forbidden("The leaver chooses how their devices are reset.")
    _open(case)
    item = _item(case, item_id)
    item.route = HandoverRoute.MEETING
    _event(session, case, who, f"{_short(item)}: to be reset at a meeting on the last day", now)
    _trail(session, case, who, "meeting_chosen", now, item=item.id)
    session.commit()
    return item


def _case_for(session: Session, who: Who, case_id: int) -> LeaverCase:
    if isinstance(who, LinkAccess):
        return _leaver_case(session, who, case_id)
    return get_case(session, who, case_id)


def book_meeting(
    session: Session,
    who: Who,
    case_id: int,
    *,
    starts_at: datetime,
    minutes: int,
    place: str,
    now: datetime | None = None,
) -> LeaverCase:
    """Book (or move) the reset meeting on the last day; everyone gets an invitation."""
    now = now or utcnow()
    case = _case_for(session, who, case_id)
    _open(case)
    school = case.school
    if starts_at.tzinfo is None:
        starts_at = starts_at.replace(tzinfo=zone(school))  # typed on the school's clocks
    starts_at = starts_at.astimezone(UTC)
    place = " ".join(place.split())
    problems = []
    if local(starts_at, school).date() != case.last_day:
        problems.append(
            {
                "field": "starts_at",
                "message": f"The meeting is on the last day, {day_text(case.last_day)}.",
            }
        )
    elif starts_at <= now:
        problems.append({"field": "starts_at", "message": "That time has already passed."})
    if not MEETING_MINUTES[0] <= minutes <= MEETING_MINUTES[1]:
        problems.append(
            {
                "field": "minutes",
                "message": f"Between {MEETING_MINUTES[0]} and {MEETING_MINUTES[1]} minutes.",
            }
        )
    if not place or len(place) > 200:
        problems.append({"field": "place", "message": "Say where to meet, e.g. the IT office."})
    if problems:
        raise ValidationFailed(
            "The meeting needs a time on the last day and a place.", details=problems
        )
    moved = case.meeting_starts_at is not None
    case.meeting_starts_at = starts_at
    case.meeting_ends_at = starts_at + timedelta(minutes=minutes)
    case.meeting_place = place
    case.meeting_sequence = case.meeting_sequence + 1 if moved else 0
    actor = _user_or_none(who)
    case.meeting_booked_by_id = actor.id if actor else None
    case.meeting_booked_by = actor
    for item in case.items:
        if item.is_device and item.route is None:
            item.route = HandoverRoute.MEETING
    what = (
        f"Reset meeting {'moved to' if moved else 'booked for'} {when(starts_at, school)}, {place}"
    )
    _event(session, case, who, what, now)
    _trail(session, case, who, "meeting_booked", now, starts_at=starts_at.isoformat(), place=place)
    invitation = Attachment(
        "reset-meeting.ics",
        "text/calendar; method=REQUEST; charset=utf-8",
        meeting_ics(case, now).encode(),
    )
    people = [u for u in (case.leaver, case.line_manager, case.technician) if u is not None]
    notify(
        session,
        school_id=case.school_id,
        users=people,
        kind="leaver_meeting",
        title=f"Device reset meeting: {case.leaver_name}, {when(starts_at, school)}",
        body=f"A meeting to reset {case.leaver_name}'s school devices, with their line manager "
        f"and the technician, at {when(starts_at, school)} in {place}. The invitation is attached.",
        link=f"/leavers/{case.id}",
        attachments=(invitation,),
    )
    session.commit()
    return case


# --- the invitation -------------------------------------------------------------------------


def _ics_text(value: str) -> str:
    """RFC 5545 TEXT: escape backslashes, semicolons, commas and line breaks."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _ics_name(value: str) -> str:
    """A quoted CN parameter (no double quotes or control characters allowed inside)."""
    return '"' + "".join(ch for ch in value if ch != '"' and ch.isprintable()) + '"'


def _fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character."""
    out: list[str] = []
    current = b""
    for ch in line:
        encoded = ch.encode()
        limit = 75 if not out else 74  # continuation lines start with one space
        if len(current) + len(encoded) > limit:
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def meeting_ics(case: LeaverCase, now: datetime | None = None) -> str:
    """The reset meeting as an iCalendar invitation (UTC times, CRLF line endings)."""
    if case.meeting_starts_at is None or case.meeting_ends_at is None:
        raise NotFound("No reset meeting has been booked for this case yet.")
    now = now or utcnow()
    organiser = case.meeting_booked_by or case.technician or case.line_manager
    devices = ", ".join(i.device.asset_tag for i in case.items if i.device is not None)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Trolley//Leaver reset meeting//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:leaver-case-{case.id}-school-{case.school_id}@trolley",
        f"DTSTAMP:{_stamp(now)}",
        f"DTSTART:{_stamp(case.meeting_starts_at)}",
        f"DTEND:{_stamp(case.meeting_ends_at)}",
        f"SEQUENCE:{case.meeting_sequence}",
        f"SUMMARY:{_ics_text(f'Device reset meeting: {case.leaver_name}')}",
        f"LOCATION:{_ics_text(case.meeting_place or '')}",
        "DESCRIPTION:"
        + _ics_text(
            f"{case.leaver_name} signs out of their school devices ({devices}) so the "
            "technician can factory reset them, with their line manager present."
        ),
    ]
    if organiser is not None:
        lines.append(f"ORGANIZER;CN={_ics_name(organiser.name)}:mailto:{organiser.email}")
    people = [(case.leaver_name, case.leaver_email)] + [
        (u.name, u.email) for u in (case.line_manager, case.technician) if u is not None
    ]
    for name, email in people:
        lines.append(
            f"ATTENDEE;CN={_ics_name(name)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;"
            f"RSVP=TRUE:mailto:{email}"
        )
    lines += ["STATUS:CONFIRMED", "END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)


def meeting_invitation(session: Session, who: Who, case_id: int) -> tuple[LeaverCase, str]:
    case = _case_for(session, who, case_id)
    return case, meeting_ics(case)


# --- return and reset -----------------------------------------------------------------------


def require_receiver(actor: User, case: LeaverCase) -> None:
    """Devices come back to the SBM, the headteacher or the case's technician."""
    if not (is_manager(actor) or actor.id == case.technician_id):
        raise Forbidden(
            "Devices are scanned back in by the school business manager, the headteacher or "
            "the technician on this case."
        )


def _require_technician(actor: User, case: LeaverCase, doing: str) -> None:
    if actor.id != case.technician_id:
        name = case.technician.name if case.technician else "the technician"
        raise Forbidden(f"Only {name}, the technician on this case, can {doing}.")


def return_device(
    session: Session,
    actor: User,
    case_id: int,
    code: str,
    *,
    base_url: str,
    now: datetime | None = None,
) -> LeaverItem:
    """Scanning a device in completes its return: back in its home, nobody holding it."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    require_receiver(actor, case)
    _open(case)
    try:
        tag = parse_label_url(code, base_url)
    except LabelCodeError as exc:
        raise ValidationFailed(
            f"That is not a Trolley label or asset tag: {exc}. Nothing was recorded.",
            code="bad_code",
        ) from exc
    device = _find_device(session, actor.school_id, tag)
    if device is None:
        raise NotFound(f"No device {tag} in your school's register. Nothing was recorded.")
    item = next((i for i in case.items if i.device_id == device.id), None)
    if item is None:
        raise Conflict(
            f"{device.asset_tag} is not on {case.leaver_name}'s list. If they had it, add it to "
            "the case first.",
            code="not_on_case",
        )
    if item.returned_at is not None:
        raise Conflict(
            f"{device.asset_tag} was already given back at {when(item.returned_at, case.school)}.",
            code="already_returned",
        )
    _put_back(session, actor, device, case, now)
    item.returned_at = now
    item.returned_by_id = actor.id
    item.returned_by = actor
    _event(session, case, actor, f"{device.asset_tag} given back and scanned in", now)
    _trail(session, case, actor, "returned", now, item=item.id, device=device.asset_tag)
    _check_ready(session, case, now)
    session.commit()
    return item


def _put_back(
    session: Session, actor: User, device: Device, case: LeaverCase, now: datetime
) -> None:
    """Put the device back in its home, through the loans domain for trolley devices."""
    # Loans closes any open loan and asks for the photo wipe; it commits on its own, before
    # the case changes, so a refused return leaves nothing of the case half-written.
    if device.status in (DeviceStatus.LOST, DeviceStatus.STOLEN):
        raise Conflict(
            f"{device.asset_tag} is reported {device.status.value}. Ask the headteacher to close "
            "its loss report as found, then scan it in again.",
            code="reported_lost",
        )
    if device.status is DeviceStatus.DISPOSED:
        raise Conflict(f"{device.asset_tag} has been disposed of.", code="disposed")
    home = device.home_location
    if home is not None and home.kind in STORAGE_KINDS:
        from server.loans.services import quick_return

        quick_return(session, actor, device, now=now)
        return
    device.holder_id = None
    device.current_location_id = device.home_location_id
    where = f"back in {home.name}" if home is not None else "back at school (it has no home set)"
    add_event(
        session,
        device,
        kind="leaver_return",
        summary=f"Given back by {case.leaver_name} (leaver) and {where}",
        actor=actor,
        details={"leaver_case": case.id},
    ).at = now


def send_reset(
    session: Session, actor: User, case_id: int, item_id: int, *, now: datetime | None = None
) -> Command:
    """Ask for the device's factory reset; a second person must approve it."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_technician(actor, case, "send its factory resets")
    _open(case)
    state = _state_of(session, case, item_id, now)
    item, device = state.item, state.item.device
    assert device is not None
    if state.reset_done:
        raise Conflict(f"{device.asset_tag} has already been reset.", code="already_reset")
    if state.awaiting_reset:
        raise Conflict(
            f"A factory reset is already on its way to {device.asset_tag} ({state.reset_words}).",
            code="reset_pending",
        )
    if not state.handed_over:
        raise ValidationFailed(
            f"Before the reset, {case.leaver_name} hands over the PIN and account details for "
            f"{device.asset_tag}, or a reset meeting is booked: otherwise the device may stay "
            "locked to their account.",
            code="handover_first",
        )
    if active_identity(session, device) is None:
        raise ValidationFailed(
            f"{device.asset_tag} has no Trolley kiosk client, so it cannot be reset from here. "
            "Reset it by hand, then confirm the reset with your evidence.",
            code="not_enrolled",
        )
    (command,) = commands.issue(
        session,
        actor,
        [device],
        RESET,
        {},
        reason=f"{case.leaver_name} is leaving (leaver case {case.id})",
        now=now,
        commit=False,
    )
    item.reset_command_id = command.id
    approvers = [
        user
        for user in session.scalars(
            select(User).where(
                User.school_id == case.school_id,
                User.active.is_(True),
                User.role.in_([Role.HEADTEACHER, Role.TECHNICIAN]),
                User.id != actor.id,
            )
        )
    ]
    notify(
        session,
        school_id=case.school_id,
        users=approvers,
        kind="leaver_reset_approval",
        title=f"Approve the factory reset of {device.asset_tag} ({case.leaver_name} is leaving)",
        body=f"{actor.name} asked to factory reset {device.asset_tag}. A second person must "
        "approve it on the Commands page before it is sent.",
        link="/commands",
        email=False,
    )
    _event(session, case, actor, f"{device.asset_tag}: factory reset asked for", now)
    _trail(session, case, actor, "reset_sent", now, item=item.id, command=command.cmd_id)
    session.commit()
    return command


def _state_of(session: Session, case: LeaverCase, item_id: int, now: datetime) -> ItemState:
    item = _item(case, item_id)
    for state in case_state(session, case, now=now).items:
        if state.item is item:
            return state
    raise NotFound("No such item on this leaver case.")  # pragma: no cover - found above


def confirm_reset(
    session: Session,
    actor: User,
    case_id: int,
    item_id: int,
    evidence: str,
    *,
    now: datetime | None = None,
) -> LeaverItem:
    """For a device without the kiosk client: the technician confirms the reset with evidence."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_technician(actor, case, "confirm its resets")
    _open(case)
    state = _state_of(session, case, item_id, now)
    item, device = state.item, state.item.device
    assert device is not None
    if state.reset_done:
        raise Conflict(f"{device.asset_tag} has already been reset.", code="already_reset")
    if state.awaiting_reset:
        raise Conflict(
            f"A factory reset is on its way to {device.asset_tag} from Trolley: wait for the "
            "device to confirm it, or cancel it on the Commands page first.",
            code="reset_pending",
        )
    text = " ".join(evidence.split())
    if len(text) < MIN_EVIDENCE:
        raise ValidationFailed(
            "Describe the evidence, for example 'Activation Lock removed, device re-enrolled'.",
            details=[{"field": "evidence", "message": "Say what shows it was reset."}],
        )
    item.reset_at = now
    item.reset_source = ResetSource.EVIDENCE
    item.reset_evidence = text[:2000]
    item.reset_by_id = actor.id
    item.reset_by = actor
    # A reset device's old PIN, broker login and data are gone: the same as an acknowledged one.
    erasure = mark_reset_confirmed(session, device, now, ErasureSource.TECHNICIAN_EVIDENCE)
    erasure.evidence = text[:500]  # the disposal record shows who vouched for it, and how
    erasure.recorded_by_id = actor.id
    escrow.device_reset(session, device, now)
    revoke_identities(session, device, now=now, why="factory reset confirmed with evidence")
    add_event(
        session,
        device,
        kind="leaver_reset",
        summary=f"Factory reset confirmed by {actor.name} with evidence: {text[:300]}",
        actor=actor,
        details={"leaver_case": case.id},
    ).at = now
    _event(session, case, actor, f"{device.asset_tag}: factory reset confirmed with evidence", now)
    _trail(session, case, actor, "reset_confirmed", now, item=item.id, source="evidence")
    _check_ready(session, case, now)
    session.commit()
    return item


def remove_personal_device(
    session: Session, actor: User, case_id: int, item_id: int, *, now: datetime | None = None
) -> LeaverItem:
    """Take the leaver's own device out of the staff personal devices register."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_manager(actor)
    _open(case)
    item = _item(case, item_id, ItemKind.PERSONAL_DEVICE)
    if item.removed_at is not None:
        raise Conflict("That entry has already been removed from the register.")
    assert item.personal_device_id is not None
    try:
        personal_devices.remove(
            session,
            actor,
            item.personal_device_id,
            f"{case.leaver_name} left the school (leaver case {case.id})",
            commit=False,
        )
    except Conflict:
        pass  # removed in the register already; the case only needs to know it is gone
    except NotFound:
        pass  # the entry itself was deleted; there is nothing left to remove
    item.removed_at = now
    item.removed_by_id = actor.id
    item.removed_by = actor
    _event(session, case, actor, "Their own device was removed from the staff register", now)
    _trail(session, case, actor, "personal_device_removed", now, item=item.id)
    _check_ready(session, case, now)
    session.commit()
    return item


# --- what is on the case --------------------------------------------------------------------


def add_device(
    session: Session, actor: User, case_id: int, asset_tag: str, *, now: datetime | None = None
) -> LeaverItem:
    """Add a device the register did not know the leaver had."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_manager(actor)
    _open(case)
    tag = asset_tag.strip()
    device = _find_device(session, actor.school_id, tag) if tag else None
    if device is None:
        raise NotFound(f"No device {tag or '(no tag given)'} in your school's register.")
    if device.status is DeviceStatus.DISPOSED:
        raise ValidationFailed(f"{device.asset_tag} has been disposed of.")
    if any(i.device_id == device.id for i in case.items):
        raise Conflict(f"{device.asset_tag} is already on this case.", code="already_on_case")
    busy = _busy(session, [device.id], but=case.id)
    if busy:
        raise _busy_error(session, busy)
    item = _device_item(case, device, f"Added by {actor.name}", now)
    case.items.append(item)
    _flush_or_conflict(session)
    _unsign_helpers(session, case, now, f"{device.asset_tag} was added")
    _event(session, case, actor, f"{device.asset_tag} added to the case", now)
    _trail(session, case, actor, "device_added", now, item=item.id, device=device.asset_tag)
    session.commit()
    return item


def refresh(
    session: Session, actor: User, case_id: int, *, now: datetime | None = None
) -> list[LeaverItem]:
    """Look again at what the register, the loans and the personal register say."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_manager(actor)
    _open(case)
    if case.leaver is None:
        raise ValidationFailed(
            f"{case.leaver_name} has no Trolley account, so the register cannot say what they "
            "hold. Add devices by asset tag instead."
        )
    on_case = {i.device_id for i in case.items if i.device_id is not None}
    held = [h for h in held_by(session, case.leaver) if h.device.id not in on_case]
    busy = {d.id for d in _busy(session, [h.device.id for h in held], but=case.id)}
    added = [_device_item(case, h.device, h.source, now) for h in held if h.device.id not in busy]
    listed = {i.personal_device_id for i in case.items if i.personal_device_id is not None}
    added += _personal_items(session, case, case.leaver, now, skip=listed)
    case.items.extend(added)
    _flush_or_conflict(session)
    if added:
        _unsign_helpers(session, case, now, "more was found on a fresh look")
        _event(session, case, actor, f"Looked again: {len(added)} more item(s) added", now)
    else:
        _event(session, case, actor, "Looked again: nothing new", now)
    _trail(session, case, actor, "refreshed", now, added=len(added), skipped=len(busy))
    session.commit()
    return added


# --- sign-off and closing -------------------------------------------------------------------


def sign(session: Session, who: Who, case_id: int, *, now: datetime | None = None) -> LeaverCase:
    """The leaver, the line manager or the technician confirms; the last one closes the case."""
    now = now or utcnow()
    if isinstance(who, LinkAccess):
        case, part = _leaver_case(session, who, case_id), Signer.LEAVER
    else:
        case = get_case(session, who, case_id)
        parts = roles_on(case, who)
        if not parts:
            raise Forbidden("Only the leaver, their line manager and the technician sign off.")
        (part,) = parts
    _open(case)
    _note_resets(session, case, now)
    state = case_state(session, case, now=now)
    signed = {
        Signer.LEAVER: case.leaver_signed_at,
        Signer.LINE_MANAGER: case.line_manager_signed_at,
        Signer.TECHNICIAN: case.technician_signed_at,
    }[part]
    if signed is not None:
        raise Conflict(
            f"You signed this off at {when(signed, case.school)}.", code="already_signed"
        )
    if part is Signer.LEAVER:
        if state.leaver_to_do:
            raise Conflict(
                "Not yet: first give back and say how to reset "
                f"{_names(s.item for s in state.leaver_to_do)}.",
                code="open_items",
            )
        case.leaver_signed_at = now
        case.leaver_signed_via = "link" if isinstance(who, LinkAccess) else "account"
    else:
        if state.open_items:
            raise Conflict(
                f"Not yet: still open: {_names(s.item for s in state.open_items)}.",
                code="open_items",
            )
        if part is Signer.LINE_MANAGER:
            case.line_manager_signed_at = now
        else:
            case.technician_signed_at = now
    _event(session, case, who, f"Signed off as {part.label.lower()}", now)
    _trail(session, case, who, "signed", now, part=part.value)
    if (
        state.ready
        and case.leaver_signed_at
        and case.line_manager_signed_at
        and case.technician_signed_at
    ):
        _close(session, case, None, now, note="Closed when the last of the three signed off.")
    session.commit()
    return case


def close_case(
    session: Session, actor: User, case_id: int, *, now: datetime | None = None
) -> LeaverCase:
    """Close a case by hand: only with nothing open and all three sign-offs."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_manager(actor)
    _open(case)
    _note_resets(session, case, now)
    state = case_state(session, case, now=now)
    if state.open_items:
        session.commit()  # keep any resets just noted
        raise Conflict(
            f"The case cannot close with open items: {_names(s.item for s in state.open_items)}.",
            code="open_items",
        )
    missing = [part.label.lower() for part, _user, at in state.signatures() if at is None]
    if missing:
        session.commit()
        raise Conflict(
            f"The case cannot close until these sign off: {', '.join(missing)}.",
            code="sign_off_missing",
        )
    _close(session, case, actor, now, note=f"Closed by {actor.name}.")
    session.commit()
    return case


def _close(
    session: Session, case: LeaverCase, actor: User | None, now: datetime, *, note: str
) -> None:
    case.status = CaseStatus.CLOSED
    case.closed_at = now
    case.closed_by_id = actor.id if actor else None
    case.close_note = note[:500]
    case.link_token_hash = None  # the personal link stops working
    case.link_expires_at = None
    for item in case.items:
        item.settled_at = now
    _event(session, case, actor, f"Case closed. {note}", now)
    _trail(session, case, actor, "closed", now, note=note[:500])


# --- the personal link ----------------------------------------------------------------------


def _new_link(session: Session, case: LeaverCase, actor: User, base_url: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    case.link_token_hash = _token_hash(token)
    case.link_expires_at = _start_of(case.last_day + LINK_GRACE + timedelta(days=1), case.school)
    _event(session, case, actor, "A personal link was made for the leaver", now)
    _trail(session, case, actor, "link_issued", now, expires=case.link_expires_at.isoformat())
    path = f"/leavers/link/{token}"
    # Without an account this link is their only way in: it goes to them directly, not only
    # to whoever opened the case.
    notify_address(
        session,
        school_id=case.school_id,
        address=case.leaver_email,
        subject=f"Your leaving checklist for {case.school.name}",
        body=(
            f"Hello {case.leaver_name},\n\nBefore your last day ({case.last_day:%A %-d %B %Y}) "
            "please work through your leaving checklist: it lists the school devices Trolley "
            "says you hold and what to do with each (hand it back, and how its PIN or "
            "passcode reaches the technician).\n\nThe link below is personal to you: please "
            f"do not forward it. It stops working on {case.link_expires_at:%-d %B %Y}."
        ),
        link=path,
    )
    return f"{base_url.rstrip('/')}{path}"


def issue_link(
    session: Session, actor: User, case_id: int, *, base_url: str, now: datetime | None = None
) -> tuple[LeaverCase, str]:
    """A new personal link for the leaver (any earlier one stops working); shown once."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    _require_manager(actor)
    _open(case)
    link = _new_link(session, case, actor, base_url, now)
    session.commit()
    return case, link


# --- the last day ---------------------------------------------------------------------------


def escalate(session: Session, now: datetime) -> int:
    """Open items on and after the last day go to the headteacher, once per school day."""
    # Joins the caller's transaction (the scheduler commits).
    cases = session.scalars(
        select(LeaverCase)
        .where(
            LeaverCase.status == CaseStatus.OPEN,
            # Widened by a day so every time zone's "today" is covered; checked exactly below.
            LeaverCase.last_day <= (now + timedelta(days=1)).date(),
        )
        .options(
            joinedload(LeaverCase.school),
            selectinload(LeaverCase.items).joinedload(LeaverItem.device),
        )
    ).all()
    told = 0
    for case in cases:
        today = school_today(case.school, now)
        if today < case.last_day or case.escalated_on == today:
            continue
        _note_resets(session, case, now)
        state = case_state(session, case, now=now)
        if not state.open_items:
            continue
        heads = session.scalars(
            select(User).where(
                User.school_id == case.school_id,
                User.role == Role.HEADTEACHER,
                User.active.is_(True),
            )
        ).all()
        days = (today - case.last_day).days
        timing = "today is their last day" if days == 0 else f"their last day was {days} day(s) ago"
        lines = [f"- {s.item.description}: {s.next_step}" for s in state.open_items]
        notify(
            session,
            school_id=case.school_id,
            users=heads,
            kind="leaver_escalation",
            title=f"{case.leaver_name}: {len(state.open_items)} thing(s) still open ({timing})",
            body=f"{case.leaver_name}'s leaver case still has open items:\n" + "\n".join(lines),
            link=f"/leavers/{case.id}",
        )
        case.escalated_on = today
        _event(session, case, None, f"The headteacher was told: {len(state.open_items)} open", now)
        _trail(session, case, None, "escalated", now, open=len(state.open_items))
        told += 1
    return told


# --- home page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HomeCard:
    manager: bool
    open_cases: Sequence[LeaverCase]
    due_soon: Sequence[LeaverCase]
    overdue: Sequence[LeaverCase]
    mine: LeaverCase | None
    to_sign: Sequence[LeaverCase]


def home_card(session: Session, user: User, *, now: datetime | None = None) -> HomeCard:
    now = now or utcnow()
    today = school_today(user.school, now)
    manager = is_manager(user)
    open_cases: Sequence[LeaverCase] = []
    if manager:
        open_cases = session.scalars(
            select(LeaverCase)
            .where(LeaverCase.school_id == user.school_id, LeaverCase.status == CaseStatus.OPEN)
            .order_by(LeaverCase.last_day, LeaverCase.id)
        ).all()
    mine = session.scalar(
        select(LeaverCase).where(
            LeaverCase.school_id == user.school_id,
            LeaverCase.leaver_id == user.id,
            LeaverCase.status == CaseStatus.OPEN,
        )
    )
    to_sign = session.scalars(
        select(LeaverCase)
        .where(
            LeaverCase.school_id == user.school_id,
            LeaverCase.status == CaseStatus.OPEN,
            or_(
                and_(
                    LeaverCase.line_manager_id == user.id,
                    LeaverCase.line_manager_signed_at.is_(None),
                ),
                and_(
                    LeaverCase.technician_id == user.id,
                    LeaverCase.technician_signed_at.is_(None),
                ),
            ),
        )
        .order_by(LeaverCase.last_day)
    ).all()
    return HomeCard(
        manager=manager,
        open_cases=open_cases,
        due_soon=[c for c in open_cases if today <= c.last_day <= today + DUE_SOON],
        overdue=[c for c in open_cases if c.last_day < today],
        mine=mine,
        to_sign=to_sign,
    )
