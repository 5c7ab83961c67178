"""The worker's consumer on its own: batches of signed device messages against a real database."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.bindings
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.orm import Session

from mqtt.envelope import canonical_json, encode_public_key, key_id, sign
from mqtt.messages import AckState, Report, build_ack
from mqtt.topics import ack_topic, reported_topic, status_topic
from server import device_channel
from server.auth.models import Role, User
from server.commands import services
from server.commands.models import Command, CommandStatus
from server.crypto import SecretBox
from server.db import Database, utcnow
from server.device_channel import UNKNOWN_FOR, DeviceChannel
from server.devices.models import Device, DeviceEvent
from server.devices.services import protection_of
from server.enrolment.models import DeviceIdentity
from tests.server.conftest import settings_on


@dataclass
class Sender:
    """An enrolled device whose key the test holds, so it can sign acks."""

    identity: DeviceIdentity
    key: Ed25519PrivateKey

    def ack(self, command: Command, state: AckState, **result: Any) -> tuple[str, bytes]:
        mqtt_id = self.identity.mqtt_id
        body = build_ack(
            command.cmd_id,
            state,
            device_id=mqtt_id,
            kid=self.identity.kid,
            now=int(utcnow().timestamp()),
            result=result or None,
        ).to_body()
        return ack_topic(mqtt_id), sign(body, self.key)


@pytest.fixture
def now() -> datetime:
    return utcnow()


@pytest.fixture
def channel(
    database: tuple[str, Engine], connection: Connection, tmp_path: Path, now: datetime
) -> Iterator[DeviceChannel]:
    """The worker's channel on the test's transaction; never connected (process is called)."""
    settings = settings_on(database[0], tmp_path / "instance")
    made = DeviceChannel(
        Database(database[0], bind=connection),
        settings,
        SecretBox(settings.data_keys),
        broker_url="mqtt://127.0.0.1:1",
        clock=lambda: now,
    )
    yield made
    made.client.loop_stop()


def new_sender(session: Session, device: Device) -> Sender:
    """A live identity with a key of its own for `device`, committed."""
    key = Ed25519PrivateKey.generate()
    identity = DeviceIdentity(
        school_id=device.school_id,
        device_id=device.id,
        mqtt_id=f"dev-{uuid.uuid4().hex[:12]}",
        public_key=encode_public_key(key.public_key()),
        kid=key_id(key.public_key()),
        broker_secret_hash="h",
        platform="simulated",
    )
    session.add(identity)
    session.commit()
    return Sender(identity, key)


@pytest.fixture
def sender(session: Session, make_device: Callable[..., Device]) -> Callable[[], Sender]:
    return lambda: new_sender(session, make_device())


def _sent(session: Session, sender: Sender, command_type: str = "wipe_photos") -> Command:
    now = utcnow()
    command = Command(
        school_id=sender.identity.school_id,
        device_id=sender.identity.device_id,
        cmd_id=str(uuid.uuid4()),
        type=command_type,
        args={},
        status=CommandStatus.SENT,
        created_at=now,
        approved_at=now,
        sent_at=now,
        expires_at=now + timedelta(days=1),
        attempts=1,
        mqtt_id=sender.identity.mqtt_id,
        seq=1,
    )
    session.add(command)
    session.commit()
    return command


def _fresh(session: Session, command: Command) -> Command:
    session.expire_all()
    found = session.get(Command, command.id)
    assert found is not None
    return found


def _events(session: Session, device_id: int) -> list[str]:
    return list(
        session.scalars(
            select(DeviceEvent.summary)
            .where(DeviceEvent.device_id == device_id, DeviceEvent.kind == "command")
            .order_by(DeviceEvent.id)
        )
    )


@pytest.fixture
def statements(
    database: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the test does, the `COPY`s that bulk inserts
    send the driver directly on PostgreSQL included (as `INSERT INTO <table> `)."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    copy = psycopg.Cursor.copy

    def copying(cursor: psycopg.Cursor[Any], statement: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(re.sub(r"^COPY (\S+) .*", r"INSERT INTO \1 ", statement))
        return copy(cursor, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", copying)
    engine = database[1]
    event.listen(engine, "before_cursor_execute", listen)
    yield seen
    event.remove(engine, "before_cursor_execute", listen)


def test_a_batch_of_acks_costs_one_query_for_its_commands(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    statements: list[str],
    now: datetime,
) -> None:
    """P-PHOTO-1: `received` then `done` in one batch is recorded as done, with both times."""
    senders = [sender() for _ in range(3)]
    sent = [_sent(session, s) for s in senders]
    batch = [s.ack(c, AckState.RECEIVED) for s, c in zip(senders, sent, strict=True)]
    batch += [
        s.ack(c, AckState.DONE, deleted=4, remaining=0) for s, c in zip(senders, sent, strict=True)
    ]
    statements.clear()
    channel.process(batch)
    assert len([s for s in statements if s.lstrip().startswith("SELECT") and "commands" in s]) == 1
    for s, command in zip(senders, sent, strict=True):
        done = _fresh(session, command)
        assert done.status is CommandStatus.DONE
        assert done.received_at == done.finished_at == now
        assert done.result == {"deleted": 4, "remaining": 0}
        assert _events(session, s.identity.device_id) == ["Photos wiped (4 deleted, 0 left)"]
    assert channel.stats.acks == 6 and channel.stats.rejected == 0


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The signed bytes of every signature check made while the test runs."""
    seen: list[bytes] = []
    real = nacl.bindings.crypto_sign_open

    def counting(signed: bytes, public_key: bytes) -> bytes:
        seen.append(signed)
        return real(signed, public_key)

    monkeypatch.setattr(nacl.bindings, "crypto_sign_open", counting)
    return seen


