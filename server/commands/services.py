"""Commands: asked for by staff, approved where destructive, published by the worker, acked."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, joinedload

from mqtt.errors import MessageError
from mqtt.messages import Ack, AckState, CommandType, Report, build_command
from server.activity.services import record, record_at_commit
from server.auth.models import User
from server.commands.models import FINISHED, Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, Forbidden, NotFound, RateLimited, ValidationFailed

log = logging.getLogger(__name__)

LABELS = {
    "ping": "Ping",
    "report_inventory": "Report inventory",
    "wipe_photos": "Wipe photos",
    "apply_profile": "Apply profile",
    "lost_mode": "Lost mode",
    "lock": "Lock",
    "factory_reset": "Factory reset",
}
TTL = {
    "ping": timedelta(hours=1),
    "report_inventory": timedelta(days=1),
    "wipe_photos": timedelta(days=7),
    "apply_profile": timedelta(days=7),
    "lost_mode": timedelta(days=30),
    "lock": timedelta(days=1),
    "factory_reset": timedelta(days=3),
}
# A second person must approve these, and they are rate limited per school (the Mobile
# Guardian incident: one account wiped a whole fleet).
ALWAYS_APPROVED = frozenset({"factory_reset"})
BULK_APPROVAL = {"wipe_photos": 10}
RATE_LIMITS = {"factory_reset": (20, timedelta(hours=1))}
STAFF_SENDABLE = frozenset(LABELS) - {"apply_profile"}  # profiles go through desired state


def label(command_type: str) -> str:
    return LABELS.get(command_type, command_type)


def check_args(command_type: str, args: dict[str, Any]) -> dict[str, Any]:
    """Validate a command's arguments with the wire contract's own rules."""
    try:
        built = build_command(
            command_type, device_id="dev-validate", kid="0" * 16, seq=0, now=0, args=args
        )
    except MessageError as exc:
        raise ValidationFailed(str(exc)) from exc
    return dict(built.args)


def _needs_approval(command_type: str, count: int) -> bool:
    threshold = BULK_APPROVAL.get(command_type)
    return command_type in ALWAYS_APPROVED or (threshold is not None and count > threshold)


def _check_rate(
    session: Session, school_id: int, command_type: str, adding: int, now: datetime
) -> None:
    limit = RATE_LIMITS.get(command_type)
    if limit is None:
        return
    most, window = limit
    recent = (
        session.scalar(
            select(func.count())
            .select_from(Command)
            .where(
                Command.school_id == school_id,
                Command.type == command_type,
                Command.approved_at >= now - window,
            )
        )
        or 0
    )
    if recent + adding > most:
        raise RateLimited(
            f"At most {most} {label(command_type).lower()} commands may be approved per hour "
            f"in one school; {recent} already have been. Try again later or ask for help."
        )


# Built once: every return queues a wipe, and building the query cost more than running it.
_ENROLLED = select(DeviceIdentity.device_id).where(
    DeviceIdentity.device_id.in_(bindparam("ids", expanding=True)),
    DeviceIdentity.revoked_at.is_(None),
)


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
) -> list[Command]:
    """Queue one command per device in one transaction; destructive ones wait for approval."""
    now = now or utcnow()
    if not devices:
        raise ValidationFailed("Choose at least one device.")
    try:
        CommandType(command_type)
    except ValueError as exc:
        raise ValidationFailed(
            f"Unknown command {command_type!r}; use one of {', '.join(LABELS)}."
        ) from exc
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
    approval = _needs_approval(command_type, len(devices))
    if not approval:
        _check_rate(session, devices[0].school_id, command_type, len(devices), now)
    batch_id = str(uuid.uuid4()) if len(devices) > 1 else None
    commands = [
        Command(
            school_id=device.school_id,
            device_id=device.id,
            cmd_id=str(uuid.uuid4()),
            batch_id=batch_id,
            type=command_type,
            args=clean,
            reason=reason.strip()[:500],
            status=CommandStatus.PENDING_APPROVAL if approval else CommandStatus.QUEUED,
            requested_by_id=actor.id if actor else None,
            created_at=now,
            approved_at=None if approval else now,
            expires_at=now + TTL[command_type],
            attempts=0,
            detail="",
            result={},
        )
        for device in devices
    ]
    session.add_all(commands)
    session.flush()
    for device, command in zip(devices, commands, strict=True):
        add_event(
            session,
            device,
            kind="command",
            summary=f"{label(command_type)} asked for"
            + (" — waiting for a second person to approve" if approval else ""),
            actor=actor,
            details={"cmd_id": command.cmd_id},
        )
    # `trail_at_commit`: a busy caller's entry is appended as it commits (the chain lock last).
    (record_at_commit if trail_at_commit else record)(
        session,
        actor=actor,
        action=f"command.{command_type}",
        school_id=devices[0].school_id,
        target_type="device" if len(devices) == 1 else "batch",
        target_id=devices[0].asset_tag if len(devices) == 1 else batch_id,
        details={"count": len(devices), "needs_approval": approval, "reason": reason.strip()},
    )
    if commit:
        session.commit()
    return commands


def approve(
    session: Session,
    actor: User,
    *,
    command_id: int | None = None,
    batch_id: str | None = None,
    now: datetime | None = None,
) -> list[Command]:
    """A second person, on a different account, lets destructive commands go."""
    now = now or utcnow()
    query = select(Command).where(
        Command.school_id == actor.school_id, Command.status == CommandStatus.PENDING_APPROVAL
    )
    if command_id is not None:
        query = query.where(Command.id == command_id)
    elif batch_id is not None:
        query = query.where(Command.batch_id == batch_id)
    else:
        raise ValidationFailed("Say which command or batch to approve.")
    commands = session.scalars(query.with_for_update()).all()
    if not commands:
        raise NotFound("Nothing is waiting for approval there.")
    if any(c.requested_by_id == actor.id for c in commands):
        raise Forbidden("Someone else must approve: the person who asked cannot approve it too.")
    _check_rate(session, actor.school_id, commands[0].type, len(commands), now)
    for command in commands:
        command.status = CommandStatus.QUEUED
        command.approved_by_id = actor.id
        command.approved_at = now
        command.expires_at = max(command.expires_at, now + TTL[command.type])
    record(
        session,
        actor=actor,
        action="command.approved",
        school_id=actor.school_id,
        target_type="batch" if batch_id else "command",
        target_id=batch_id or commands[0].cmd_id,
        details={"type": commands[0].type, "count": len(commands)},
    )
    session.commit()
    return list(commands)


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


# --- the worker's side ----------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A command ready to sign and publish to one device."""

    command_id: int
    cmd_id: str
    mqtt_id: str
    seq: int
    type: str
    args: dict[str, Any]
    iat: int
    exp: int


