"""Many rows at once: `insert_rows` (a `COPY` on PostgreSQL) and `one_of` (one array there)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.commands.models import Command, CommandStatus, Disruption
from server.db import insert_rows, one_of, table, utcnow
from server.devices.models import Device, DeviceEvent
from server.schools.models import School


def test_inserted_rows_read_back_as_given_with_the_defaults_filled_in(
    session: Session, school: School, make_device: Callable[..., Device]
) -> None:
    """Every value as an ORM insert would store it: enums by value, JSON as objects, times
    in UTC, and a column left out given its Python-side default."""
    devices = [make_device() for _ in range(3)]
    now = utcnow()
    insert_rows(
        session,
        table(Command),
        [
            {
                "school_id": school.id,
                "device_id": device.id,
                "cmd_id": f"bulk-{n}",
                "batch_id": "bulk",
                "type": "wipe_photos",
                "args": {"nested": {"list": [1, "two", None]}, "quote": 'a "tab"\there'},
                "reason": "line one\nline two \\ backslash",
                "status": CommandStatus.QUEUED,
                "created_at": now,
                "expires_at": now + timedelta(hours=n),
                "disruption": Disruption.PHOTO_WIPE if n else None,
            }
            for n, device in enumerate(devices)
        ],
    )
    rows = session.scalars(select(Command).where(Command.batch_id == "bulk").order_by(Command.id))
    got = list(rows)
    assert [c.device_id for c in got] == [d.id for d in devices]
    for n, command in enumerate(got):
        assert command.status is CommandStatus.QUEUED
        assert command.args == {"nested": {"list": [1, "two", None]}, "quote": 'a "tab"\there'}
        assert command.reason == "line one\nline two \\ backslash"
        assert command.expires_at == now + timedelta(hours=n)
        assert command.disruption is (Disruption.PHOTO_WIPE if n else None)
        # Left out: the model's defaults, as `insert()` fills them.
        assert command.attempts == 0 and command.result == {} and command.detail == ""


def test_a_timeline_line_left_without_a_time_is_stamped_now(
    session: Session, make_device: Callable[..., Device]
) -> None:
    device = make_device()
    before = utcnow()
    insert_rows(
        session,
        table(DeviceEvent),
        [
            {
                "school_id": device.school_id,
                "device_id": device.id,
                "kind": "command",
                "summary": "Bulk line",
                "actor_id": None,
                "details": {},
            }
        ],
    )
    event = session.scalars(select(DeviceEvent).where(DeviceEvent.summary == "Bulk line")).one()
    assert event.at is not None and before <= event.at <= utcnow()
    assert event.details == {}


def test_a_bad_row_fails_the_whole_insert_as_an_integrity_error(
    session: Session, make_device: Callable[..., Device]
) -> None:
    """A row naming no device refuses the batch with the error any statement would raise, and
    none of the batch is written."""
    device = make_device()
    line: dict[str, object] = {"kind": "command", "summary": "Half", "details": {}}
    with pytest.raises(IntegrityError), session.begin_nested():
        insert_rows(
            session,
            table(DeviceEvent),
            [
                {"school_id": device.school_id, "device_id": device.id, **line},
                {"school_id": device.school_id, "device_id": device.id + 10_000, **line},
            ],
        )
    assert session.scalars(select(DeviceEvent).where(DeviceEvent.summary == "Half")).all() == []


def test_one_of_selects_exactly_the_rows_named_whatever_their_number(
    session: Session, make_device: Callable[..., Device]
) -> None:
    devices = [make_device() for _ in range(5)]
    query = select(Device.id).where(one_of(Device.id, "ids")).order_by(Device.id)
    for wanted in ([devices[1].id], [d.id for d in devices[::2]], [d.id for d in devices], []):
        assert session.scalars(query, {"ids": wanted}).all() == sorted(wanted)
    # The same key twice in one statement, as `issue` asks every channel at once.
    both = select(Device.id).where(one_of(Device.id, "ids"), one_of(Device.school_id, "schools"))
    assert session.scalars(both, {"ids": [devices[0].id], "schools": [devices[0].school_id]}).all()


def test_one_of_is_one_array_on_postgresql_and_a_list_on_sqlite(
    database: tuple[str, Engine],
) -> None:
    """At a fleet's size PostgreSQL plans a thousand parameters far slower than one array."""
    engine = database[1]
    compiled = str(select(Device.id).where(one_of(Device.serial, "serials")).compile(engine))
    if engine.dialect.name == "postgresql":
        assert "devices.serial = ANY (%(serials)s::VARCHAR(64)[])" in compiled, compiled
    else:
        assert "devices.serial IN (__[POSTCOMPILE_serials])" in compiled, compiled
