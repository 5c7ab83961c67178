"""A fake Google on 127.0.0.1 and a school linked to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from server import create_app
from server.auth.models import Role, User
from server.chromebooks import services
from server.chromebooks.models import GoogleLink
from server.chromebooks.services.google import GoogleApi
from server.commands import services as commands
from server.commands.models import Command
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device, Platform
from server.profiles import services as profiles
from server.profiles.models import Profile
from server.schools.models import School
from tests.helpers import free_port
from tests.server.chromebooks.fake_google import FakeGoogle
from tests.server.conftest import DATA_KEY, settle

ADMIN = "it.admin@oakfield.example"

Chromebook = Callable[..., tuple[Device, dict[str, Any]]]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    """Google on a local port; any request Google would reject fails the test at the end."""
    fake = FakeGoogle(port=free_port())
    fake.up()
    fake.admin(ADMIN)
    fake.org_unit("/Pupils")
    yield fake
    fake.down()
    assert fake.violations == [], "requests Google would reject:\n" + "\n".join(fake.violations)


@pytest.fixture
def api(google: FakeGoogle) -> GoogleApi:
    return GoogleApi(root=google.root, timeout=5)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox((DATA_KEY,))


@pytest.fixture
def technician(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN)


@pytest.fixture
def link(
    session: Session, box: SecretBox, google: FakeGoogle, api: GoogleApi, technician: User
) -> GoogleLink:
    """The school linked to the fake Google's domain and tested (policy names checked)."""
    key = google.service_account()
    linked = services.save_link(
        session,
        box,
        technician,
        key_text=json.dumps(key),
        customer_id=google.customer_id,
        admin_email=ADMIN,
        school_networks="81.2.69.0/24",
    )
    services.check_link(session, box, api, technician)
    assert linked.working, linked.test_problems
    return linked


@pytest.fixture
def chromebook(make_device: Callable[..., Device], google: FakeGoogle) -> Chromebook:
    """A register Chromebook and the same device in Google's directory."""

    def make(**facts: Any) -> tuple[Device, dict[str, Any]]:
        device = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
        return device, google.add_device(device.serial, **facts)

    return make


@pytest.fixture
def synced(
    session: Session, box: SecretBox, api: GoogleApi, link: GoogleLink, chromebook: Chromebook
) -> Chromebook:
    """A register Chromebook that the last sync matched to Google's record of it."""

    def make(**facts: Any) -> tuple[Device, dict[str, Any]]:
        device, resource = chromebook(**facts)
        services.sync_devices(session, box, api, link.school_id)
        return device, resource

    return make


@pytest.fixture
def lead(make_user: Callable[..., User]) -> User:
    return make_user(Role.COMPUTING_LEAD)


@pytest.fixture
def unit(google: FakeGoogle) -> str:
    """The org unit the fake Google's Chromebooks go in."""
    return next(iter(google.org_units))


@pytest.fixture
def assign_ks2(session: Session, lead: User, school: School) -> Callable[[], Profile]:
    """Assign the KS2 Chromebook profile to the whole school, when called."""

    def assign() -> Profile:
        profile = profiles.create_profile(
            session, lead, name="KS2 Chromebooks", start_from="ks2-chromebook"
        )
        profiles.assign(session, lead, profile, "school", school.id)
        return profile

    return assign


@pytest.fixture
def profiled(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    link: GoogleLink,
    chromebook: Chromebook,
    assign_ks2: Callable[[], Profile],
    unit: str,
) -> Device:
    """A Chromebook in the org unit, synced after the KS2 profile was assigned to the school."""
    device, _resource = chromebook(orgUnitId=unit)
    assign_ks2()
    services.sync_devices(session, box, api, link.school_id)
    return device


@pytest.fixture
def profiled_after_sync(
    session: Session, synced: Chromebook, assign_ks2: Callable[[], Profile], unit: str
) -> Device:
    """A Chromebook in the org unit, synced before the KS2 profile was assigned to the school."""
    device, _resource = synced(orgUnitId=unit)
    assign_ks2()
    return device


@pytest.fixture
def deliver(session: Session, box: SecretBox, api: GoogleApi, clock: Clock) -> Callable[..., None]:
    """Passes of the worker's delivery job, the clock moving on past the next poll after each."""

    def run(times: int = 1, seconds: float = 30) -> None:
        for _ in range(times):
            services.deliver(session, box, api, now=clock.now)
            clock.tick(seconds)

    return run


@pytest.fixture
def photo_wipe(
    session: Session, synced: Chromebook, technician: User
) -> tuple[Command, dict[str, Any]]:
    """A photo wipe queued for a synced Chromebook, and Google's record of that Chromebook."""
    device, resource = synced()
    (command,) = commands.issue(session, technician, [device], "wipe_photos", {})
    return command, resource


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    """A headteacher settled in, so their approvals count."""
    return settle(make_user(Role.HEADTEACHER))


@pytest.fixture
def approve_as_head(session: Session, head: User, clock: Clock) -> Callable[[Command], None]:
    """The headteacher approves a command that needs a second person, stepped up just now."""

    def approve(command: Command) -> None:
        commands.approve(
            session, head, command_id=command.id, now=clock.now, stepped_up_at=clock.now
        )

    return approve


@dataclass
class Clock:
    """The worker's idea of now, moved on by hand so backoff and polling are quick to test."""

    now: datetime

    def tick(self, seconds: float = 30) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(utcnow())


@pytest.fixture
def school_id(school: School) -> int:
    return school.id


@pytest.fixture
def app(database: tuple[str, Any], connection: Any, tmp_path: Any, google: FakeGoogle) -> Flask:
    """The app, with Google's addresses pointing at the fake."""
    return create_app(
        {
            "bind": connection,
            "database_url": database[0],
            "testing": True,
            "instance_dir": tmp_path / "instance",
            "secure_cookies": False,
            "data_keys": [DATA_KEY],
            "google_api_root": google.root,
        }
    )
