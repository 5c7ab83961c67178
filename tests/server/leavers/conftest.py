"""Leaver fixtures: the people on a case, devices they hold, and a way to open a case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.leavers import services
from server.schools.models import Location

# The device channel's live fixtures (a committed database, a real broker, the worker's
# channel, devices that verify and ack), reused for the whole case over a real broker.
from tests.server.commands.conftest import *  # noqa: F403

BASE = "http://127.0.0.1:5000"
PIN = "462819"


def last_day_ahead(days: int = 7) -> date:
    """A last day in the school's future (the web routes use the real clock)."""
    return (datetime.now(UTC) + timedelta(days=days)).date()


@dataclass(frozen=True)
class People:
    sbm: User
    head: User
    tech: User
    manager: User
    leaver: User


@pytest.fixture
def people(make_user: Callable[..., User]) -> People:
    return People(
        sbm=make_user(Role.SBM),
        head=make_user(Role.HEADTEACHER),
        tech=make_user(Role.TECHNICIAN),
        manager=make_user(Role.COMPUTING_LEAD),
        leaver=make_user(Role.TEACHER),
    )


@pytest.fixture
def held(
    session: Session, people: People, make_device: Callable[..., Device], trolley: Location
) -> list[Device]:
    """Two devices the leaver holds in the register (one lives in a trolley, one has no home)."""
    devices = [make_device(home=trolley), make_device()]
    for device in devices:
        device.holder_id = people.leaver.id
        device.current_location_id = None
    session.commit()
    return devices


@pytest.fixture
def open_case(session: Session, people: People) -> Callable[..., services.Opened]:
    def make(**overrides: Any) -> services.Opened:
        values: dict[str, Any] = {
            "leaver_id": people.leaver.id,
            "last_day": last_day_ahead(),
            "line_manager_id": people.manager.id,
            "technician_id": people.tech.id,
            "base_url": BASE,
        }
        values.update(overrides)
        actor = values.pop("actor", people.sbm)
        return services.open_case(session, actor, **values)

    return make


@pytest.fixture
def box(app: Flask) -> Any:
    return app.extensions["trolley.box"]
