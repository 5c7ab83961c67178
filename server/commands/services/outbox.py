"""The worker's side of the outbox: claim queued commands, mark them sent, ask again, expire."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from server.commands.models import Command, CommandStatus
from server.commands.services.catalogue import label
from server.db import one_of, table
from server.devices.services import add_event
from server.enrolment.models import DeviceIdentity


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


def _outgoing(command: Any, mqtt_id: str, seq: int) -> Outgoing:
    """A command (a mapped row, or a claim's columns) as it goes out to `mqtt_id` as `seq`."""
    return Outgoing(
        command.id,
        command.cmd_id,
        mqtt_id,
        seq,
        command.type,
        dict(command.args),
        int((command.approved_at or command.created_at).timestamp()),
        int(command.expires_at.timestamp()),
    )


# The queued commands, spelt as the partial index `ix_commands_queued` is, so that both databases
# use it: a bound parameter would not match its predicate, and without statistics SQLite
# preferred the status index and sorted every queued row for each claim of 100.
_QUEUED = Command.status == literal_column(f"'{CommandStatus.QUEUED.value}'")


_WAITING = select(Command.id).where(_QUEUED, Command.expires_at > bindparam("now")).limit(1)


def has_outgoing(session: Session, *, now: datetime) -> bool:
    """Whether any command waits to be published: the worker asks often, so it only reads."""
    return session.scalar(_WAITING, {"now": now}) is not None


# The live identities of the devices a claim's commands are for.
_LIVE_IDENTITIES = select(
    DeviceIdentity.id, DeviceIdentity.device_id, DeviceIdentity.mqtt_id
).where(one_of(DeviceIdentity.device_id, "ids"), DeviceIdentity.revoked_at.is_(None))


# Built once (a claim runs many times a second): the oldest waiting commands after `after`.
_CLAIM = (
    select(
        Command.id,
        Command.cmd_id,
        Command.type,
        Command.args,
        Command.approved_at,
        Command.created_at,
        Command.expires_at,
        Command.device_id,
    )
    .where(_QUEUED, Command.expires_at > bindparam("now"), Command.id > bindparam("after"))
    .order_by(Command.id)
    .limit(bindparam("wanted"))
    .with_hint(Command, "INDEXED BY ix_commands_queued", "sqlite")
)
_CLAIM_LOCKED = _CLAIM.with_for_update(skip_locked=True)


def claim_outgoing(session: Session, *, now: datetime, limit: int = 500) -> list[Outgoing]:
    """Queued commands to publish now, each given the device's next sequence number; once the
    broker has them, `mark_published` records them sent.

    On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED so several workers share the work.
    """
    # Columns and set-based updates rather than mapped rows: a fleet-wide command claims
    # thousands at once, and the unit of work would load, track and update each one. Commands
    # and identities are two queries, not a join: with statistics from before a fleet-wide
    # command was queued, PostgreSQL planned the join as a pass over every identity for each
    # command (0.75 s a claim at 3,000 devices, growing with the square of the fleet).
    claimed: list[tuple[Any, Any]] = []
    after = 0
    query = _CLAIM_LOCKED if session.get_bind().dialect.name == "postgresql" else _CLAIM
    while len(claimed) < limit:
        wanted = limit - len(claimed)
        rows = session.execute(query, {"now": now, "after": after, "wanted": wanted}).all()
        if not rows:
            break
        after = rows[-1].id
        identities = {
            identity.device_id: identity
            for identity in session.execute(
                _LIVE_IDENTITIES, {"ids": sorted({row.device_id for row in rows})}
            )
        }
        # A command for a device with no live identity waits, unclaimed, until it enrols again.
        claimed += [(row, identities[row.device_id]) for row in rows if row.device_id in identities]
        if len(rows) < wanted:
            break
    got = Counter(identity.id for _row, identity in claimed)  # identity → its commands here
    # Each count moves on first and is read back as it moved: a second worker claiming for the
    # same device meanwhile waits for this one's commit and numbers after it. (Numbering from
    # the count read with the commands gave both workers the same numbers.) One statement for
    # each number of commands an identity got (nearly always just one).
    taken: dict[int, list[int]] = {}
    for identity_id, count in got.items():
        taken.setdefault(count, []).append(identity_id)
    numbered: dict[int, int] = {}  # identity id → the number given last (before its first here)
    for count, ids in taken.items():
        moved = session.execute(_SEQ_MOVES_ON, {"ids": ids, "count": count})
        numbered.update((row.id, row.last_seq - count) for row in moved)
    out = []
    for row, identity in sorted(claimed, key=lambda pair: (pair[1].id, pair[0].id)):
        numbered[identity.id] += 1
        out.append(_outgoing(row, identity.mqtt_id, numbered[identity.id]))
    return out


# Each identity's count moves on by the commands it got (one statement per count), and comes back.
_IDENTITIES = table(DeviceIdentity).c
_SEQ_MOVES_ON = (
    update(table(DeviceIdentity))
    .where(one_of(_IDENTITIES.id, "ids"))
    .values(last_seq=_IDENTITIES.last_seq + bindparam("count", type_=Integer))
    .returning(_IDENTITIES.id, _IDENTITIES.last_seq)
)

_COMMANDS = table(Command).c
# Compiled once: each published command's own number and device, the rest alike.
_PUBLISHED = (
    update(table(Command))
    .where(_COMMANDS.id == bindparam("command_id"), _COMMANDS.status == CommandStatus.QUEUED)
    .values(
        status=CommandStatus.SENT,
        sent_at=bindparam("sent_at"),
        attempts=_COMMANDS.attempts + 1,
        seq=bindparam("published_seq"),
        mqtt_id=bindparam("published_to"),
    )
)


# On PostgreSQL one statement whose parameters are three arrays: a parameter set per command was
# a statement per command for the server (1,000 of them took 31 ms of its time).
_SENT = (
    func.unnest(
        bindparam("command_ids", type_=ARRAY(Integer)),
        bindparam("seqs", type_=ARRAY(Integer)),
        bindparam("mqtt_ids", type_=ARRAY(String)),
    )
    .table_valued("command_id", "seq", "mqtt_id")
    .render_derived(name="sent")
)
_PUBLISHED_AS_ONE = (
    update(table(Command))
    .where(_COMMANDS.id == _SENT.c.command_id, _COMMANDS.status == CommandStatus.QUEUED)
    .values(
        status=CommandStatus.SENT,
        sent_at=bindparam("sent_at"),
        attempts=_COMMANDS.attempts + 1,
        seq=_SENT.c.seq,
        mqtt_id=_SENT.c.mqtt_id,
    )
)


def mark_published(session: Session, outgoing: Sequence[Outgoing], *, now: datetime) -> None:
    """Claimed commands the broker has taken become sent, under the sequence number and device
    id they went out with: one statement for the batch."""
    if not outgoing:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _PUBLISHED_AS_ONE,
            {
                "command_ids": [o.command_id for o in outgoing],
                "seqs": [o.seq for o in outgoing],
                "mqtt_ids": [o.mqtt_id for o in outgoing],
                "sent_at": now,
            },
        )
    else:
        session.execute(
            _PUBLISHED,
            [
                {
                    "command_id": o.command_id,
                    "sent_at": now,
                    "published_seq": o.seq,
                    "published_to": o.mqtt_id,
                }
                for o in outgoing
            ],
        )


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
    again = []
    for command in commands:
        command.attempts += 1
        # Sent before, so published under a device id and number, which it goes out with again.
        assert command.mqtt_id is not None and command.seq is not None
        again.append(_outgoing(command, command.mqtt_id, command.seq))
    return again


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
