"""Loss fixtures: people, a device with photos, enrolment, the job runner, SMTP and the broker.

The real SMTP server comes from the notifications tests and the live device channel (a real
broker, the worker's channel and scripted devices) from the commands tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.jobs import JOBS, JobContext, discover_jobs
from server.losses import services
from server.losses.models import LossKind, LossReport
from server.schools.models import Location

# Every fixture of those suites, whatever they grow to need (live_url now rests on others).
from tests.server.commands.conftest import *  # noqa: F403
from tests.server.notifications.conftest import *  # noqa: F403

# 10:42 in London on a school day in March (GMT, so UTC is the same).
NOW = datetime(2026, 3, 3, 10, 42, tzinfo=UTC)


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    return make_user(Role.HEADTEACHER, email="head@oakfield.example")


@pytest.fixture
def teacher(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER, email="amira@oakfield.example")


@pytest.fixture
def technician(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN, email="raj@oakfield.example")


@pytest.fixture
def device(make_device: Callable[..., Device], trolley: Location) -> Device:
    """An iPad that reported 3 photos two days before the loss."""
    return make_device(home=trolley, photo_count=3, photo_count_at=NOW - timedelta(days=2))


@pytest.fixture
def report(session: Session, teacher: User, head: User) -> Callable[..., LossReport]:
    """Report a device lost the way a teacher does (the head exists to be told)."""

    def make(
        device: Device, *, by: User | None = None, now: datetime = NOW, **changes: Any
    ) -> LossReport:
        values: dict[str, Any] = {
            "asset_tag": device.asset_tag,
            "kind": LossKind.LOST,
            "last_seen_at": now - timedelta(hours=2),
            "last_seen_where": "Year 4 classroom, reading table",
            "circumstances": "Not in the trolley at the end of the lesson.",
        }
        values.update(changes)
        return services.report_loss(session, by or teacher, now=now, **values)

    return make


@pytest.fixture
def run_job(app: Flask, session: Session) -> Callable[[str, datetime], object]:
    """Run one registered job the way the worker does, at an injected time."""
    discover_jobs()

    def run(name: str, now: datetime) -> object:
        result = JOBS[name].run(JobContext(session, now, app.extensions["trolley.settings"]))
        session.commit()
        return result

    return run
