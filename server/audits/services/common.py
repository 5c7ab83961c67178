"""What every part of the audits shares: list lengths, finding a record, notes and place names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audits.models import Audit, PhotoCheck, SpotCheck
from server.devices.models import DeviceStatus
from server.errors import NotFound, ValidationFailed
from server.schools.models import Location

# Each list in a report shows this many devices; the CSV has them all.
LIST_LIMIT = 100
UNUSABLE = frozenset({DeviceStatus.LOST, DeviceStatus.STOLEN})
Record = TypeVar("Record", Audit, PhotoCheck, SpotCheck)


def _school_row(
    session: Session,
    model: type[Record],
    row_id: int,
    school_id: int,
    missing: str,
    *,
    load: Sequence[Any] = (),
    lock: bool = False,
) -> Record:
    """The school's audit, photo check or spot check by id; NotFound with `missing` otherwise."""
    query = select(model).where(model.id == row_id, model.school_id == school_id)
    if load:
        query = query.options(*load)
    if lock:
        # Held until the transaction ends; populate_existing replaces what an earlier read left.
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalar(query)
    if row is None:
        raise NotFound(missing)
    return row


def _clean(text: str | None, limit: int, what: str) -> str:
    value = " ".join((text or "").split())
    if len(value) > limit:
        raise ValidationFailed(f"Keep {what} to {limit} characters or fewer.")
    return value


def place_paths(session: Session, school_id: int) -> dict[int, str]:
    """Every place's full path ('Main building › Year 4 classroom › Year 4 trolley'), one query."""
    rows = session.execute(
        select(Location.id, Location.parent_id, Location.name).where(
            Location.school_id == school_id
        )
    ).all()
    parent = {row.id: row.parent_id for row in rows}
    name = {row.id: row.name for row in rows}
    paths: dict[int, str] = {}

    def path(node: int) -> str:
        if node not in paths:
            up = parent.get(node)
            # A broken tree must not loop: a parent already being walked ends the walk.
            paths[node] = name[node]
            if up is not None and up in name:
                paths[node] = f"{path(up)} › {name[node]}"
        return paths[node]

    for node in name:
        path(node)
    return paths
