"""What devices answer: acks move commands forward, reports and presence update the register."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mqtt.messages import Ack, AckState, Report
from server import events
from server.commands.models import FINISHED, Command, CommandStatus
from server.commands.services.catalogue import label
from server.db import expire_loaded, one_of, table
from server.devices.models import Device
from server.devices.services import EventLine, add_event, add_events, record_protection
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import revoke_identities

log = logging.getLogger(__name__)

# Allowed forward moves for acks: a late or repeated ack never moves a command backwards.
# A command cancelled once it may have been sent (a freeze stops those too) still takes the
# device's final answer: what the device did is the truth the register must show.
_ANSWERABLE = {
    CommandStatus.QUEUED,
    CommandStatus.SENT,
    CommandStatus.RECEIVED,
    CommandStatus.CANCELLED,
}
_ACK_FROM = {
    AckState.RECEIVED: {CommandStatus.QUEUED, CommandStatus.SENT},
    AckState.DONE: _ANSWERABLE,
    AckState.FAILED: _ANSWERABLE,
    AckState.REJECTED: _ANSWERABLE,
}


class AckSender(Protocol):
    """Who sent an ack: a device's live identity, or the worker's light copy of one."""

    @property
    def id(self) -> int: ...
    @property
    def device_id(self) -> int: ...
    @property
    def mqtt_id(self) -> str: ...


@dataclass
class _Answering:
    """The columns of a command an ack may move, moved in memory and then written in bulk."""

    id: int
    cmd_id: str
    school_id: int
    device_id: int
    type: str
    args: dict[str, Any]
    status: CommandStatus
    received_at: datetime | None
    finished_at: datetime | None = None
    detail: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    moved: bool = False


_ANSWERED = (
    select(
        Command.id,
        Command.cmd_id,
        Command.school_id,
        Command.device_id,
        Command.type,
        Command.args,
        Command.status,
        Command.received_at,
    )
    .where(one_of(Command.cmd_id, "cmd_ids"))
    .order_by(Command.id)  # one lock order for every worker
)
_ANSWERED_LOCKED = _ANSWERED.with_for_update()


def record_ack(
    session: Session, identity: DeviceIdentity, ack: Ack, *, now: datetime
) -> Command | None:
    """Apply one verified ack (idempotent: duplicates and stale acks change nothing)."""
    (command_id,) = record_acks(session, [(identity, ack)], now=now)
    return None if command_id is None else session.get(Command, command_id)


def record_acks(
    session: Session, acks: Sequence[tuple[AckSender, Ack]], *, now: datetime
) -> list[int | None]:
    """Apply verified acks in arrival order; the id of each one's command, or None if unknown.

    One query reads their commands and one statement per table writes what moved.
    """
    # Each ack moves its command in memory, so `received` then `done` in one batch is written
    # once, as `done` with both times: what applying them one at a time would record. Columns,
    # not mapped rows: a fleet-wide command's acks come in thousands, and loading, tracking and
    # flushing each row was most of what recording them cost.
    if not acks:
        return []
    # Two workers on PostgreSQL: a late `received` must not overwrite `done`.
    query = _ANSWERED_LOCKED if session.get_bind().dialect.name == "postgresql" else _ANSWERED
    found = {
        row.cmd_id: _Answering(*row)
        for row in session.execute(query, {"cmd_ids": sorted({ack.cmd_id for _s, ack in acks})})
    }
    lines: list[EventLine] = []
    photos: list[dict[str, Any]] = []
    applied: list[int | None] = []
    for sender, ack in acks:
        command = found.get(ack.cmd_id)
        if command is None or command.device_id != sender.device_id:
            log.warning("ack from %s for unknown command %s", sender.mqtt_id, ack.cmd_id)
            applied.append(None)
            continue
        applied.append(command.id)
        if ack.state is AckState.REJECTED and ack.result.get("verified") is False:
            # The device refused a message it could not verify: anyone on the broker could have
            # sent that under a real cmd_id, so it says nothing about our own (signed) command.
            log.warning(
                "%s refused an unverifiable message claiming %s", sender.mqtt_id, ack.cmd_id
            )
            continue
        if _move(command, ack.state, ack.detail, dict(ack.result), now):
            command.moved = True
            if command.status.finished:
                lines.append(_finished(session, command, now, photos))
    moved = [command for command in found.values() if command.moved]
    _write(session, Command, [_columns(command) for command in moved])
    # Devices in one order too, as the commands are: two workers never wait on each other in turn.
    _write(session, Device, sorted(photos, key=lambda row: row["id"]))
    # A fleet-wide command finishes on every device at once: its timeline lines go in together.
    add_events(session, lines, kind="command", actor=None)
    return applied


def _columns(command: _Answering) -> dict[str, Any]:
    """What an ack wrote: the received time alone, or the whole finish."""
    written = {
        "id": command.id,
        "status": command.status,
        "detail": command.detail,
        "received_at": command.received_at,
    }
    if command.status.finished:
        written |= {"finished_at": command.finished_at, "result": command.result}
    return written


def _write(
    session: Session, model: type[Command] | type[Device], rows: list[dict[str, Any]]
) -> None:
    """Update rows by primary key; loaded copies are read again when next used.

    Rows given the same values (a fleet-wide command's acks, which finish alike) are one
    statement each group; the rest one statement with a parameter set per row, whose
    processing was the larger part of recording a fleet's acks.
    """
    if not rows:
        return
    alike: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        written = tuple(
            (name, json.dumps(value, sort_keys=True) if isinstance(value, dict) else value)
            for name, value in row.items()
            if name != "id"
        )
        alike.setdefault(written, []).append(row)
    each: list[dict[str, Any]] = []
    columns = table(model).c
    for group in alike.values():
        if len(group) == 1:
            each += group
            continue
        values = {name: value for name, value in group[0].items() if name != "id"}
        session.execute(
            update(table(model)).where(one_of(columns.id, "ids")).values(values),
            {"ids": [row["id"] for row in group]},
        )
    if each:
        # Rows writing the same columns side by side: the ORM makes a statement of each run.
        session.execute(update(model), sorted(each, key=lambda row: tuple(row)))
    expire_loaded(session, model, [row["id"] for row in rows])


def _move(
    command: Command | _Answering,
    state: AckState,
    detail: str,
    result: dict[str, Any],
    now: datetime,
) -> bool:
    """Move a command forward by a device's answer; False if the answer is late or repeated."""
    if command.status not in _ACK_FROM[state]:
        return False
    command.detail = (detail or "")[:500]
    if state is AckState.RECEIVED:
        command.status = CommandStatus.RECEIVED
        command.received_at = now
        return True
    command.status = CommandStatus(state.value)
    command.received_at = command.received_at or now
    command.finished_at = now
    command.result = result
    return True


def record_answer(
    session: Session,
    command: Command,
    state: AckState,
    detail: str,
    result: dict[str, Any],
    *,
    now: datetime,
) -> Command:
    """Record what the device answered, through whichever channel; never moves backwards."""
    if _move(command, state, detail, result, now) and command.status.finished:
        photos: list[dict[str, Any]] = []
        line = _finished(session, command, now, photos)
        for row in photos:
            command.device.photo_count = row["photo_count"]
            command.device.photo_count_at = row["photo_count_at"]
        add_events(session, [line], kind="command", actor=None)
    return command


def _finished(
    session: Session,
    command: Command | _Answering,
    now: datetime,
    photos: list[dict[str, Any]],
) -> EventLine:
    """What a finished command means for the register; its timeline line.

    A wipe's count of photos left is appended to `photos`, for the caller to write.
    """
    name = label(command.type)
    details: dict[str, object] = {"cmd_id": command.cmd_id, "result": command.result}
    if command.status is not CommandStatus.DONE:
        reason = command.detail or "no reason given"
        summary = f"{name} {command.status.label}: {reason}"
        return EventLine(command.school_id, command.device_id, summary, details)
    summary = f"{name} done"
    if command.type == "wipe_photos":
        deleted = int(command.result.get("deleted", 0) or 0)
        remaining = int(command.result.get("remaining", 0) or 0)
        photos.append({"id": command.device_id, "photo_count": remaining, "photo_count_at": now})
        summary = f"Photos wiped ({deleted} deleted, {remaining} left)"
        if command.result.get("users_removed"):
            summary = "Photos wiped: every user's data removed"
    elif command.type == "lost_mode":
        summary = "Lost mode is on" if command.args.get("enabled") else "Lost mode is off"
        if command.args.get("enabled") and command.result.get("lost_mode") is False:
            summary = "Locked with the return message; lost mode is not available on it"
    elif command.type == "freeze":
        summary = (
            "The device has the freeze: it refuses destructive commands"
            if command.args.get("enabled")
            else "The freeze is lifted on the device"
        )
    elif command.type == "factory_reset":
        device = session.get_one(Device, command.device_id)
        revoke_identities(session, device, now=now, why="factory reset acknowledged")
        summary = "Factory reset confirmed by the device; it must be enrolled again"
        events.publish(events.FactoryResetConfirmed(session, device, now))
    return EventLine(command.school_id, command.device_id, summary, details)


def record_report(
    session: Session, identity: DeviceIdentity, report: Report, *, now: datetime
) -> None:
    """Apply a verified inventory/applied-state report to the register."""
    record_reports(session, [(identity, report)], now=now)


def record_reports(
    session: Session, reports: Sequence[tuple[DeviceIdentity, Report]], *, now: datetime
) -> None:
    """Apply verified reports in arrival order; the networks they name are judged together."""
    sightings = [
        sighting
        for identity, report in reports
        if (sighting := _apply_report(session, identity, report, now)) is not None
    ]
    if sightings:
        # One event for the batch: each school's network list is loaded once, not per report.
        events.publish(events.NetworksReported(session, sightings))


def _apply_report(
    session: Session, identity: DeviceIdentity, report: Report, now: datetime
) -> events.NetworkSighting | None:
    """One report on the register; the network it names, for the batch to judge."""
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
        apps = [{"app_id": app, "name": app} for app in report.apps]
        events.publish(events.AppsReported(session, device, now, apps))
    if report.profile_sha256 or report.settings is not None:
        events.publish(
            events.ProfileReported(
                session,
                device,
                now,
                report.profile_sha256,
                report.settings,
                report.settings_sha256,
            )
        )
    record_protection(
        session,
        device,
        passcode=report.passcode,
        storage_encrypted=report.storage_encrypted,
        details=report.security_detail or {},
        at=now,
    )
    if not report.network:
        return None
    network = report.network
    return events.NetworkSighting(
        device, now, "device", ssid=network.get("ssid"), gateway=network.get("gateway")
    )


def record_presence(
    session: Session, identity: DeviceIdentity, *, online: bool, now: datetime
) -> None:
    was = identity.online
    identity.online = online
    identity.last_seen_at = now
    identity.device.last_seen_at = now
    if not online and (was or identity.offline_since is None):
        identity.offline_since = now
    elif online:
        identity.offline_since = None
    if online and not was:
        events.publish(events.DeviceCameOnline(session, identity.device, now))


def is_finished(status: CommandStatus) -> bool:
    return status in FINISHED