def _forged(answer: tuple[str, bytes], other: tuple[str, bytes]) -> tuple[str, bytes]:
    """`answer` carrying `other`'s signature: made by the device's key, but not over this body."""
    topic, payload = answer
    envelope = json.loads(payload) | {"sig": json.loads(other[1])["sig"]}
    return topic, canonical_json(envelope)


def test_a_received_answered_in_the_same_batch_is_not_checked_again(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    verified: list[bytes],
    now: datetime,
) -> None:
    """P-PHOTO-1: a device's `received` then `done` in one batch: the `done` is verified and
    records the wipe with both times, and the `received` it makes moot is not verified too."""
    senders = [sender() for _ in range(3)]
    sent = [_sent(session, s) for s in senders]
    batch = [s.ack(c, AckState.RECEIVED) for s, c in zip(senders, sent, strict=True)]
    batch += [s.ack(c, AckState.DONE, deleted=1) for s, c in zip(senders, sent, strict=True)]
    channel.process(batch)
    assert len(verified) == 3
    for command in sent:
        done = _fresh(session, command)
        assert done.status is CommandStatus.DONE
        assert done.received_at == done.finished_at == now
    assert channel.stats.superseded == 3 and channel.stats.acks == 6
    assert channel.stats.rejected == 0


def test_a_received_is_checked_when_what_follows_it_is_not_a_verified_answer(
    session: Session, channel: DeviceChannel, sender: Callable[[], Sender], now: datetime
) -> None:
    """P-PHOTO-1: a `done` that fails its signature check, a device refusing a message it could
    not verify, another device's answer, or an answer that came first never stand in for a
    `received`: each such `received` is verified and recorded, and nothing more."""
    forged_after, refused_after, answered_first = (sender() for _ in range(3))
    # A batch is taken in topic order: the stranger's answer comes after the `received`.
    other_answered, stranger = sorted((sender(), sender()), key=lambda d: d.identity.mqtt_id)
    commands = {
        name: _sent(session, device)
        for name, device in (
            ("forged", forged_after),
            ("refused", refused_after),
            ("other", other_answered),
            ("first", answered_first),
        )
    }
    channel.process(
        [
            received := forged_after.ack(commands["forged"], AckState.RECEIVED),
            _forged(forged_after.ack(commands["forged"], AckState.DONE), received),
            refused_after.ack(commands["refused"], AckState.RECEIVED),
            refused_after.ack(commands["refused"], AckState.REJECTED, verified=False),
            other_answered.ack(commands["other"], AckState.RECEIVED),
            stranger.ack(commands["other"], AckState.DONE),
        ]
    )
    for name in ("forged", "refused", "other"):
        recorded = _fresh(session, commands[name])
        assert (recorded.status, recorded.received_at, recorded.finished_at) == (
            CommandStatus.RECEIVED,
            now,
            None,
        ), name
    assert channel.stats.superseded == 0 and channel.stats.rejected == 1
    channel.process(
        [
            answered_first.ack(commands["first"], AckState.DONE, deleted=1),
            answered_first.ack(commands["first"], AckState.RECEIVED),
        ]
    )
    assert _fresh(session, commands["first"]).status is CommandStatus.DONE
    assert channel.stats.superseded == 0


