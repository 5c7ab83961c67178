"""Lost and stolen devices: report, tell the headteacher at once, lock, assess, decide, close.

P-LOSS-1: a report tells the headteacher (and the data protection officer, if the school has
one) in the app and by e-mail in the same transaction as the report itself.
P-LOSS-2: each loss gets a breach assessment prefilled from what Trolley knows, and the
regulator's 72 hours run from awareness, with reminders at 24 and 48 hours and an overdue state;
a case closes only with a decision and its written justification, and stays in the breach log
whether or not it was reported (UK GDPR Art. 33(5)).
P-LOSS-3: lost mode with the school's return message is queued at once; a factory reset is
available, under the command engine's two-person rule.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from server.activity.services import record
from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event, change_status, get_device
from server.enrolment.services import active_identity
from server.errors import Conflict, Forbidden, NotFound, TrolleyError, ValidationFailed
from server.losses.models import (
    Decision,
    LossEvent,
    LossKind,
    LossReport,
    LossSettings,
    Outcome,
    RiskLevel,
)
from server.notifications import services as notifications
from server.notifications.models import EmailMessage, Notification
from server.schools.models import Location, School, Term

log = logging.getLogger(__name__)

# The regulator's window runs from awareness (UK GDPR Art. 33(1)).
CLOCK = timedelta(hours=72)
# (level, time since awareness): each reminder goes out once, the last one means overdue.
ESCALATIONS = ((1, timedelta(hours=24)), (2, timedelta(hours=48)), (3, CLOCK))
# A device on a poor connection can come and go; one "it is online" alert per half hour is enough.
ONLINE_ALERT_QUIET = timedelta(minutes=30)
NOT_ENROLLED = "Lost mode not possible: device not enrolled"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOST_MODE_LABELS = {
    "pending": "Pending: waiting for the device to collect it",
    "active": "Active: the device is locked and shows the return message",
    "turning_off": "Turning off: waiting for the device",
    "off": "Off",
    "failed": "Not confirmed",
    "not_possible": NOT_ENROLLED,
    "none": "Not asked for",
}


# --- small helpers ------------------------------------------------------------------------


def school_zone(school: School) -> ZoneInfo:
    try:
        return ZoneInfo(school.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/London")


def local(moment: datetime, school: School) -> datetime:
    """A stored UTC time as the school's clocks show it."""
    return moment.astimezone(school_zone(school))


def from_local(naive: datetime, school: School) -> datetime:
    """A time typed on the school's clocks (a form's date and time) as an aware UTC time."""
    return naive.replace(tzinfo=school_zone(school)).astimezone(UTC)


def when(moment: datetime | None, school: School) -> str:
    """'10:42 on Tue 3 Mar 2026' in the school's own time."""
    if moment is None:
        return "—"
    at = local(moment, school)
    return f"{at:%H:%M} on {at:%a} {at.day} {at:%b %Y}"


def duration(delta: timedelta, *, in_days: bool = False) -> str:
    """'71 h 5 min' or '40 min' for a span of time (sign ignored); '2 days 3 h' if `in_days`."""
    minutes = int(abs(delta).total_seconds() // 60)
    hours, mins = divmod(minutes, 60)
    if in_days and hours >= 24:
        days, hours = divmod(hours, 24)
        return f"{days} day{'s' if days != 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def _clean(text: str | None) -> str:
    return (text or "").strip()


def _require_manager(actor: User) -> None:
    if not has_permission(actor.role, Permission.LOSSES_MANAGE):
        raise Forbidden("Only the headteacher assesses and decides on a loss.")


def _require_open(loss: LossReport) -> None:
    if not loss.is_open:
        raise Conflict(
            f"Loss report {loss.id} is closed; it is kept as a record and cannot change."
        )


def _event(
    session: Session,
    loss: LossReport,
    *,
    kind: str,
    summary: str,
    actor: User | None,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> LossEvent:
    event = LossEvent(
        loss_id=loss.id,
        at=at,
        kind=kind,
        summary=summary[:1000],
        actor_id=actor.id if actor else None,
        details=details or {},
    )
    session.add(event)
    return event


def _audit(
    session: Session, actor: User | None, loss: LossReport, action: str, **details: Any
) -> None:
    record(
        session,
        actor=actor,
        action=f"loss.{action}",
        school_id=loss.school_id,
        target_type="loss",
        target_id=loss.id,
        details={"asset_tag": loss.device.asset_tag, **details},
    )


# --- the clock ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """The 72 hours from awareness, and where the case stands against them."""

    aware_at: datetime
    deadline: datetime
    stopped_at: datetime | None
    now: datetime

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @property
    def remaining(self) -> timedelta:
        return self.deadline - (self.stopped_at or self.now)

    @property
    def overdue(self) -> bool:
        return self.running and self.now >= self.deadline

    @property
    def met(self) -> bool | None:
        """Whether the decision came inside the 72 hours (None while the clock runs)."""
        return None if self.stopped_at is None else self.stopped_at <= self.deadline

    @property
    def stage(self) -> str:
        """'stopped', 'running', '24h', '48h' or 'overdue' (for styling and the API)."""
        if not self.running:
            return "stopped"
        gone = self.now - self.aware_at
        for name, after in (("overdue", CLOCK), ("48h", timedelta(hours=48))):
            if gone >= after:
                return name
        return "24h" if gone >= timedelta(hours=24) else "running"

    @property
    def text(self) -> str:
        if self.stopped_at is not None:
            if self.met:
                return f"Decided with {duration(self.remaining)} to spare"
            return f"Decided {duration(self.remaining)} after the 72 hours ran out"
        if self.overdue:
            return f"Overdue by {duration(self.remaining)}"
        return f"{duration(self.remaining)} left"


def clock_stopped_at(loss: LossReport) -> datetime | None:
    """Deciding not to report, or reporting to the ICO, stops the clock."""
    if loss.decision is Decision.NO_REPORT:
        return loss.decided_at
    if loss.decision is Decision.REPORT:
        return loss.ico_reported_at
    return None


def clock(loss: LossReport, now: datetime | None = None) -> Clock:
    return Clock(loss.aware_at, loss.aware_at + CLOCK, clock_stopped_at(loss), now or utcnow())


def _due_level(loss: LossReport, now: datetime) -> int:
    gone = now - loss.aware_at
    return max((level for level, after in ESCALATIONS if gone >= after), default=0)


# --- settings: the data protection officer ----------------------------------------------


def get_settings(session: Session, school_id: int) -> LossSettings | None:
    return session.get(LossSettings, school_id)


def dpo_email(session: Session, school_id: int) -> str | None:
    settings = get_settings(session, school_id)
    return settings.dpo_email if settings else None


def update_settings(session: Session, actor: User, *, dpo_email: str | None) -> LossSettings:
    """Set or clear the data protection officer's e-mail address."""
    _require_manager(actor)
    address = _clean(dpo_email).lower() or None
    if address is not None and (len(address) > 254 or not EMAIL_RE.match(address)):
        raise ValidationFailed(
            "Enter the data protection officer's e-mail address, such as dpo@school.example.",
            details=[{"field": "dpo_email", "message": "not an e-mail address"}],
        )
    settings = get_settings(session, actor.school_id)
    if settings is None:
        settings = LossSettings(school_id=actor.school_id)
        session.add(settings)
    before = settings.dpo_email
    settings.dpo_email = address
    settings.updated_by_id = actor.id
    settings.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="loss.settings_changed",
        school_id=actor.school_id,
        target_type="school",
        target_id=actor.school_id,
        details={"dpo_email": [before, address]},
    )
    session.commit()
    return settings


def _email_address(
    session: Session, loss: LossReport, address: str, subject: str, body: str
) -> EmailMessage:
    """Queue an e-mail to a bare address, sent and retried by the worker (joins the transaction)."""
    from server.notifications.services import notify_address

    return notify_address(
        session,
        school_id=loss.school_id,
        address=address,
        subject=" ".join(subject.split())[:200],
        body=body,
        link=loss.link,
    )


# --- who is told ----------------------------------------------------------------------------


def _heads(session: Session, school_id: int) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(
                User.school_id == school_id,
                User.active.is_(True),
                User.role == Role.HEADTEACHER,
            )
            .order_by(User.id)
        )
    )


