"""What is asked of the missing device: lost mode with the return message, a reset, a photo wipe."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from server.auth.models import Role, User
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.errors import Conflict, TrolleyError, ValidationFailed
from server.losses.models import LossReport, Outcome
from server.losses.pages import NOT_ENROLLED, LostMode
from server.losses.services.common import (
    _audit,
    _clean,
    _event,
    _events,
    _require_manager,
    _require_open,
    _school,
)
from server.notifications import services as notifications

# --- lost mode -------------------------------------------------------------------------------


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
        if enabled and loss.device.erased_since(latest.finished_at):
            # Erased after it confirmed lost mode: whether it is still locked is not known.
            return LostMode("erased", latest)
        if enabled and latest.result.get("lost_mode") is False:
            # What the device did is what it says: a lock, not lost mode.
            return LostMode("locked_only", latest)
        if enabled and "google" in latest.result and not _synced_since(loss, latest):
            # Google disabled it; the Chromebook itself locks only when it next syncs.
            return LostMode("in_google", latest)
        return LostMode("active" if enabled else "off", latest)
    if status is CommandStatus.PENDING_APPROVAL:
        return LostMode("waiting_approval" if enabled else "turning_off", latest)
    if not status.finished:
        return LostMode("pending" if enabled else "turning_off", latest)
    return LostMode("failed", latest)


def _synced_since(loss: LossReport, command: Command) -> bool:
    """Whether the device has been heard from (a Chromebook: synced with Google) since."""
    seen = loss.device.last_seen_at
    return seen is not None and command.finished_at is not None and seen > command.finished_at


def _queue_lost_mode(
    session: Session,
    actor: User | None,
    loss: LossReport,
    *,
    enabled: bool,
    now: datetime,
    escalation: commands.Escalation | None = None,
) -> Command | None:
    """Ask the device to lock with the return message (or unlock); None if it cannot be reached.
    With `escalation`, it waits for the headteacher instead of going at once."""
    device = loss.device
    if not commands.can_reach(session, device):
        if enabled:
            loss.lost_mode_note = NOT_ENROLLED
            _event(session, loss, kind="lost_mode", summary=f"{NOT_ENROLLED}.", actor=None, at=now)
        return None
    school = _school(session, loss)
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
                escalation=escalation,
            )
    except TrolleyError as exc:
        if exc.aftermath is not None:
            exc.aftermath(session)  # the head's alert, rolled back with the savepoint
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


# --- remote actions ---------------------------------------------------------------------------


def _ask_device(
    session: Session,
    actor: User,
    loss: LossReport,
    command_type: str,
    *,
    reason: str,
    summary: str,
    now: datetime,
) -> Command:
    """Issue one command to the missing device and note it on the case (joins the transaction)."""
    (command,) = commands.issue(
        session, actor, [loss.device], command_type, {}, reason=reason, now=now, commit=False
    )
    _event(
        session,
        loss,
        kind=command_type,
        summary=summary,
        actor=actor,
        at=now,
        details={"cmd_id": command.cmd_id},
    )
    return command


def retry_lost_mode(
    session: Session, actor: User, loss: LossReport, *, now: datetime | None = None
) -> Command:
    """Ask for lost mode again (the device was enrolled since, or the last try expired)."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    found = lost_mode(session, loss)
    state = found.state
    if found.standing:
        raise Conflict(
            "Lost mode is already "
            + {
                "active": "on.",
                "pending": "on its way.",
                "in_google": "on in Google.",
                "waiting_approval": "waiting for approval.",
            }[state]
        )
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
    command = _ask_device(
        session,
        actor,
        loss,
        "factory_reset",
        reason=f"Loss report {loss.id}" + (f": {why}" if why else ""),
        summary="Factory reset asked for; it waits for a second person to approve it"
        + (f". {why}" if why else ""),
        now=now,
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
        devices=[loss.device],
        case_id=loss.id,
        at=now,
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
    command = _ask_device(
        session,
        actor,
        loss,
        "wipe_photos",
        reason=f"Loss report {loss.id}: found",
        summary="Photo wipe asked for, now the device is back",
        now=now,
    )
    _audit(session, actor, loss, "wipe_photos")
    session.commit()
    return command