def test_duplicate_and_late_acks_change_nothing(
    session: Session, channel: DeviceChannel, sender: Callable[[], Sender], now: datetime
) -> None:
    """A repeated `done` and a `received` arriving after it leave the recorded wipe alone."""
    device = sender()
    command = _sent(session, device)
    done = device.ack(command, AckState.DONE, deleted=2, remaining=0)
    channel.process([done, device.ack(command, AckState.RECEIVED), done])
    channel.process([device.ack(command, AckState.RECEIVED), done])
    recorded = _fresh(session, command)
    assert recorded.status is CommandStatus.DONE and recorded.finished_at == now
    assert _events(session, device.identity.device_id) == ["Photos wiped (2 deleted, 0 left)"]


def test_unverified_refusals_and_strangers_commands_are_ignored(
    session: Session, channel: DeviceChannel, sender: Callable[[], Sender]
) -> None:
    """A refusal of an unverifiable message, an unknown cmd_id and another device's command
    move nothing; the device's own real ack in the same batch still counts."""
    device, other = sender(), sender()
    mine, theirs = _sent(session, device), _sent(session, other)
    unknown = Command(cmd_id=str(uuid.uuid4()))
    channel.process(
        [
            device.ack(mine, AckState.REJECTED, verified=False),
            device.ack(unknown, AckState.DONE),
            device.ack(theirs, AckState.DONE),
            device.ack(mine, AckState.RECEIVED),
        ]
    )
    assert _fresh(session, mine).status is CommandStatus.RECEIVED
    assert _fresh(session, theirs).status is CommandStatus.SENT
    assert _events(session, other.identity.device_id) == []


def test_an_unknown_sender_is_looked_up_once_in_a_while(
    channel: DeviceChannel, statements: list[str], now: datetime
) -> None:
    """Retained statuses of devices long gone do not each cost a query."""
    stale = [(status_topic(f"dev-gone{n:04d}"), b"online") for n in range(5)]

    def lookups() -> int:
        return len([s for s in statements if "FROM device_identities" in s])

    channel.process(stale)
    assert lookups() == 1 and channel.stats.rejected == 5
    channel.process(stale)
    assert lookups() == 1 and channel.stats.rejected == 10
    channel.clock = lambda: now + UNKNOWN_FOR + timedelta(seconds=1)
    channel.process(stale[:1])
    assert lookups() == 2


def test_a_revoked_sender_is_refused_even_after_it_was_known(
    session: Session, channel: DeviceChannel, sender: Callable[[], Sender], now: datetime
) -> None:
    """A device factory-reset since its last message cannot ack with its old key."""
    device = sender()
    first, second = _sent(session, device), _sent(session, device)
    channel.process([device.ack(first, AckState.DONE)])
    assert _fresh(session, first).status is CommandStatus.DONE
    identity = session.get(DeviceIdentity, device.identity.id)
    assert identity is not None
    identity.revoked_at = now
    session.commit()
    channel.process([device.ack(second, AckState.DONE)])
    assert _fresh(session, second).status is CommandStatus.SENT
    assert channel.stats.rejected == 1