def _tell_heads(
    session: Session, loss: LossReport, *, kind: str, title: str, body: str, dpo: bool, at: datetime
) -> None:
    """The headteacher in the app and by e-mail, and the DPO by e-mail if asked and set."""
    heads = _heads(session, loss.school_id)
    if heads:
        notifications.notify(
            session,
            school_id=loss.school_id,
            users=heads,
            kind=kind,
            title=title,
            body=body,
            link=loss.link,
        )
    else:
        # Nobody may go untold: with no headteacher account, the SBM and administrators are.
        told = notifications.notify_roles(
            session,
            school_id=loss.school_id,
            roles=[Role.SBM, Role.ADMIN],
            kind=kind,
            title=title,
            body=body,
            link=loss.link,
        )
        _event(
            session,
            loss,
            kind="no_head",
            summary="No headteacher account is active, so "
            f"{len(told)} other member{'s' if len(told) != 1 else ''} of staff "
            "(SBM and administrators) were told instead.",
            actor=None,
            at=at,
        )
    address = dpo_email(session, loss.school_id) if dpo else None
    if address:
        _email_address(session, loss, address, title, body)


def _alert_people(session: Session, loss: LossReport) -> list[User]:
    people = _heads(session, loss.school_id)
    reporter = loss.reported_by
    if reporter is not None and reporter.active and reporter.school_id == loss.school_id:
        people.append(reporter)
    return people


# --- lost mode -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LostMode:
    """Lost mode as the report shows it: pending → active, from the command's own status."""

    state: str
    command: Command | None = None

    @property
    def label(self) -> str:
        text = LOST_MODE_LABELS[self.state]
        if self.state == "failed" and self.command is not None:
            reason = self.command.detail or self.command.status.label
            return f"{text}: {reason}"
        return text


def _case_commands(session: Session, loss: LossReport) -> Sequence[Command]:
    """Commands to the device while the case was open, and those the case itself asked for."""
    asked = [
        e.details["cmd_id"]
        for e in _events(session, loss)
        if isinstance(e.details, dict) and e.details.get("cmd_id")
    ]
    window = Command.created_at >= loss.reported_at
    if loss.closed_at is not None:
        window = window & (Command.created_at <= loss.closed_at)
    return session.scalars(
        select(Command)
        .where(
            Command.school_id == loss.school_id,
            Command.device_id == loss.device_id,
            or_(window, Command.cmd_id.in_(asked)),
        )
        .options(joinedload(Command.requested_by), joinedload(Command.approved_by))
        .order_by(Command.created_at, Command.id)
    ).all()


def lost_mode(session: Session, loss: LossReport) -> LostMode:
    latest = None
    for command in _case_commands(session, loss):
        if command.type == "lost_mode":
            latest = command
    if latest is None:
        return LostMode("not_possible" if loss.lost_mode_note else "none")
    enabled = bool(latest.args.get("enabled"))
    status = latest.status
    if status is CommandStatus.DONE:
        return LostMode("active" if enabled else "off", latest)
    if not status.finished:
        return LostMode("pending" if enabled else "turning_off", latest)
    return LostMode("failed", latest)


def _queue_lost_mode(
    session: Session, actor: User | None, loss: LossReport, *, enabled: bool, now: datetime
) -> Command | None:
    """Ask the device to lock with the return message (or unlock); None if it cannot be reached."""
    device = loss.device
    if active_identity(session, device) is None:
        if enabled:
            loss.lost_mode_note = NOT_ENROLLED
            _event(session, loss, kind="lost_mode", summary=f"{NOT_ENROLLED}.", actor=None, at=now)
        return None
    school = session.get(School, loss.school_id)
    assert school is not None
    args: dict[str, Any] = {"enabled": enabled}
    if enabled:
        args["message"] = school.return_message
    try:
        with session.begin_nested():
            (command,) = commands.issue(
                session,
                actor,
                [device],
                "lost_mode",
                args,
                reason=f"Loss report {loss.id}",
                now=now,
                commit=False,
            )
    except TrolleyError as exc:
        if enabled:
            loss.lost_mode_note = f"Lost mode not possible: {exc.message}"[:300]
            _event(session, loss, kind="lost_mode", summary=loss.lost_mode_note, actor=None, at=now)
        return None
    if enabled:
        loss.lost_mode_note = None
    _event(
        session,
        loss,
        kind="lost_mode",
        summary="Lost mode asked for, with the school's return message"
        if enabled
        else "Lost mode off asked for, now the device is back",
        actor=actor,
        at=now,
        details={"cmd_id": command.cmd_id},
    )
    return command


