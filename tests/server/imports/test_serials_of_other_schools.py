"""A serial another school registered neither shows in, nor blocks, this school's import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from server.devices.models import Device
from server.schools.models import Location, School
from tests.server.imports.conftest import device, ipad, make_csv


def test_another_school_cannot_block_an_import_by_registering_its_serials(
    session: Session,
    school: School,
    other_school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Callable[..., tuple[Any, Any]],
) -> None:
    """P-SEC-1 (attack: school B pre-registered school A's serials to block A's import)."""
    make_device(in_school=other_school, asset_tag="ELM-1", serial="DMPXK2Q1JF81")
    plan, result = run_import(make_csv([ipad("OAK-1", "DMPXK2Q1JF81")]))
    assert result is not None and plan.ok, [p.message for p in plan.problems]
    assert device(session, school, "OAK-1").serial == "DMPXK2Q1JF81"