def test_a_message_that_cannot_be_recorded_does_not_hold_up_the_rest(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """P-PHOTO-1: one device's unrecordable ack is dropped and counted; the other ack lands."""
    good, bad = sender(), sender()
    mine, theirs = _sent(session, good), _sent(session, bad)
    real = services.record_acks

    def refuse_bad(inner: Session, acks: Any, *, now: datetime) -> Any:
        if any(identity.id == bad.identity.id for identity, _ack in acks):
            raise ValueError("this device's ack cannot be recorded")
        return real(inner, acks, now=now)

    monkeypatch.setattr(services, "record_acks", refuse_bad)
    channel._record([bad.ack(theirs, AckState.DONE), good.ack(mine, AckState.DONE)])
    assert _fresh(session, mine).status is CommandStatus.DONE
    assert _fresh(session, theirs).status is CommandStatus.SENT
    assert channel.stats.dropped == 1 and channel.inbox.empty()


def test_a_batch_nothing_of_which_can_be_recorded_is_kept_for_later(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When every message fails (the database is away), none is dropped: all wait in the inbox."""
    device = sender()
    first, second = _sent(session, device), _sent(session, device)
    batch = [device.ack(first, AckState.DONE), device.ack(second, AckState.DONE)]

    def away(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("the database is away")

    monkeypatch.setattr(services, "record_acks", away)
    monkeypatch.setattr(channel, "_stop", _NoWait())
    channel._record(batch)
    assert channel.stats.dropped == 0
    assert sorted(channel.inbox.get_nowait() for _ in batch) == sorted(batch)
    monkeypatch.undo()
    channel._record(batch)
    assert {_fresh(session, c).status for c in (first, second)} == {CommandStatus.DONE}


class _NoWait:
    """Stands in for the stop event so a retry pause does not slow the test."""

    def wait(self, _timeout: float) -> bool:
        return False


def _inserts(statements: list[str], table: str) -> int:
    return sum(s.lstrip().startswith(f"INSERT INTO {table} ") for s in statements)


def test_a_fleet_wide_command_writes_each_kind_of_row_in_one_statement(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    statements: list[str],
    make_user: Callable[..., User],
) -> None:
    """Asking many devices and recording their answers costs one INSERT per table, not one per
    device (SQLite inserted each row by itself to learn its id)."""
    senders = [sender() for _ in range(5)]
    devices = [session.get(Device, s.identity.device_id) for s in senders]
    statements.clear()
    issued = services.issue(
        session, make_user(Role.TECHNICIAN), [d for d in devices if d], "ping", reason="check"
    )
    assert [c.device_id for c in issued] == [s.identity.device_id for s in senders]
    assert len({c.batch_id for c in issued}) == 1 and issued[0].status is CommandStatus.QUEUED
    assert _inserts(statements, "commands") == 1
    assert _inserts(statements, "device_events") == 1
    statements.clear()
    channel.process([s.ack(c, AckState.DONE) for s, c in zip(senders, issued, strict=True)])
    assert _inserts(statements, "device_events") == 1
    for s, command in zip(senders, issued, strict=True):
        assert _fresh(session, command).status is CommandStatus.DONE
        assert _events(session, s.identity.device_id) == ["Ping asked for", "Ping done"]


def _updates(statements: list[str], table: str) -> int:
    return sum(s.lstrip().startswith(f"UPDATE {table} ") for s in statements)


def test_a_fleet_wide_wipe_is_recorded_in_one_update_per_table(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    statements: list[str],
    now: datetime,
) -> None:
    """P-PHOTO-1: every device's `done` moves its wipe and its photo count, in one UPDATE of the
    commands and one of the devices for the whole batch (the unit of work wrote row by row)."""
    senders = [sender() for _ in range(4)]
    sent = [_sent(session, s) for s in senders]
    statements.clear()
    channel.process(
        [
            s.ack(c, AckState.DONE, deleted=3, remaining=1)
            for s, c in zip(senders, sent, strict=True)
        ]
    )
    assert _updates(statements, "commands") == 1 and _updates(statements, "devices") == 1
    session.expire_all()
    for s, command in zip(senders, sent, strict=True):
        done = _fresh(session, command)
        assert done.status is CommandStatus.DONE and done.finished_at == now
        device = session.get(Device, s.identity.device_id)
        assert device is not None and (device.photo_count, device.photo_count_at) == (1, now)


def test_acks_that_finish_alike_share_a_statement_and_each_row_keeps_its_own_answer(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    statements: list[str],
    now: datetime,
) -> None:
    """P-PHOTO-1: in one batch, wipes that ended alike are written together and the rest one by
    one, and every command and device ends with what its own device said."""
    senders = [sender() for _ in range(6)]
    sent = [_sent(session, s) for s in senders]
    answers = [
        (AckState.DONE, {"deleted": 3, "remaining": 0}),
        (AckState.DONE, {"deleted": 3, "remaining": 0}),
        (AckState.DONE, {"deleted": 3, "remaining": 0}),
        (AckState.DONE, {"deleted": 5, "remaining": 2}),
        (AckState.RECEIVED, {}),
        (AckState.FAILED, {"deleted": 0, "remaining": 9}),
    ]
    statements.clear()
    channel.process(
        [
            s.ack(c, state, **result)
            for s, c, (state, result) in zip(senders, sent, answers, strict=True)
        ]
    )
    # The three alike in one statement; the other three in one for each set of columns they
    # write (a `received` writes no finish). The devices' photo counts likewise.
    assert _updates(statements, "commands") == 3 and _updates(statements, "devices") == 2
    session.expire_all()
    for s, command, (state, result) in zip(senders, sent, answers, strict=True):
        stored = _fresh(session, command)
        device = session.get(Device, s.identity.device_id)
        assert device is not None
        assert stored.received_at == now
        if state is AckState.RECEIVED:
            assert stored.status is CommandStatus.RECEIVED and stored.finished_at is None
            assert device.photo_count_at is None
            continue
        assert stored.status.value == state.value and stored.finished_at == now
        assert stored.result == result
        if state is AckState.DONE:
            assert (device.photo_count, device.photo_count_at) == (result["remaining"], now)
        else:
            assert device.photo_count_at is None


def test_an_ack_recorded_in_bulk_is_what_a_loaded_command_then_says(
    session: Session, sender: Callable[[], Sender], now: datetime
) -> None:
    """A caller holding the command and its device sees the answer on those very objects."""
    device = sender()
    command = _sent(session, device)
    loaded = session.get(Device, device.identity.device_id)
    assert loaded is not None and command.status is CommandStatus.SENT
    ack = build_ack(
        command.cmd_id,
        AckState.DONE,
        device_id=device.identity.mqtt_id,
        kid=device.identity.kid,
        now=int(now.timestamp()),
        result={"deleted": 2, "remaining": 0},
    )
    assert services.record_ack(session, device.identity, ack, now=now) is command
    assert command.status is CommandStatus.DONE and command.finished_at == now
    assert loaded.photo_count == 0 and loaded.photo_count_at == now


def test_signatures_are_checked_outside_the_write_transaction(
    session: Session,
    channel: DeviceChannel,
    sender: Callable[[], Sender],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ack and report is still verified, but while no write transaction is open: on
    SQLite that holds the one writer lock the publishing side waits for."""
    device = sender()
    command = _sent(session, device)
    writing = False
    checked: list[bool] = []
    real_transaction, real_verify = channel._transaction, nacl.bindings.crypto_sign_open

    @contextmanager
    def watched() -> Iterator[Session]:
        nonlocal writing
        with real_transaction() as inner:
            writing = True
            try:
                yield inner
            finally:
                writing = False

    def spy(*args: Any, **kwargs: Any) -> Any:
        checked.append(writing)
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(channel, "_transaction", watched)
    monkeypatch.setattr(nacl.bindings, "crypto_sign_open", spy)
    report = Report(
        kid=device.identity.kid,
        device_id=device.identity.mqtt_id,
        iat=int(utcnow().timestamp()),
        exp=int(utcnow().timestamp()) + 600,
        os_version="12.1",
    )
    channel.process(
        [
            device.ack(command, AckState.DONE),
            (reported_topic(device.identity.mqtt_id), sign(report.to_body(), device.key)),
        ]
    )
    assert checked == [False, False]
    assert _fresh(session, command).status is CommandStatus.DONE
    assert channel.stats.acks == 1 and channel.stats.reports == 1


def test_commands_for_devices_without_a_live_identity_do_not_hold_up_the_outbox(
    session: Session, sender: Callable[[], Sender], now: datetime
) -> None:
    """A claim passes over queued commands whose device was reset (no live identity) and still
    fills its batch from the rest; those wait, queued, for the device to enrol again."""
    reset, live = sender(), sender()
    waiting = [_sent(session, reset) for _ in range(3)]
    ready = [_sent(session, live) for _ in range(3)]
    for command in waiting + ready:
        command.status = CommandStatus.QUEUED
    identity = session.get(DeviceIdentity, reset.identity.id)
    assert identity is not None
    identity.revoked_at = now
    session.commit()
    claimed = services.claim_outgoing(session, now=now, limit=2)
    assert [o.command_id for o in claimed] == [c.id for c in ready[:2]]
    assert [o.seq for o in claimed] == [1, 2]
    claimed = services.claim_outgoing(session, now=now, limit=5)
    assert [o.command_id for o in claimed] == [c.id for c in ready]
    assert {_fresh(session, c).status for c in waiting} == {CommandStatus.QUEUED}


def test_a_published_claim_records_each_command_under_its_own_sequence_number(
    session: Session, sender: Callable[[], Sender], now: datetime
) -> None:
    """Commands published together are recorded sent, each under the sequence number and device
    id it went out with, and each device's count moves on by as many commands as it got."""
    busy, quiet = sender(), sender()
    commands = [_sent(session, busy) for _ in range(3)] + [_sent(session, quiet)]
    for command in commands:
        command.status, command.seq, command.mqtt_id = CommandStatus.QUEUED, None, None
    quiet_identity = session.get(DeviceIdentity, quiet.identity.id)
    assert quiet_identity is not None
    quiet_identity.last_seq = 7
    session.commit()
    claimed = services.claim_outgoing(session, now=now, limit=10)
    services.mark_published(session, claimed, now=now)
    session.commit()
    assert [(o.mqtt_id, o.seq) for o in claimed] == [
        (busy.identity.mqtt_id, 1),
        (busy.identity.mqtt_id, 2),
        (busy.identity.mqtt_id, 3),
        (quiet.identity.mqtt_id, 8),
    ]
    session.expire_all()
    for outgoing in claimed:
        stored = session.get(Command, outgoing.command_id)
        assert stored is not None
        assert (stored.status, stored.seq, stored.mqtt_id, stored.sent_at, stored.attempts) == (
            CommandStatus.SENT,
            outgoing.seq,
            outgoing.mqtt_id,
            now,
            2,
        )
    session.expire_all()
    assert [session.get_one(DeviceIdentity, s.identity.id).last_seq for s in (busy, quiet)] == [
        3,
        8,
    ]


def test_a_claimed_command_cancelled_before_it_is_marked_sent_stays_cancelled(
    session: Session, sender: Callable[[], Sender], now: datetime
) -> None:
    """Marking a batch sent moves only the commands still queued: one cancelled meanwhile keeps
    its cancellation and is not given a sequence number it never went out with."""
    device = sender()
    commands = [_sent(session, device) for _ in range(2)]
    for command in commands:
        command.status, command.seq, command.mqtt_id = CommandStatus.QUEUED, None, None
    session.commit()
    claimed = services.claim_outgoing(session, now=now, limit=10)
    assert [o.command_id for o in claimed] == [c.id for c in commands]
    commands[1].status = CommandStatus.CANCELLED
    session.flush()
    services.mark_published(session, claimed, now=now)
    session.commit()
    session.expire_all()
    kept, cancelled = (session.get_one(Command, c.id) for c in commands)
    assert (kept.status, kept.seq) == (CommandStatus.SENT, claimed[0].seq)
    assert (cancelled.status, cancelled.seq, cancelled.attempts) == (
        CommandStatus.CANCELLED,
        None,
        1,
    )


def test_a_batch_takes_what_follows_closely_and_no_more(
    channel: DeviceChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages a moment apart are recorded together; a pause, the batch's size or its time
    limit ends the batch, and what is left waits for the next."""
    monkeypatch.setattr(device_channel, "BATCH_GAP", 0.3)
    monkeypatch.setattr(device_channel, "BATCH_LINGER", 2.0)

    def feed(pauses: list[float]) -> threading.Thread:
        def run() -> None:
            for n, pause in enumerate(pauses):
                time.sleep(pause)
                channel.inbox.put(("t", str(n).encode()))

        feeder = threading.Thread(target=run)
        feeder.start()
        return feeder

    feeder = feed([0.05, 0.05, 1.0])
    assert channel._take_batch(("t", b"first")) == [("t", b"first"), ("t", b"0"), ("t", b"1")]
    feeder.join()
    assert channel.inbox.get_nowait() == ("t", b"2")

    channel.batch = 2
    for n in range(3):
        channel.inbox.put(("t", str(n).encode()))
    assert len(channel._take_batch(channel.inbox.get_nowait())) == 2
    assert channel.inbox.qsize() == 1
    channel.inbox.get_nowait()

    channel.batch = 500
    monkeypatch.setattr(device_channel, "BATCH_LINGER", 0.2)
    feeder = feed([0.05] * 20)
    began = time.monotonic()
    taken = channel._take_batch(("t", b"first"))
    assert time.monotonic() - began < 0.6 and 2 <= len(taken) < 21
    feeder.join()


def test_a_report_in_the_batch_that_confirms_a_reset_is_refused_with_its_identity(
    session: Session, channel: DeviceChannel, sender: Callable[[], Sender], now: datetime
) -> None:
    """P-REG-7: a device reports its passcode on, then confirms a factory reset; the batch holds
    both and records acks first, so the report would be recorded as said at the erase, by an
    identity the erase revoked: it is refused as any later one would be, passcode and encryption
    stay not known, and the revoked identity is not online."""
    device = sender()
    reset = _sent(session, device, "factory_reset")
    stamp = int(now.timestamp())
    report = Report(
        kid=device.identity.kid,
        device_id=device.identity.mqtt_id,
        iat=stamp,
        exp=stamp + 600,
        passcode=True,
        storage_encrypted=True,
    )
    mqtt_id = device.identity.mqtt_id
    channel.process(
        [
            (reported_topic(mqtt_id), sign(report.to_body(), device.key)),
            (status_topic(mqtt_id), b"online"),
            device.ack(reset, AckState.DONE),
        ]
    )
    assert _fresh(session, reset).status is CommandStatus.DONE
    erased = session.get_one(Device, device.identity.device_id)
    protection = protection_of(session, erased)
    assert protection.gap and protection.passcode.startswith("Not known")
    identity = session.get_one(DeviceIdentity, device.identity.id)
    assert identity.revoked_at is not None and not identity.online