# --- reporting -------------------------------------------------------------------------------


def open_loss_for(session: Session, device: Device) -> LossReport | None:
    return session.scalar(
        select(LossReport).where(LossReport.device_id == device.id, LossReport.closed_at.is_(None))
    )


def report_loss(
    session: Session,
    actor: User,
    *,
    asset_tag: str,
    kind: LossKind,
    last_seen_at: datetime,
    last_seen_where: str,
    circumstances: str,
    police_reference: str | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Report a device lost or stolen: status changes, lost mode is queued, the head is told."""
    now = now or utcnow()
    device = get_device(session, actor.school_id, _clean(asset_tag))
    if device.status is DeviceStatus.DISPOSED:
        raise ValidationFailed(
            f"{device.asset_tag} was disposed of, so it cannot be reported lost or stolen. "
            "Check the asset tag on the label."
        )
    existing = open_loss_for(session, device)
    if existing is not None:
        raise Conflict(
            f"{device.asset_tag} already has an open loss report (number {existing.id}), made "
            f"{when(existing.reported_at, actor.school)}. Add to that one instead.",
            details={"loss_id": existing.id},
        )
    where, what, police = _clean(last_seen_where), _clean(circumstances), _clean(police_reference)
    problems = []
    if last_seen_at.tzinfo is None:
        raise ValidationFailed("Give the time the device was last seen with its time zone.")
    if last_seen_at > now:
        problems.append(("last_seen_at", "When the device was last seen cannot be in the future."))
    if not where:
        problems.append(("last_seen_where", "Say where the device was last seen."))
    elif len(where) > 200:
        problems.append(
            ("last_seen_where", "Say where it was last seen in 200 characters or fewer.")
        )
    if not what:
        problems.append(("circumstances", "Say what happened, as far as you know."))
    elif len(what) > 4000:
        problems.append(("circumstances", "Keep what happened to 4,000 characters or fewer."))
    if len(police) > 64:
        problems.append(("police_reference", "A crime reference has 64 characters or fewer."))
    if problems:
        raise ValidationFailed(
            " ".join(message for _field, message in problems),
            details=[{"field": f, "message": m} for f, m in problems],
        )
    loss = LossReport(
        school_id=device.school_id,
        device=device,
        kind=kind,
        reported_by=actor,
        reported_at=now,
        last_seen_at=last_seen_at,
        last_seen_where=where,
        circumstances=what,
        police_reference=police or None,
        aware_at=now,
        escalation_level=0,
        facts={},
    )
    try:
        with session.begin_nested():
            session.add(loss)
            session.flush()
    except IntegrityError as exc:
        # Someone reported the same device a moment ago (the open-case index says so).
        raise Conflict(f"{device.asset_tag} has just been reported by someone else.") from exc
    target = DeviceStatus.STOLEN if kind is LossKind.STOLEN else DeviceStatus.LOST
    # A stolen device stays stolen even if someone later reports it merely lost.
    if device.status is not target and device.status is not DeviceStatus.STOLEN:
        change_status(
            session,
            actor,
            device,
            target,
            f"Reported {kind.value} by {actor.name} (loss report {loss.id})",
            commit=False,
        )
    _event(
        session,
        loss,
        kind="reported",
        summary=f"Reported {kind.value} by {actor.name}. Last seen {where}, "
        f"{when(last_seen_at, actor.school)}. {what}",
        actor=actor,
        at=now,
    )
    command = _queue_lost_mode(session, actor, loss, enabled=True, now=now)
    title = f"{device.asset_tag} reported {kind.value}"
    lost_mode_line = (
        "Lost mode has been sent: the device will lock and show the school's return message."
        if command is not None
        else f"{loss.lost_mode_note}."
    )
    body = (
        f"{actor.name} reported {device.asset_tag} ({device.make} {device.model}) {kind.value} "
        f"at {when(now, actor.school)}.\n\n"
        f"Last seen: {where}, {when(last_seen_at, actor.school)}.\n"
        f"What happened: {what}\n"
        + (f"Police crime reference: {police}\n" if police else "")
        + f"\n{lost_mode_line}\n\n"
        f"The school has 72 hours from becoming aware, until {when(now + CLOCK, actor.school)}, "
        "to decide whether this must be reported to the Information Commissioner's Office. "
        "Open the report to assess the risk and record the decision."
    )
    _tell_heads(session, loss, kind="loss.reported", title=title, body=body, dpo=True, at=now)
    _audit(session, actor, loss, "reported", kind=kind.value, lost_mode=command is not None)
    session.commit()
    log.info("loss %s reported for %s by user %s", loss.id, device.asset_tag, actor.id)
    return loss


# --- reading ---------------------------------------------------------------------------------


def get_loss(session: Session, actor: User, loss_id: int) -> LossReport:
    """One case in the actor's school; staff who are not the headteacher see only their own."""
    loss = session.scalar(
        select(LossReport)
        .where(LossReport.id == loss_id, LossReport.school_id == actor.school_id)
        .options(joinedload(LossReport.device), joinedload(LossReport.reported_by))
    )
    if loss is None or not (
        has_permission(actor.role, Permission.LOSSES_MANAGE) or loss.reported_by_id == actor.id
    ):
        raise NotFound("We could not find that loss report.")
    return loss


def list_losses(
    session: Session, actor: User, *, open_only: bool = False, limit: int = 500
) -> Sequence[LossReport]:
    """The breach log for the headteacher (every loss, kept for good); others see their own."""
    query = select(LossReport).where(LossReport.school_id == actor.school_id)
    if not has_permission(actor.role, Permission.LOSSES_MANAGE):
        query = query.where(LossReport.reported_by_id == actor.id)
    if open_only:
        query = query.where(LossReport.closed_at.is_(None))
    return session.scalars(
        query.options(joinedload(LossReport.device), joinedload(LossReport.reported_by))
        .order_by(LossReport.reported_at.desc(), LossReport.id.desc())
        .limit(limit)
    ).all()


def _events(session: Session, loss: LossReport) -> Sequence[LossEvent]:
    return session.scalars(
        select(LossEvent)
        .where(LossEvent.loss_id == loss.id)
        .options(joinedload(LossEvent.actor))
        .order_by(LossEvent.at, LossEvent.id)
    ).all()


def deliveries(session: Session, loss: LossReport) -> Sequence[EmailMessage]:
    """Every e-mail about this case with every attempt to send it (P-LOSS-1)."""
    return session.scalars(
        select(EmailMessage)
        .where(EmailMessage.school_id == loss.school_id, EmailMessage.link == loss.link)
        .options(selectinload(EmailMessage.attempt_log))
        .order_by(EmailMessage.id)
    ).all()


def notices(session: Session, loss: LossReport) -> list[tuple[Notification, str]]:
    """In-app notifications about this case, with whom each went to."""
    rows = session.execute(
        select(Notification, User.name)
        .join(User, User.id == Notification.user_id)
        .where(Notification.school_id == loss.school_id, Notification.link == loss.link)
        .order_by(Notification.id)
    ).all()
    return [(notice, name) for notice, name in rows]


@dataclass(frozen=True)
class Facts:
    """What Trolley knows that bears on the risk to people (prefills the assessment)."""

    photo_count: int | None
    photo_count_at: datetime | None
    photos: str
    last_check_in: datetime | None
    profile_name: str | None
    passcode: str
    restrictions: list[str]
    lost_mode: str
    enrolled: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "photo_count": self.photo_count,
            "photo_count_at": self.photo_count_at.isoformat() if self.photo_count_at else None,
            "photos": self.photos,
            "last_check_in": self.last_check_in.isoformat() if self.last_check_in else None,
            "profile_name": self.profile_name,
            "passcode": self.passcode,
            "restrictions": list(self.restrictions),
            "lost_mode": self.lost_mode,
            "enrolled": self.enrolled,
        }


