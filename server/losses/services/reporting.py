"""Reporting a device lost or stolen: the report, lost mode and the headteacher told at once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.commands import services as commands
from server.commands.models import CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import change_status, get_device
from server.errors import Conflict, ValidationFailed
from server.losses.models import LossKind, LossReport, PossibleLoss, PossibleLossOutcome
from server.losses.pages import CLOCK
from server.losses.services.common import _audit, _clean, _event, _refuse_if
from server.losses.services.remote import _queue_lost_mode
from server.losses.services.telling import _tell_heads
from server.schools.services import when

log = logging.getLogger(__name__)
# One person's loss reports in an hour whose lost mode goes at once; more wait for the head.
REPORTS_ALONE = 3
REPORTS_WINDOW = timedelta(hours=1)


def open_loss_for(session: Session, device: Device) -> LossReport | None:
    return session.scalar(
        select(LossReport).where(LossReport.device_id == device.id, LossReport.closed_at.is_(None))
    )


def settle_for_loss(session: Session, loss: LossReport, actor: User | None, now: datetime) -> None:
    """A device reported lost is no longer only possibly lost: its open offer closes."""
    session.execute(
        update(PossibleLoss)
        .where(PossibleLoss.device_id == loss.device_id, PossibleLoss.resolved_at.is_(None))
        .values(
            resolved_at=now,
            resolution=PossibleLossOutcome.REPORTED,
            resolved_by_id=actor.id if actor else None,
            loss_report_id=loss.id,
        )
        .execution_options(synchronize_session="fetch")
    )


def _many_reports(session: Session, actor: User, now: datetime) -> commands.Escalation | None:
    """Past a few reports by one person in an hour, their lost mode waits for the headteacher:
    one report locks its device at once (P-LOSS-3), a stream of them is an attack."""
    if actor.role is Role.HEADTEACHER:
        return None  # the head's own reports face the fleet budget like any command
    made = (
        session.scalar(
            select(func.count())
            .select_from(LossReport)
            .where(
                LossReport.reported_by_id == actor.id,
                LossReport.reported_at > now - REPORTS_WINDOW,
                LossReport.reported_at <= now,
            )
        )
        or 0
    )
    if made <= REPORTS_ALONE:
        return None
    return commands.Escalation(
        Role.HEADTEACHER, f"{REPORTS_ALONE} loss reports an hour for one person", made - 1
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
    _refuse_if(problems)
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
    command = _queue_lost_mode(
        session, actor, loss, enabled=True, now=now, escalation=_many_reports(session, actor, now)
    )
    title = f"{device.asset_tag} reported {kind.value}"
    if command is None:
        lost_mode_line = f"{loss.lost_mode_note}."
    elif command.status is CommandStatus.PENDING_APPROVAL:
        lost_mode_line = (
            "Lost mode has NOT been sent: it waits for a second person to approve it, under "
            "Commands, Waiting for a second person."
        )
    else:
        lost_mode_line = (
            "Lost mode is on its way to the device: it locks and shows the school's return "
            "message when the device next connects. The report's page says when it confirms."
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
    settle_for_loss(session, loss, actor, now)
    _audit(session, actor, loss, "reported", kind=kind.value, lost_mode=command is not None)
    session.commit()
    log.info("loss %s reported for %s by user %s", loss.id, device.asset_tag, actor.id)
    return loss
