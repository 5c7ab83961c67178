"""Writing a checked file into the register in one go, or not at all."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.db import utcnow
from server.devices.models import Device, DeviceEvent, DeviceStatus, Platform
from server.errors import Conflict, ValidationFailed
from server.imports.pages import Options, Plan
from server.imports.services.checking import preview
from server.imports.services.shared import CHUNK, Progress, _norm, _notify
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    """What an import changed."""

    created: int
    updated: int
    unchanged: int
    places_created: list[str]


def _plain(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Platform | DeviceStatus):
        return value.value
    return value


def apply_plan(
    session: Session,
    school_id: int,
    plan: Plan,
    *,
    actor: User | None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write a checked plan in bulk (joins the caller's transaction; the caller commits)."""
    if not plan.ok:
        raise ValidationFailed(
            f"Nothing was imported: {len(plan.bad_rows)} row(s) have problems.",
            details=[p.as_dict() for p in plan.problems],
        )
    actor_id = actor.id if actor else None
    created_places = _create_places(session, school_id, plan, actor)
    now = utcnow()
    source = plan.filename[:120]
    new_rows = [r for r in plan.rows if r.action == "new"]
    changed_rows = [r for r in plan.rows if r.action == "update"]
    total = len(new_rows) + len(changed_rows)
    done = 0
    events: list[dict[str, Any]] = []
    for start in range(0, len(new_rows), CHUNK):
        chunk = new_rows[start : start + CHUNK]
        for row in chunk:
            if row.new_place is not None:
                place_id = created_places[_norm(row.new_place)]
                row.values["home_location_id"] = row.values["current_location_id"] = place_id
        # RETURNING the tag with the id: batched, whatever order the database returns rows in.
        ids = session.execute(
            insert(Device).returning(Device.id, Device.asset_tag),
            [{"school_id": school_id, **r.values} for r in chunk],
        ).all()
        for device_id, _tag in ids:
            events.append(
                {
                    "school_id": school_id,
                    "device_id": device_id,
                    "at": now,
                    "kind": "created",
                    "summary": f"Added to the register from {source}",
                    "actor_id": actor_id,
                    "details": {"import": source},
                }
            )
        done += len(chunk)
        _notify(progress, "importing", done, total)
    # One UPDATE statement per set of changed columns, executed for many devices at once.
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in changed_rows:
        if row.new_place is not None:
            place_id = created_places[_norm(row.new_place)]
            row.values["home_location_id"] = place_id
            row.changes["home_location_id"] = (row.changes["home_location_id"][0], place_id)
        by_columns.setdefault(tuple(sorted(row.values)), []).append(
            {"id": row.device_id, "updated_at": now, **row.values}
        )
        summary = "Details changed by import: " + ", ".join(
            name.replace("_", " ") for name in row.changes
        )
        events.append(
            {
                "school_id": school_id,
                "device_id": row.device_id,
                "at": now,
                "kind": "moved" if "home_location_id" in row.changes else "edited",
                "summary": summary[:500],
                "actor_id": actor_id,
                "details": {
                    "import": source,
                    "changes": {k: [_plain(a), _plain(b)] for k, (a, b) in row.changes.items()},
                },
            }
        )
    for params in by_columns.values():
        for start in range(0, len(params), CHUNK):
            session.execute(update(Device), params[start : start + CHUNK])
            done += len(params[start : start + CHUNK])
            _notify(progress, "importing", done, total)
    for start in range(0, len(events), CHUNK):
        session.execute(insert(DeviceEvent), events[start : start + CHUNK])
    result = ImportResult(
        created=len(new_rows),
        updated=len(changed_rows),
        unchanged=plan.count("unchanged"),
        places_created=sorted(p.name for p in _places_by_id(session, created_places)),
    )
    if result.created or result.updated or result.places_created:
        record(
            session,
            actor=actor,
            action="devices.imported",
            school_id=school_id,
            target_type="import",
            target_id=source,
            details={
                "new": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "places_created": result.places_created,
            },
        )
    log.info(
        "import of %s into school %s: %s new, %s updated, %s unchanged",
        source,
        school_id,
        result.created,
        result.updated,
        result.unchanged,
    )
    return result


def _places_by_id(session: Session, created: Mapping[str, int]) -> list[Location]:
    return [session.get_one(Location, place_id) for place_id in set(created.values())]


def _create_places(
    session: Session, school_id: int, plan: Plan, actor: User | None
) -> dict[str, int]:
    """Add the rooms the file names but Places lacks; returns their ids by normalised name."""
    if not plan.missing_places:
        return {}
    parent = session.get(Location, plan.places_parent_id) if plan.places_parent_id else None
    if parent is None:
        school = session.get_one(School, school_id)
        parent = add_location(
            session, actor=actor, school_id=school_id, kind=LocationKind.SITE, name=school.name
        )
    made = {}
    for name in plan.missing_places:
        room = add_location(
            session,
            actor=actor,
            school_id=school_id,
            kind=LocationKind.ROOM,
            name=name[:120],
            parent=parent,
        )
        made[_norm(name)] = room.id
    return made


def import_file(
    session: Session,
    school_id: int,
    data: bytes,
    *,
    actor: User | None,
    options: Options | None = None,
    filename: str = "import.csv",
    dry_run: bool = False,
    progress: Progress | None = None,
) -> tuple[Plan, ImportResult | None]:
    """Check a file and, if every row is good and this is not a dry run, import it and commit."""
    plan = preview(
        session,
        school_id,
        data,
        actor=actor,
        options=options,
        filename=filename,
        progress=progress,
    )
    if not plan.ok or dry_run:
        session.rollback()
        return plan, None
    return plan, _write(session, school_id, plan, actor, progress)


def _write(
    session: Session,
    school_id: int,
    plan: Plan,
    actor: User | None,
    progress: Progress | None,
    after: Callable[[], None] | None = None,
) -> ImportResult:
    """Apply a plan and commit, or roll everything back: nothing is ever half-imported."""
    try:
        result = apply_plan(session, school_id, plan, actor=actor, progress=progress)
        if after is not None:
            after()
        session.commit()
    except IntegrityError as exc:
        # Someone changed the register between the check and the write (another import).
        session.rollback()
        log.warning("import of %s refused by the database: %s", plan.filename, exc.orig)
        raise Conflict(
            "The register changed while this file was being imported, so nothing was "
            "imported. Check the file again."
        ) from exc
    except BaseException:
        session.rollback()
        raise
    return result