def _profile_facts(session: Session, device: Device) -> tuple[str | None, str, list[str]]:
    """Passcode and restrictions from the device's profile, if the profiles domain is here."""
    try:
        from server.profiles.services import loaded, resolve
    except ImportError:
        return None, "Unknown: restriction profiles are not set up", []
    resolution = resolve(session, device)
    if resolution.profile_version is None:
        return None, "Unknown: no restriction profile applies to this device", []
    profile = loaded(resolution.profile_version)
    passcode = profile.passcode
    if passcode.required:
        length = f" (at least {passcode.min_length} characters)" if passcode.min_length else ""
        passcode_text = f"Required by the profile{length}"
    else:
        passcode_text = "Not required by the profile"
    rules = [f"Locks itself after {profile.device.auto_lock_minutes} minutes idle"]
    blocked = {
        "Camera": profile.device.camera,
        "Screenshots": profile.device.screenshots,
        "AirDrop": profile.device.airdrop,
        "Installing apps": profile.apps.installation,
    }
    rules += [f"{name} blocked" for name, access in blocked.items() if access == "blocked"]
    if profile.apps.allow_list is not None:
        rules.append(f"Only {len(profile.apps.allow_list)} approved apps can be opened")
    if profile.device.wipe_photos_on_return:
        rules.append("Photos wiped when it goes back in its trolley")
    if profile.web_filter.mode != "none":
        rules.append("Web filter: " + profile.web_filter.mode.value.replace("_", " "))
    if profile.kiosk is not None:
        rules.append("Locked to a single app or web page")
    return resolution.profile_name, passcode_text, rules


def known_facts(session: Session, loss: LossReport) -> Facts:
    device = loss.device
    if device.photo_count is None:
        photos = "Unknown: the device has never reported how many photos it holds"
    else:
        at = device.photo_count_at
        age = ""
        if at is not None:
            gap = loss.reported_at - at
            age = (
                f", reported {duration(gap, in_days=True)} before the loss was reported"
                if gap >= timedelta(0)
                else ", reported after the loss was reported"
            )
        photos = f"{device.photo_count} photo{'s' if device.photo_count != 1 else ''}{age}"
    profile_name, passcode, rules = _profile_facts(session, device)
    return Facts(
        photo_count=device.photo_count,
        photo_count_at=device.photo_count_at,
        photos=photos,
        last_check_in=device.last_seen_at,
        profile_name=profile_name,
        passcode=passcode,
        restrictions=rules,
        lost_mode=lost_mode(session, loss).label,
        enrolled=active_identity(session, device) is not None,
    )


def suggested_personal_data(facts: Facts) -> str:
    """A starting point for 'what personal data could be on it', for the head to correct."""
    lines = [f"Photos from lessons: {facts.photos}."]
    lines.append(f"Passcode: {facts.passcode}.")
    if facts.restrictions:
        lines.append("Restrictions: " + "; ".join(facts.restrictions) + ".")
    lines.append(f"Lost mode: {facts.lost_mode}.")
    return " ".join(lines)


@dataclass(frozen=True)
class Case:
    """Everything the report page and the API show about one loss."""

    loss: LossReport
    clock: Clock
    lost_mode: LostMode
    facts: Facts
    deliveries: Sequence[EmailMessage]
    notices: list[tuple[Notification, str]]
    commands: Sequence[Command]
    events: Sequence[LossEvent]
    notes: list[str] = field(default_factory=list)


