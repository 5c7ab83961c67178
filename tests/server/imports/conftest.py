"""Fixtures for the spreadsheet import: a school with places, and CSV files to feed it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.devices.models import Device, DeviceEvent
from server.imports import services
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location

HEADINGS = [
    "Asset No.",
    "Serial Number",
    "Make/Model",
    "Purchase Date",
    "Cost (£)",
    "Room",
    "Supplier",
    "Warranty",
    "Notes",
]


def make_csv(
    rows: Sequence[Sequence[str]],
    headings: Sequence[str] = HEADINGS,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> bytes:
    """A CSV file as a spreadsheet would save it."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(headings)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def ipad(tag: str, serial: str, **overrides: str) -> list[str]:
    """A good row in HEADINGS order; overrides by column name."""
    row = {
        "Asset No.": tag,
        "Serial Number": serial,
        "Make/Model": "Apple iPad (9th generation)",
        "Purchase Date": "01/09/2021",
        "Cost (£)": "£329.00",
        "Room": "Year 4 classroom",
        "Supplier": "XMA",
        "Warranty": "1 Sept 2024",
        "Notes": "",
    }
    row.update({k.replace("_", " "): v for k, v in overrides.items()})
    return [row[h] for h in HEADINGS]


@pytest.fixture
def places(session: Session, school: School) -> dict[str, Location]:
    """Site › building › Year 4 classroom › Year 4 trolley (30 slots), and an office safe (2)."""

    def add(kind: LocationKind, name: str, parent: Location | None = None, **kw: Any) -> Location:
        return add_location(
            session, actor=None, school_id=school.id, kind=kind, name=name, parent=parent, **kw
        )

    site = add(LocationKind.SITE, "Main site")
    building = add(LocationKind.BUILDING, "Main building", site)
    classroom = add(LocationKind.ROOM, "Year 4 classroom", building)
    office = add(LocationKind.ROOM, "School office", building)
    made = {
        "site": site,
        "building": building,
        "classroom": classroom,
        "office": office,
        "trolley": add(LocationKind.TROLLEY, "Year 4 trolley", classroom, capacity=30),
        "safe": add(LocationKind.SAFE, "Office safe", office, capacity=2),
    }
    session.commit()
    return made


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def run_import(session: Session, school: School) -> Callable[..., tuple[Any, Any]]:
    """Import a file as the CLI does (all or nothing, committing)."""

    def run(data: bytes, *, actor: User | None = None, **options: Any) -> tuple[Any, Any]:
        dry_run = options.pop("dry_run", False)
        return services.import_file(
            session,
            school.id,
            data,
            actor=actor,
            options=services.Options(**options),
            filename="register.csv",
            dry_run=dry_run,
        )

    return run


def counts(session: Session, school: School) -> tuple[int, int, int]:
    """(devices, device events, activity entries) in a school: to prove nothing changed."""
    return (
        session.scalar(
            select(func.count()).select_from(Device).where(Device.school_id == school.id)
        )
        or 0,
        session.scalar(
            select(func.count()).select_from(DeviceEvent).where(DeviceEvent.school_id == school.id)
        )
        or 0,
        session.scalar(
            select(func.count())
            .select_from(ActivityEntry)
            .where(ActivityEntry.school_id == school.id)
        )
        or 0,
    )


def device(session: Session, school: School, tag: str) -> Device:
    found = session.scalar(
        select(Device).where(Device.school_id == school.id, Device.asset_tag == tag)
    )
    assert found is not None, f"{tag} is not in the register"
    session.refresh(found)
    return found


def problems(plan: Any) -> list[tuple[int, str | None, str]]:
    """(row, heading, message) for every problem in a plan."""
    return [(p.row, p.heading, p.message) for p in plan.problems]
