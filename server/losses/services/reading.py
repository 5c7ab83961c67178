"""Reading a loss: the case page, the breach log, what Trolley knows about the device."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.commands.services import can_reach
from server.db import utcnow
from server.devices.models import Device
from server.devices.services import protection_of
from server.disposals.services import latest_erasure
from server.errors import NotFound
from server.losses.models import Decision, LossReport, Outcome, RiskLevel
from server.losses.pages import Case, Clock, Facts, duration
from server.losses.services.breach_clock import clock
from server.losses.services.common import _events
from server.losses.services.remote import _case_commands, lost_mode
from server.notifications.models import EmailMessage, Notification
from server.profiles.services import applied_view
from server.schools.services import plural


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


def _age(moment: datetime | None, loss: LossReport) -> str:
    """How long before the loss report a device said something."""
    if moment is None:
        return ""
    gap = loss.reported_at - moment
    if gap < timedelta(0):
        return ", reported after the loss was reported"
    return f", reported {duration(gap, in_days=True)} before the loss was reported"


def _erased_before(session: Session, loss: LossReport) -> datetime | None:
    """When the device was last erased before the loss was reported: an erase after it (a
    remote wipe) leaves what the device said before the loss as the facts (P-LOSS-2)."""
    erasure = latest_erasure(session, loss.device, by=loss.reported_at)
    return erasure.confirmed_at if erasure is not None else None


def _settings_facts(
    session: Session, device: Device, loss: LossReport, erased_at: datetime | None
) -> tuple[str | None, str, list[str], list[str]]:
    """What the device reported enforcing, and what it did not or never said (P-LOSS-2)."""
    view = applied_view(session, device, erased_at=erased_at)
    if view.profile_name is None:
        return None, "No restriction profile applies to this device", [], []
    name = view.profile_name if view.applied else None
    if view.reported_at is None:
        # One line, not a "not known" per setting: the device said nothing about any of them.
        return name, f"Not known: {view.note}" if view.note else "Not known", [], []
    settings = f"Reported setting by setting{_age(view.reported_at, loss)}"
    enforced = [f"{row.label}: {row.wanted}" for row in view.enforced]
    missing = []
    for row in view.not_enforced:
        why = f" ({row.detail})" if row.detail else ""
        missing.append(f"{row.label}: {row.state_label.lower()}{why}")
    return name, settings, enforced, missing


def known_facts(session: Session, loss: LossReport) -> Facts:
    """What the device itself reported, and how long before the loss; the rest is not known."""
    device = loss.device
    erased_at = _erased_before(session, loss)
    count, counted_at = device.photo_count, device.photo_count_at
    if count is None:
        photos = "Not known: the device has never reported how many photos it holds"
    elif device.erased_since(counted_at, erased_at):
        # Counted before an erase that came before the loss: those photos no longer existed.
        count = counted_at = None
        photos = "Not known: the device was erased after it last counted its photos"
    else:
        photos = f"{plural(count, 'photo')}{_age(counted_at, loss)}"
    protection = protection_of(session, device, erased_at=erased_at)
    profile_name, settings, enforced, missing = _settings_facts(session, device, loss, erased_at)
    return Facts(
        photo_count=count,
        photo_count_at=counted_at,
        photos=photos,
        last_check_in=device.last_seen_at,
        profile_name=profile_name,
        passcode=protection.passcode + _age(protection.reported_at, loss),
        restrictions=enforced,
        lost_mode=lost_mode(session, loss).label,
        enrolled=can_reach(session, device),
        encryption=protection.encryption + _age(protection.reported_at, loss),
        settings=settings,
        not_enforced=missing,
    )


def suggested_personal_data(facts: Facts) -> str:
    """A starting point for 'what personal data could be on it', for the head to correct."""
    lines = [f"Photos from lessons: {facts.photos}."]
    lines.append(f"Passcode: {facts.passcode}.")
    lines.append(f"Storage encryption: {facts.encryption}.")
    lines.append(f"Restriction settings: {facts.settings}.")
    if facts.restrictions:
        lines.append("Enforced, as the device reported: " + "; ".join(facts.restrictions) + ".")
    if facts.not_enforced:
        lines.append("Not enforced or not known: " + "; ".join(facts.not_enforced) + ".")
    lines.append(f"Lost mode: {facts.lost_mode}.")
    return " ".join(lines)


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