def case(session: Session, loss: LossReport, now: datetime | None = None) -> Case:
    now = now or utcnow()
    facts = known_facts(session, loss)
    notes = []
    if loss.outcome is Outcome.FOUND:
        notes.append(
            "The device is back. Wipe its photos and check its condition (case on, screen "
            "intact) before it goes back into use."
        )
    if loss.risk is RiskLevel.HIGH and loss.decision is Decision.REPORT:
        notes.append(
            "High risk: the people affected must also be told without undue delay "
            "(UK GDPR Art. 34)."
        )
    if loss.decision is Decision.REPORT and loss.ico_reference is None:
        notes.append("Record the ICO's reference once the report has been made.")
    return Case(
        loss=loss,
        clock=clock(loss, now),
        lost_mode=lost_mode(session, loss),
        facts=facts,
        deliveries=deliveries(session, loss),
        notices=notices(session, loss),
        commands=_case_commands(session, loss),
        events=_events(session, loss),
        notes=notes,
    )


def _open(session: Session, school_id: int) -> Sequence[LossReport]:
    return session.scalars(
        select(LossReport)
        .where(LossReport.school_id == school_id, LossReport.closed_at.is_(None))
        .options(joinedload(LossReport.device))
        .order_by(LossReport.aware_at)
    ).all()


def open_losses(
    session: Session, school_id: int, now: datetime | None = None
) -> list[tuple[LossReport, Clock]]:
    """Open cases with their clocks, the most urgent first (the headteacher's home card)."""
    now = now or utcnow()
    return [(loss, clock(loss, now)) for loss in _open(session, school_id)]


# --- the headteacher's assessment and decision (P-LOSS-2) -----------------------------------


def assess(
    session: Session,
    actor: User,
    loss: LossReport,
    *,
    personal_data: str,
    risk: RiskLevel,
    risk_notes: str,
    now: datetime | None = None,
) -> LossReport:
    """Record the breach assessment: Trolley's facts as they stand, and the head's judgement."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    data, notes = _clean(personal_data), _clean(risk_notes)
    problems = []
    if not data:
        problems.append(("personal_data", "Say what personal data could be on the device."))
    if not notes:
        problems.append(("risk_notes", "Explain your judgement of the risk to people."))
    if problems:
        raise ValidationFailed(
            " ".join(m for _f, m in problems),
            details=[{"field": f, "message": m} for f, m in problems],
        )
    facts = known_facts(session, loss)
    loss.facts = facts.as_dict()
    loss.personal_data = data[:4000]
    loss.risk = risk
    loss.risk_notes = notes[:4000]
    loss.assessed_at = now
    loss.assessed_by_id = actor.id
    _event(
        session,
        loss,
        kind="assessed",
        summary=f"Breach assessment: {risk.label.lower()}. {notes}",
        actor=actor,
        at=now,
        details={"risk": risk.value, "facts": loss.facts},
    )
    _audit(session, actor, loss, "assessed", risk=risk.value)
    session.commit()
    return loss


def change_awareness(
    session: Session,
    actor: User,
    loss: LossReport,
    aware_at: datetime,
    reason: str,
    *,
    now: datetime | None = None,
) -> LossReport:
    """Move the start of the 72 hours, with the reason; never to a time still to come."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    why = _clean(reason)
    if aware_at.tzinfo is None:
        raise ValidationFailed("Give the time the school became aware with its time zone.")
    if aware_at > now:
        raise ValidationFailed(
            "The time the school became aware cannot be in the future.",
            details=[{"field": "aware_at", "message": "in the future"}],
        )
    if aware_at < loss.last_seen_at:
        raise ValidationFailed(
            "The school cannot have become aware of the loss before the device was last seen "
            f"({when(loss.last_seen_at, actor.school)}).",
            details=[{"field": "aware_at", "message": "before the device was last seen"}],
        )
    if not why:
        raise ValidationFailed(
            "Say why the time of awareness is changing; it is part of the record.",
            details=[{"field": "reason", "message": "a reason is needed"}],
        )
    before = loss.aware_at
    loss.aware_at = aware_at
    # Reminders already sent stay sent; a later start means the next ones are due again later.
    loss.escalation_level = min(loss.escalation_level, _due_level(loss, now))
    _event(
        session,
        loss,
        kind="awareness",
        summary=f"Time of awareness changed from {when(before, actor.school)} to "
        f"{when(aware_at, actor.school)}: {why}",
        actor=actor,
        at=now,
        details={"from": before.isoformat(), "to": aware_at.isoformat(), "reason": why},
    )
    _audit(
        session,
        actor,
        loss,
        "awareness_changed",
        **{"from": before.isoformat(), "to": aware_at.isoformat(), "reason": why},
    )
    session.commit()
    return loss