def _outgoing(command: Command) -> Outgoing:
    assert command.mqtt_id is not None and command.seq is not None
    iat = int((command.approved_at or command.created_at).timestamp())
    return Outgoing(
        command.id,
        command.cmd_id,
        command.mqtt_id,
        command.seq,
        command.type,
        dict(command.args),
        iat,
        int(command.expires_at.timestamp()),
    )


def claim_outgoing(session: Session, *, now: datetime, limit: int = 500) -> list[Outgoing]:
    """Queued commands to publish now, each given the device's next sequence number.

    On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED so several workers share the work.
    """
    query = (
        select(Command, DeviceIdentity)
        .join(
            DeviceIdentity,
            (DeviceIdentity.device_id == Command.device_id) & DeviceIdentity.revoked_at.is_(None),
        )
        .where(Command.status == CommandStatus.QUEUED, Command.expires_at > now)
        .order_by(Command.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Command)
    rows = session.execute(query).all()
    out = []
    for command, identity in sorted(rows, key=lambda r: (r[1].id, r[0].id)):
        identity.last_seq += 1
        command.seq = identity.last_seq
        command.mqtt_id = identity.mqtt_id
        out.append(_outgoing(command))
    session.flush()
    return out


def mark_sent(session: Session, command_ids: Iterable[int], *, now: datetime) -> None:
    ids = list(command_ids)
    if ids:
        session.execute(
            update(Command)
            .where(Command.id.in_(ids), Command.status == CommandStatus.QUEUED)
            .values(status=CommandStatus.SENT, sent_at=now, attempts=Command.attempts + 1)
        )


def unacknowledged(session: Session, mqtt_ids: Sequence[str], *, now: datetime) -> list[Outgoing]:
    """Commands sent to these identities but not finished: re-published when they come online
    (a device re-acks one it already ran, so a `done` lost with a crashed broker is recovered)."""
    if not mqtt_ids:
        return []
    commands = session.scalars(
        select(Command)
        .where(
            Command.mqtt_id.in_(sorted(set(mqtt_ids))),
            Command.status.in_([CommandStatus.SENT, CommandStatus.RECEIVED]),
            Command.expires_at > now,
        )
        .order_by(Command.id)
    ).all()
    for command in commands:
        command.attempts += 1
    return [_outgoing(c) for c in commands]


# Allowed forward moves for acks: a late or repeated ack never moves a command backwards.
_ACK_FROM = {
    AckState.RECEIVED: {CommandStatus.QUEUED, CommandStatus.SENT},
    AckState.DONE: {CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RECEIVED},
    AckState.FAILED: {CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RECEIVED},
    AckState.REJECTED: {CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RECEIVED},
}


def record_ack(
    session: Session, identity: DeviceIdentity, ack: Ack, *, now: datetime
) -> Command | None:
    """Apply one verified ack (idempotent: duplicates and stale acks change nothing)."""
    return record_acks(session, [(identity, ack)], now=now)[0]


def record_acks(
    session: Session, acks: Sequence[tuple[DeviceIdentity, Ack]], *, now: datetime
) -> list[Command | None]:
    """Apply verified acks in arrival order, with one query for all their commands."""
    # Each ack moves its command in memory, so `received` then `done` in one batch is written
    # once, as `done` with both times: what applying them one at a time would record.
    if not acks:
        return []
    query = (
        select(Command)
        .where(Command.cmd_id.in_(sorted({ack.cmd_id for _identity, ack in acks})))
        .order_by(Command.id)  # one lock order for every worker
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two workers: a late `received` must not overwrite `done`.
        query = query.with_for_update()
    found = {command.cmd_id: command for command in session.scalars(query)}
    return [
        _apply_ack(session, found.get(ack.cmd_id), identity, ack, now) for identity, ack in acks
    ]


def _apply_ack(
    session: Session, command: Command | None, identity: DeviceIdentity, ack: Ack, now: datetime
) -> Command | None:
    if command is None or command.device_id != identity.device_id:
        log.warning("ack from %s for unknown command %s", identity.mqtt_id, ack.cmd_id)
        return None
    if command.status not in _ACK_FROM[ack.state]:
        return command
    if ack.state is AckState.REJECTED and ack.result.get("verified") is False:
        # The device refused a message it could not verify: anyone on the broker could have sent
        # that under a real cmd_id, so it says nothing about our own (signed) command.
        log.warning("%s refused an unverifiable message claiming %s", identity.mqtt_id, ack.cmd_id)
        return command
    command.detail = (ack.detail or "")[:500]
    if ack.state is AckState.RECEIVED:
        command.status = CommandStatus.RECEIVED
        command.received_at = now
        return command
    command.status = CommandStatus(ack.state.value)
    command.received_at = command.received_at or now
    command.finished_at = now
    command.result = dict(ack.result)
    _finished(session, command, identity, now)
    return command


def _finished(session: Session, command: Command, identity: DeviceIdentity, now: datetime) -> None:
    """What a finished command means for the register."""
    device = command.device
    name = label(command.type)
    if command.status is not CommandStatus.DONE:
        add_event(
            session,
            device,
            kind="command",
            summary=f"{name} {command.status.label}: {command.detail or 'no reason given'}",
            actor=None,
            details={"cmd_id": command.cmd_id, "result": command.result},
        )
        return
    summary = f"{name} done"
    if command.type == "wipe_photos":
        deleted = int(command.result.get("deleted", 0) or 0)
        remaining = int(command.result.get("remaining", 0) or 0)
        device.photo_count = remaining
        device.photo_count_at = now
        summary = f"Photos wiped ({deleted} deleted, {remaining} left)"
    elif command.type == "lost_mode":
        summary = "Lost mode is on" if command.args.get("enabled") else "Lost mode is off"
    elif command.type == "factory_reset":
        from server.enrolment.services import revoke_identities

        revoke_identities(session, device, now=now, why="factory reset acknowledged")
        summary = "Factory reset confirmed by the device; it must be enrolled again"
        _call_optional("server.escrow.services", "device_reset", session, device, now)
        # The device itself vouches for the erasure (its default source).
        _call_optional("server.disposals.services", "mark_reset_confirmed", session, device, now)
    add_event(
        session,
        device,
        kind="command",
        summary=summary,
        actor=None,
        details={"cmd_id": command.cmd_id, "result": command.result},
    )


def _call_optional(module: str, name: str, *args: Any) -> None:
    """Tell another domain, if it is installed (domains arrive independently)."""
    import importlib

    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return
    target(*args)


def record_report(
    session: Session, identity: DeviceIdentity, report: Report, *, now: datetime
) -> None:
    """Apply a verified inventory/applied-state report to the register."""
    device = identity.device
    identity.last_seen_at = now
    device.last_seen_at = now
    if report.os_version:
        device.os_version = report.os_version[:64]
    if report.photo_count is not None:
        if device.photo_count != report.photo_count:
            add_event(
                session,
                device,
                kind="report",
                summary=f"Reports {report.photo_count} photo(s) on the device",
                actor=None,
            )
        device.photo_count = report.photo_count
        device.photo_count_at = now
    if report.apps is not None:
        _call_optional(
            "server.licences.services",
            "record_installed_apps",
            session,
            device,
            [{"app_id": app, "name": app} for app in report.apps],
            now,
        )
    if report.profile_sha256:
        _call_optional(
            "server.profiles.services",
            "record_applied",
            session,
            device,
            report.profile_sha256,
            now,
        )


def record_presence(
    session: Session, identity: DeviceIdentity, *, online: bool, now: datetime
) -> None:
    was = identity.online
    identity.online = online
    identity.last_seen_at = now
    identity.device.last_seen_at = now
    if online and not was:
        _call_optional(
            "server.losses.services", "device_seen_online", session, identity.device, now
        )


RESEND_AFTER = timedelta(minutes=3)


def resend_unfinished(session: Session, *, now: datetime) -> int:
    """Queue again commands an online device has not finished acknowledging (an ack can be lost
    with a broker's queue); the device answers a repeated cmd_id with its last ack."""
    unfinished = [CommandStatus.SENT, CommandStatus.RECEIVED]
    stale = session.scalars(
        select(Command.id)
        .join(
            DeviceIdentity,
            (DeviceIdentity.mqtt_id == Command.mqtt_id) & DeviceIdentity.revoked_at.is_(None),
        )
        .where(
            Command.status.in_(unfinished),
            Command.sent_at < now - RESEND_AFTER,
            Command.expires_at > now,
            DeviceIdentity.online.is_(True),
        )
    ).all()
    if not stale:
        return 0
    # Conditional, so an ack a worker records meanwhile is never turned back into `queued`.
    moved = session.execute(
        update(Command)
        .where(Command.id.in_(stale), Command.status.in_(unfinished))
        .values(status=CommandStatus.QUEUED)
    )
    return int(getattr(moved, "rowcount", 0) or 0)


def expire(session: Session, *, now: datetime) -> int:
    """Commands past their expiry that never finished become expired (and say so)."""
    stale = session.scalars(
        select(Command).where(
            Command.status.in_(
                [CommandStatus.PENDING_APPROVAL, CommandStatus.QUEUED, CommandStatus.SENT]
            ),
            Command.expires_at <= now,
        )
    ).all()
    for command in stale:
        command.status = CommandStatus.EXPIRED
        command.finished_at = now
        command.detail = "The device did not collect it before it expired."
        add_event(
            session,
            command.device,
            kind="command",
            summary=f"{label(command.type)} expired before the device collected it",
            actor=None,
        )
    return len(stale)


def is_finished(status: CommandStatus) -> bool:
    return status in FINISHED
