"""Issuing: staff and domains ask for commands; destructive ones pass the budget and the freeze."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import CompoundSelect, select, union
from sqlalchemy.orm import Session, joinedload

from mqtt.messages import CommandType, is_destructive
from server.activity.services import record, record_at_commit
from server.auth.models import User
from server.chromebooks.models import GoogleDevice
from server.commands.models import Command, CommandStatus, Disruption
from server.commands.services.budget import (
    Decision,
    Escalation,
    Verdict,
    alert,
    lock_school,
    weigh,
)
from server.commands.services.catalogue import LABELS, check_args, disruption, label, new_commands
from server.commands.services.freezing import HELD, is_frozen, refuse_if_frozen
from server.commands.services.waiting import tell_approvers
from server.db import one_of, utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import EventLine, add_events
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, NotFound, RateLimited, ValidationFailed
from server.ipads.models import IpadEnrolment, Stage

# Built once: every return queues a wipe, and building the query cost more than running it.
# A device is reachable through its kiosk enrolment, as a Chromebook Google manages for us, or as
# an iPad enrolled through Apple's MDM.
_ENROLLED: CompoundSelect[int] = union(
    select(DeviceIdentity.device_id).where(
        one_of(DeviceIdentity.device_id, "ids"),
        DeviceIdentity.revoked_at.is_(None),
    ),
    select(GoogleDevice.device_id).where(
        one_of(GoogleDevice.device_id, "ids"),
        GoogleDevice.status.in_(GoogleDevice.MANAGED),
    ),
    select(IpadEnrolment.device_id).where(
        one_of(IpadEnrolment.device_id, "ids"),
        IpadEnrolment.stage == Stage.ENROLLED,
    ),
)


def can_reach(session: Session, device: Device) -> bool:
    """Whether Trolley can send this device commands (kiosk client, Google or Apple MDM)."""
    return device.id in set(session.scalars(_ENROLLED, {"ids": [device.id]}))


def issue(
    session: Session,
    actor: User | None,
    devices: Sequence[Device],
    command_type: str,
    args: dict[str, Any] | None = None,
    *,
    reason: str = "",
    now: datetime | None = None,
    commit: bool = True,
    trail_at_commit: bool = False,
    on_return: bool = False,
    escalation: Escalation | None = None,
) -> list[Command]:
    """Queue one command per device in one transaction; destructive ones face budget and freeze."""
    # `on_return` marks the photo wipe a return raises (P-PHOTO-1): never counted against the
    # budget, and held back rather than refused while frozen, so the return itself goes through.
    # `escalation`: the caller's own figure was passed, so the request waits for someone in its
    # role whatever the budget says, and only they may approve it.
    now = now or utcnow()
    if not devices:
        raise ValidationFailed("Choose at least one device.")
    try:
        CommandType(command_type)
    except ValueError as exc:
        raise ValidationFailed(
            f"Unknown command {command_type!r}; use one of {', '.join(LABELS)}."
        ) from exc
    if on_return and command_type != CommandType.WIPE_PHOTOS:
        raise ValidationFailed("Only a photo wipe is raised by a return.")
    clean = check_args(command_type, dict(args or {}))
    school_ids = {d.school_id for d in devices}
    if len(school_ids) != 1 or (actor is not None and school_ids != {actor.school_id}):
        raise NotFound("Those devices are not all in your school.")
    disposed = [d.asset_tag for d in devices if d.status is DeviceStatus.DISPOSED]
    if disposed:
        raise ValidationFailed(f"Disposed devices cannot receive commands: {', '.join(disposed)}.")
    enrolled = set(session.scalars(_ENROLLED, {"ids": [d.id for d in devices]}))
    missing = [d.asset_tag for d in devices if d.id not in enrolled]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise ValidationFailed(
            f"Not enrolled in Trolley, so they cannot be reached: {shown}. Enrol them first."
        )
    school_id = devices[0].school_id
    costs = disruption(command_type, clean, on_return=on_return)
    held = approval = False
    if on_return:
        # Every return passes here, so no school lock: at worst a wipe racing a freeze is still
        # sent, and it deletes only the photos the lesson left, as P-PHOTO-1 asks.
        held = is_frozen(session, school_id)
    elif is_destructive(command_type, clean):
        lock_school(session, school_id)
        refuse_if_frozen(session, school_id, command_type)
    if costs is not None:
        approval = _within_budget(
            session, actor, school_id, command_type, costs, len(devices), now, commit=commit
        )
    if escalation is not None and not held:
        if not approval:
            waiting = Decision(Verdict.WAITS, escalation.reached, escalation.so_far)
            alert(session, actor, school_id, command_type, len(devices), waiting, now)
        approval = True
    status = (
        CommandStatus.CANCELLED
        if held
        else CommandStatus.PENDING_APPROVAL
        if approval
        else CommandStatus.QUEUED
    )
    commands = new_commands(
        session,
        actor,
        devices,
        command_type,
        clean,
        status=status,
        now=now,
        reason=reason,
        detail=HELD if held else "",
        costs=costs,
    )
    if approval and escalation is not None:
        for command in commands:
            command.approver_role = escalation.role
    summary = f"{label(command_type)} asked for" + (
        " — held back: the school has frozen destructive commands"
        if held
        else " — waiting for a second person to approve"
        if approval
        else ""
    )
    add_events(
        session,
        [
            EventLine.of(device, summary, {"cmd_id": command.cmd_id})
            for device, command in zip(devices, commands, strict=True)
        ],
        kind="command",
        actor=actor,
    )
    if approval:
        tell_approvers(session, actor, commands, now)
    batch_id = commands[0].batch_id
    # `trail_at_commit`: a busy caller's entry is appended as it commits (the chain lock last).
    (record_at_commit if trail_at_commit else record)(
        session,
        actor=actor,
        action=f"command.{command_type}",
        school_id=school_id,
        target_type="device" if len(devices) == 1 else "batch",
        target_id=devices[0].asset_tag if len(devices) == 1 else batch_id,
        details={"count": len(devices), "needs_approval": approval, "reason": reason.strip()},
    )
    if commit:
        session.commit()
    return commands


def _within_budget(
    session: Session,
    actor: User | None,
    school_id: int,
    command_type: str,
    costs: Disruption,
    count: int,
    now: datetime,
    *,
    commit: bool,
) -> bool:
    """Whether the request must wait for a second person; far past the figures, refused."""
    decision = weigh(session, actor, school_id, costs, count, now)
    if decision.verdict is Verdict.ALONE:
        return False
    alert(session, actor, school_id, command_type, count, decision, now)
    if decision.verdict is Verdict.WAITS:
        return True
    aftermath = None
    if commit:
        # The alert and its trail entry must outlive the refusal.
        session.commit()
    else:
        # A caller composing a larger transaction rolls its own work back, the alert with it:
        # it is written again afterwards (the web layer and the callers that catch do this).
        aftermath = partial(
            alert,
            actor=actor,
            school_id=school_id,
            command_type=command_type,
            count=count,
            decision=decision,
            now=now,
        )
    raise RateLimited(
        f"Trolley refused this: {label(command_type).lower()} on {count} device(s) would be "
        f"{decision.reached}. Nothing was sent, and the headteacher has been told. If it is "
        "genuinely needed, ask the headteacher.",
        code="fleet_budget",
        aftermath=aftermath,
    )


def cancel(session: Session, actor: User, command_id: int) -> Command:
    command = get_command(session, actor.school_id, command_id)
    if command.status not in (CommandStatus.PENDING_APPROVAL, CommandStatus.QUEUED):
        raise Conflict(
            f"This command is already {command.status.label}; it can no longer be cancelled."
        )
    command.status = CommandStatus.CANCELLED
    command.finished_at = utcnow()
    command.detail = f"Cancelled by {actor.name}"
    record(
        session,
        actor=actor,
        action="command.cancelled",
        school_id=actor.school_id,
        target_type="command",
        target_id=command.cmd_id,
        details={"type": command.type},
    )
    session.commit()
    return command


def get_command(session: Session, school_id: int, command_id: int) -> Command:
    command = session.scalar(
        select(Command)
        .where(Command.id == command_id, Command.school_id == school_id)
        .options(joinedload(Command.device))
    )
    if command is None:
        raise NotFound("No such command in your school.")
    return command


def commands_by_id(session: Session, school_id: int, ids: Sequence[int]) -> list[Command]:
    """These commands of the school, in id order, with what a listing of them shows."""
    return list(
        session.scalars(
            select(Command)
            .where(one_of(Command.id, "ids"), Command.school_id == school_id)
            .options(
                joinedload(Command.device),
                joinedload(Command.requested_by),
                joinedload(Command.approved_by),
            )
            .order_by(Command.id),
            {"ids": list(ids)},
        )
    )


def list_commands(
    session: Session,
    school_id: int,
    *,
    status: CommandStatus | None = None,
    command_type: str | None = None,
    device_id: int | None = None,
    batch_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Command]:
    query = select(Command).where(Command.school_id == school_id)
    if status is not None:
        query = query.where(Command.status == status)
    if command_type:
        query = query.where(Command.type == command_type)
    if device_id is not None:
        query = query.where(Command.device_id == device_id)
    if batch_id:
        query = query.where(Command.batch_id == batch_id)
    return session.scalars(
        query.options(joinedload(Command.device), joinedload(Command.requested_by))
        .order_by(Command.created_at.desc(), Command.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


@dataclass(frozen=True)
class Approval:
    key: str
    is_batch: bool
    command_type: str
    count: int
    requested_by: str
    requested_by_id: int | None
    created_at: datetime
    reason: str
    first_tag: str


def pending_approvals(session: Session, school_id: int) -> list[Approval]:
    """What waits for a second person, grouped by batch, oldest first."""
    rows = session.scalars(
        select(Command)
        .where(Command.school_id == school_id, Command.status == CommandStatus.PENDING_APPROVAL)
        .options(joinedload(Command.device), joinedload(Command.requested_by))
        .order_by(Command.created_at)
    ).all()
    groups: dict[str, list[Command]] = {}
    for command in rows:
        groups.setdefault(command.batch_id or f"command-{command.id}", []).append(command)
    return [
        Approval(
            key=key if items[0].batch_id else str(items[0].id),
            is_batch=bool(items[0].batch_id),
            command_type=items[0].type,
            count=len(items),
            requested_by=items[0].requested_by.name if items[0].requested_by else "Trolley",
            requested_by_id=items[0].requested_by_id,
            created_at=items[0].created_at,
            reason=items[0].reason,
            first_tag=items[0].device.asset_tag,
        )
        for key, items in groups.items()
    ]
