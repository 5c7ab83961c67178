"""What commands exist: names, lifetimes, arguments, which disrupt the fleet, and their rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mqtt.errors import MessageError
from mqtt.messages import CommandType, build_command, is_destructive
from server.auth.models import User
from server.commands.models import Command, CommandStatus, Disruption
from server.db import insert_rows, notify, table
from server.devices.models import Device
from server.errors import ValidationFailed

LABELS = {
    "ping": "Ping",
    "report_inventory": "Report inventory",
    "wipe_photos": "Wipe photos",
    "apply_profile": "Apply profile",
    "lost_mode": "Lost mode",
    "lock": "Lock",
    "factory_reset": "Factory reset",
    "freeze": "Freeze",
}
TTL = {
    "ping": timedelta(hours=1),
    "report_inventory": timedelta(days=1),
    "wipe_photos": timedelta(days=7),
    "apply_profile": timedelta(days=7),
    "lost_mode": timedelta(days=30),
    "lock": timedelta(days=1),
    "factory_reset": timedelta(days=3),
    # As long as lost mode: a device away for a holiday must still hear of the freeze.
    "freeze": timedelta(days=30),
}
# Profiles go through desired state; a freeze only through the freeze itself.
STAFF_SENDABLE = frozenset(LABELS) - {"apply_profile", "freeze"}
DESTRUCTIVE_TYPES = ("wipe_photos", "lock", "lost_mode", "factory_reset")


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


def disruption(command_type: str, args: dict[str, Any], *, on_return: bool) -> Disruption | None:
    """What a command costs the school's budget; None for routine ones."""
    # The wipe a return raises is P-PHOTO-1 at work, many times a day: never counted.
    if not is_destructive(command_type, args):
        return None
    if command_type == CommandType.WIPE_PHOTOS:
        return None if on_return else Disruption.PHOTO_WIPE
    if command_type == CommandType.FACTORY_RESET:
        return Disruption.FACTORY_RESET
    return Disruption.OUT_OF_USE


# A transaction that queues commands or changes a desired state says so here as it commits: the
# workers' publishing side listens (PostgreSQL) rather than finding them at its next look.
OUTBOX_CHANNEL = "trolley_outbox"


def announce(session: Session) -> None:
    """Wake the workers' publishing once this transaction commits: something waits to go out."""
    notify(session, OUTBOX_CHANNEL)


def new_commands(
    session: Session,
    actor: User | None,
    devices: Sequence[Device],
    command_type: str,
    args: dict[str, Any],
    *,
    status: CommandStatus,
    now: datetime,
    reason: str = "",
    detail: str = "",
    costs: Disruption | None = None,
) -> list[Command]:
    """One row per device, written and loaded; more than one device makes a batch."""
    batch_id = str(uuid.uuid4()) if len(devices) > 1 else None
    waiting = status is CommandStatus.PENDING_APPROVAL
    cmd_ids = [str(uuid.uuid4()) for _device in devices]
    rows: list[dict[str, Any]] = [
        {
            "school_id": device.school_id,
            "device_id": device.id,
            "cmd_id": cmd_id,
            "batch_id": batch_id,
            "type": command_type,
            "args": args,
            "reason": reason.strip()[:500],
            "status": status,
            "requested_by_id": actor.id if actor else None,
            "created_at": now,
            "approved_at": None if waiting else now,
            "expires_at": now + TTL[command_type],
            "finished_at": now if status.finished else None,
            "attempts": 0,
            "detail": detail,
            "result": {},
            "disruption": costs,
        }
        for device, cmd_id in zip(devices, cmd_ids, strict=True)
    ]
    # One statement, then one query for the rows: the unit of work would build and track each
    # object, and SQLite would insert them one at a time to learn each id.
    insert_rows(session, table(Command), rows)
    if status is CommandStatus.QUEUED:
        announce(session)
    query = select(Command).where(
        Command.batch_id == batch_id if batch_id else Command.cmd_id == cmd_ids[0]
    )
    found = {command.cmd_id: command for command in session.scalars(query)}
    return [found[cmd_id] for cmd_id in cmd_ids]