def decide(
    session: Session,
    actor: User,
    loss: LossReport,
    *,
    report_to_ico: bool,
    justification: str,
    ico_reference: str | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Record whether the loss is reported to the ICO, and why; required before closing."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    why, reference = _clean(justification), _clean(ico_reference)
    if loss.risk is None:
        raise ValidationFailed(
            "Record the breach assessment first: the decision rests on your judgement of the risk."
        )
    if not why:
        raise ValidationFailed(
            "Write down why you decided this; the justification is kept in the breach log.",
            details=[{"field": "justification", "message": "a justification is needed"}],
        )
    if not report_to_ico and loss.risk is not RiskLevel.UNLIKELY:
        raise ValidationFailed(
            "You judged that this loss is likely to result in a risk to people, so it must be "
            "reported to the ICO. Change the assessment first if the risk is unlikely.",
            details=[{"field": "decision", "message": "a risk to people must be reported"}],
        )
    if reference and not report_to_ico:
        raise ValidationFailed("An ICO reference only goes with a decision to report.")
    if len(reference) > 64:
        raise ValidationFailed("An ICO reference has 64 characters or fewer.")
    decision = Decision.REPORT if report_to_ico else Decision.NO_REPORT
    loss.decision = decision
    loss.justification = why[:4000]
    loss.decided_at = now
    loss.decided_by_id = actor.id
    if decision is Decision.NO_REPORT:
        loss.ico_reference = None
        loss.ico_reported_at = None
    elif reference:
        loss.ico_reference = reference
        loss.ico_reported_at = now
    _event(
        session,
        loss,
        kind="decided",
        summary=f"Decision: {decision.label[0].lower()}{decision.label[1:]}. {why}",
        actor=actor,
        at=now,
        details={"decision": decision.value, "ico_reference": reference or None},
    )
    if reference:
        _event(
            session,
            loss,
            kind="ico_reported",
            summary=f"Reported to the ICO, reference {reference}",
            actor=actor,
            at=now,
        )
    _audit(session, actor, loss, "decided", decision=decision.value, justification=why)
    session.commit()
    return loss


def record_ico_report(
    session: Session,
    actor: User,
    loss: LossReport,
    reference: str,
    *,
    reported_at: datetime | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Record the ICO's reference once the report has been made; this stops the clock."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    reference = _clean(reference)
    reported_at = reported_at or now
    if loss.decision is not Decision.REPORT:
        raise ValidationFailed("Decide to report the loss to the ICO before recording a reference.")
    if not reference or len(reference) > 64:
        raise ValidationFailed(
            "Enter the reference the ICO gave you (64 characters or fewer).",
            details=[{"field": "reference", "message": "a reference is needed"}],
        )
    if reported_at.tzinfo is None or reported_at > now:
        raise ValidationFailed("The time of the report to the ICO cannot be in the future.")
    loss.ico_reference = reference
    loss.ico_reported_at = reported_at
    _event(
        session,
        loss,
        kind="ico_reported",
        summary=f"Reported to the ICO at {when(reported_at, actor.school)}, reference {reference}",
        actor=actor,
        at=now,
    )
    _audit(session, actor, loss, "ico_reported", reference=reference)
    session.commit()
    return loss


# --- remote actions ---------------------------------------------------------------------------


def retry_lost_mode(
    session: Session, actor: User, loss: LossReport, *, now: datetime | None = None
) -> Command:
    """Ask for lost mode again (the device was enrolled since, or the last try expired)."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    state = lost_mode(session, loss).state
    if state in ("pending", "active"):
        raise Conflict("Lost mode is already " + ("on." if state == "active" else "on its way."))
    command = _queue_lost_mode(session, actor, loss, enabled=True, now=now)
    if command is None:
        raise ValidationFailed(
            f"{loss.lost_mode_note}. Enrol the device in Trolley first, then try again."
        )
    _audit(session, actor, loss, "lost_mode")
    session.commit()
    return command


def request_factory_reset(
    session: Session,
    actor: User,
    loss: LossReport,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Command:
    """Ask for a remote factory reset; a second person must approve it before it is sent."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    waiting = [
        c
        for c in _case_commands(session, loss)
        if c.type == "factory_reset" and not c.status.finished
    ]
    if waiting:
        raise Conflict("A factory reset has already been asked for and is not finished yet.")
    why = _clean(reason)
    (command,) = commands.issue(
        session,
        actor,
        [loss.device],
        "factory_reset",
        {},
        reason=f"Loss report {loss.id}" + (f": {why}" if why else ""),
        now=now,
        commit=False,
    )
    _event(
        session,
        loss,
        kind="factory_reset",
        summary="Factory reset asked for; it waits for a second person to approve it"
        + (f". {why}" if why else ""),
        actor=actor,
        at=now,
        details={"cmd_id": command.cmd_id},
    )
    notifications.notify_roles(
        session,
        school_id=loss.school_id,
        roles=[Role.TECHNICIAN],
        kind="loss.factory_reset",
        title=f"Factory reset of {loss.device.asset_tag} needs your approval",
        body=f"{actor.name} asked for a remote factory reset of {loss.device.asset_tag}, "
        f"reported {loss.kind.value}. It is sent once someone else approves it.",
        link="/commands",
    )
    _audit(session, actor, loss, "factory_reset_requested", reason=why)
    session.commit()
    return command


def wipe_photos(
    session: Session, actor: User, loss: LossReport, *, now: datetime | None = None
) -> Command:
    """After a device is found: wipe the photos it may have gathered while away."""
    now = now or utcnow()
    _require_manager(actor)
    if loss.outcome is not Outcome.FOUND:
        raise ValidationFailed("Photos are wiped from here once the device has been found.")
    (command,) = commands.issue(
        session,
        actor,
        [loss.device],
        "wipe_photos",
        {},
        reason=f"Loss report {loss.id}: found",
        now=now,
        commit=False,
    )
    _event(
        session,
        loss,
        kind="wipe_photos",
        summary="Photo wipe asked for, now the device is back",
        actor=actor,
        at=now,
        details={"cmd_id": command.cmd_id},
    )
    _audit(session, actor, loss, "wipe_photos")
    session.commit()
    return command


# --- closing -----------------------------------------------------------------------------------


def _write_off(session: Session, actor: User, device: Device, reference: str) -> None:
    """Mark the device written off so it may go to disposal (the disposals domain, if present)."""
    try:
        from server.disposals.services import record_write_off
    except ImportError:
        add_event(
            session,
            device,
            kind="written_off",
            summary=f"Written off: {reference}",
            actor=actor,
            details={"reference": reference},
        )
        return
    record_write_off(session, actor, device, reference)


def close(
    session: Session,
    actor: User,
    loss: LossReport,
    outcome: Outcome,
    *,
    reference: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Close the case as found, stolen or written off; only with a decision on the ICO."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    reference, note = _clean(reference), _clean(note)
    if loss.decision is None:
        raise ValidationFailed(
            "A case cannot close without a decision on reporting to the ICO. Record the breach "
            "assessment and the decision, with its justification, first."
        )
    if loss.decision is Decision.REPORT and not loss.ico_reference:
        raise ValidationFailed(
            "You decided to report this loss to the ICO: record the ICO's reference before "
            "closing the case."
        )
    if outcome is Outcome.STOLEN:
        reference = reference or (loss.police_reference or "")
        if not reference:
            raise ValidationFailed(
                "Enter the police crime reference for a stolen device.",
                details=[{"field": "reference", "message": "a crime reference is needed"}],
            )
    if outcome is Outcome.WRITTEN_OFF and not reference:
        raise ValidationFailed(
            "Enter the insurance (or loss) reference for the write-off.",
            details=[{"field": "reference", "message": "an insurance reference is needed"}],
        )
    if len(reference) > 100:
        raise ValidationFailed("A reference has 100 characters or fewer.")
    device = loss.device
    if outcome is Outcome.FOUND:
        if device.status in (DeviceStatus.LOST, DeviceStatus.STOLEN):
            change_status(
                session,
                actor,
                device,
                DeviceStatus.IN_SERVICE,
                f"Found (loss report {loss.id})" + (f": {note}" if note else ""),
                commit=False,
            )
    elif outcome is Outcome.STOLEN:
        loss.police_reference = reference[:64]
        if device.status is DeviceStatus.LOST:
            change_status(
                session,
                actor,
                device,
                DeviceStatus.STOLEN,
                f"Stolen, crime reference {reference} (loss report {loss.id})",
                commit=False,
            )
    else:
        _write_off(session, actor, device, reference)
    loss.outcome = outcome
    loss.outcome_reference = reference or None
    loss.outcome_note = note or None
    loss.closed_at = now
    loss.closed_by_id = actor.id
    summary = {
        Outcome.FOUND: "Closed: found and back in service. Wipe its photos and check its "
        "condition before it is used again.",
        Outcome.STOLEN: f"Closed: stolen, police crime reference {reference}.",
        Outcome.WRITTEN_OFF: f"Closed: written off, insurance reference {reference}. The device "
        "can now go to disposal.",
    }[outcome]
    _event(
        session,
        loss,
        kind="closed",
        summary=summary + (f" {note}" if note else ""),
        actor=actor,
        at=now,
        details={"outcome": outcome.value, "reference": reference or None},
    )
    if outcome is Outcome.FOUND:
        _queue_lost_mode(session, actor, loss, enabled=False, now=now)
    if loss.reported_by is not None and loss.reported_by.active:
        notifications.notify(
            session,
            school_id=loss.school_id,
            users=[loss.reported_by],
            kind="loss.closed",
            title=f"Loss of {device.asset_tag} closed: {outcome.label.lower()}",
            body=summary,
            link=loss.link,
            email=False,
        )
    _audit(session, actor, loss, "closed", outcome=outcome.value, reference=reference or None)
    session.commit()
    return loss


# --- alerts from the device channel and from scans (join the caller's transaction) ----------


def device_seen_online(session: Session, device: Device, now: datetime) -> LossReport | None:
    """The command engine saw the device come online: alert the reporter and the head (joins)."""
    loss = open_loss_for(session, device)
    if loss is None:
        return None
    last = session.scalar(
        select(LossEvent.at)
        .where(LossEvent.loss_id == loss.id, LossEvent.kind == "seen_online")
        .order_by(LossEvent.at.desc())
        .limit(1)
    )
    school = session.get(School, loss.school_id)
    assert school is not None
    at = local(now, school)
    summary = f"{device.asset_tag} came online at {at:%H:%M} on {at:%a} {at.day} {at:%b}"
    if last is not None and now - last < ONLINE_ALERT_QUIET:
        _event(session, loss, kind="online_again", summary=summary, actor=None, at=now)
        return loss
    _event(session, loss, kind="seen_online", summary=summary, actor=None, at=now)
    notifications.notify(
        session,
        school_id=loss.school_id,
        users=_alert_people(session, loss),
        kind="loss.seen_online",
        title=f"{device.asset_tag}, reported {loss.kind.value}, is online at {at:%H:%M}",
        body=f"{summary}. It was reported {loss.kind.value} {when(loss.reported_at, school)}. "
        f"Lost mode: {lost_mode(session, loss).label}.",
        link=loss.link,
    )
    log.info("loss %s: %s came online", loss.id, device.asset_tag)
    return loss


def device_scanned(
    session: Session,
    device: Device,
    *,
    location: Location | str | None,
    actor: User | None,
    now: datetime,
) -> LossReport | None:
    """Loans or audits scanned a lost device's label: alert the reporter and the head (joins)."""
    loss = open_loss_for(session, device)
    if loss is None:
        return None
    school = session.get(School, loss.school_id)
    assert school is not None
    at = local(now, school)
    if isinstance(location, Location):
        where = f" into the {location.name}"
    elif location:
        where = f" at {location}"
    else:
        where = ""
    who = f" by {actor.name}" if actor is not None else ""
    summary = (
        f"{device.asset_tag} was scanned{where}{who} at {at:%H:%M} on {at:%a} {at.day} {at:%b}"
    )
    _event(session, loss, kind="scanned", summary=summary, actor=actor, at=now)
    notifications.notify(
        session,
        school_id=loss.school_id,
        users=_alert_people(session, loss),
        kind="loss.scanned",
        title=f"{device.asset_tag}, reported {loss.kind.value}, was scanned{where}",
        body=f"{summary}. If it is back for good, close the loss report as found.",
        link=loss.link,
    )
    log.info("loss %s: %s scanned", loss.id, device.asset_tag)
    return loss


# --- the clock's reminders (the worker's job) ---------------------------------------------------


def escalate(session: Session, now: datetime) -> int:
    """Send the 24-hour, 48-hour and overdue reminders that have fallen due; commits."""
    candidates = select(LossReport).where(
        LossReport.closed_at.is_(None),
        LossReport.escalation_level < 3,
        LossReport.aware_at <= now - ESCALATIONS[0][1],
        or_(
            LossReport.decision.is_(None),
            (LossReport.decision == Decision.REPORT) & LossReport.ico_reported_at.is_(None),
        ),
    )
    if session.get_bind().dialect.name == "postgresql":
        # Several workers may run this job: each case is reminded by one of them.
        candidates = candidates.with_for_update(skip_locked=True)
    sent = 0
    for loss in session.scalars(candidates.order_by(LossReport.id)).all():
        level = _due_level(loss, now)
        if level <= loss.escalation_level:
            continue
        loss.escalation_level = level
        _remind(session, loss, level, now)
        sent += 1
    session.commit()
    if sent:
        log.info("sent %d loss reminder(s)", sent)
    return sent


def _remind(session: Session, loss: LossReport, level: int, now: datetime) -> None:
    school = session.get(School, loss.school_id)
    assert school is not None
    tag = loss.device.asset_tag
    deadline = when(loss.aware_at + CLOCK, school)
    waiting_for = (
        "the ICO's reference once the report is made"
        if loss.decision is Decision.REPORT
        else "the decision on reporting to the ICO"
    )
    if level == 3:
        title = f"Overdue: the 72 hours for the loss of {tag} have run out"
        body = (
            f"The 72 hours to report the loss of {tag} to the Information Commissioner's Office "
            f"ran out at {deadline}, and Trolley still needs {waiting_for}. If the loss must be "
            "reported, report it now and say why it is late."
        )
        summary = f"Overdue: the 72 hours ran out at {deadline}"
    else:
        left = duration(loss.aware_at + CLOCK - now)
        title = f"{left} left to decide on the loss of {tag}"
        body = (
            f"The loss of {tag} was reported {when(loss.reported_at, school)}. The school has "
            f"until {deadline} ({left} from now) to report it to the Information Commissioner's "
            f"Office if it must be reported. Trolley still needs {waiting_for}."
        )
        summary = f"Reminder: {left} of the 72 hours left"
    _event(
        session,
        loss,
        kind="escalation",
        summary=summary,
        actor=None,
        at=now,
        details={"level": level},
    )
    # From 48 hours on, the data protection officer is reminded too.
    _tell_heads(
        session, loss, kind="loss.escalation", title=title, body=body, dpo=level >= 2, at=now
    )


# --- the incident record -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One line of the incident record."""

    at: datetime
    what: str
    who: str | None = None
    kind: str = ""


def _command_steps(command: Command) -> list[Step]:
    name = commands.label(command.type)
    if command.type == "lost_mode":
        name += " on" if command.args.get("enabled") else " off"
    who = command.requested_by.name if command.requested_by else "Trolley"
    steps = [Step(command.created_at, f"{name} asked for", who, "command")]
    if command.approved_by is not None and command.approved_at is not None:
        steps.append(
            Step(command.approved_at, f"{name} approved", command.approved_by.name, "command")
        )
    if command.sent_at is not None:
        steps.append(Step(command.sent_at, f"{name} sent to the device", None, "command"))
    if command.received_at is not None:
        steps.append(Step(command.received_at, f"{name} received by the device", None, "command"))
    if command.finished_at is not None:
        outcome = (
            "acknowledged as done by the device"
            if command.status is CommandStatus.DONE
            else f"{command.status.label}: {command.detail or 'no reason given'}"
        )
        steps.append(Step(command.finished_at, f"{name} {outcome}", None, "command"))
    elif command.status is CommandStatus.PENDING_APPROVAL:
        steps.append(
            Step(
                command.created_at,
                f"{name} waits for a second person to approve it",
                None,
                "command",
            )
        )
    return steps


def incident_record(session: Session, found: Case) -> list[Step]:
    """The whole story with its times: report, notices and their delivery, commands, decisions."""
    steps = [Step(e.at, e.summary, e.actor.name if e.actor else None, e.kind) for e in found.events]
    for notice, name in found.notices:
        steps.append(
            Step(notice.created_at, f"Told {name} in Trolley: {notice.title}", None, "notice")
        )
    for email in found.deliveries:
        steps.append(
            Step(
                email.created_at,
                f"E-mail to {email.to_address} queued: {email.subject}",
                None,
                "email",
            )
        )
        for attempt in email.attempt_log:
            text = (
                f"E-mail to {email.to_address} delivered to the mail server"
                if attempt.ok
                else f"E-mail to {email.to_address} could not be sent: {attempt.error}"
            )
            steps.append(Step(attempt.at, text, None, "email"))
    for command in found.commands:
        steps.extend(_command_steps(command))
    return sorted(steps, key=lambda s: s.at)


# --- governors: the anonymised loss log per term ----------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One loss with nothing that identifies a person or a device beyond its model."""

    reported_on: date
    model: str
    kind: LossKind
    outcome: str
    ico: str
    on_time: str


@dataclass(frozen=True)
class TermLog:
    name: str
    entries: list[LogEntry]


def _season(day: date) -> str:
    """A term name when the school has not entered its term dates."""
    if day.month >= 9:
        return f"Autumn {day.year}"
    if day.month <= 3:
        return f"Spring {day.year}"
    return f"Summer {day.year}"


def term_log(session: Session, school_id: int, now: datetime | None = None) -> list[TermLog]:
    """Every loss, newest term first, anonymised for governors: no names, no asset tags."""
    now = now or utcnow()
    school = session.get(School, school_id)
    if school is None:
        raise NotFound("No such school.")
    terms = session.scalars(select(Term).where(Term.school_id == school_id)).all()
    rows = session.scalars(
        select(LossReport)
        .where(LossReport.school_id == school_id)
        .options(joinedload(LossReport.device))
        .order_by(LossReport.reported_at.desc(), LossReport.id.desc())
    ).all()
    grouped: dict[str, list[LogEntry]] = {}
    for loss in rows:
        day = local(loss.reported_at, school).date()
        term = next((t.name for t in terms if t.starts_on <= day <= t.ends_on), None)
        the_clock = clock(loss, now)
        if loss.decision is Decision.REPORT:
            ico = "Reported to the ICO" if loss.ico_reference else "To be reported to the ICO"
        elif loss.decision is Decision.NO_REPORT:
            ico = "Not reportable"
        else:
            ico = "Decision pending"
        if the_clock.met is None:
            on_time = "Overdue" if the_clock.overdue else "Clock running"
        else:
            on_time = "Yes" if the_clock.met else "No"
        grouped.setdefault(term or _season(day), []).append(
            LogEntry(
                reported_on=day,
                model=loss.device.model,
                kind=loss.kind,
                outcome=loss.outcome.label if loss.outcome else "Open",
                ico=ico,
                on_time=on_time,
            )
        )
    return [TermLog(name, entries) for name, entries in grouped.items()]
