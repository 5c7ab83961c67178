"""A return's photo wipe acknowledged by a device over a real broker (P-PHOTO-1)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from server import create_app
from server.auth.models import Role, User
from server.auth.services import create_user
from server.db import utcnow
from server.devices.models import Device
from server.loans import services
from server.loans.models import LessonPeriod
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location, local
from tests.helpers import lesson_just_ended
from tests.server.commands.conftest import Live, wait_until
from tests.server.conftest import DATA_KEY, log_in_as
from tests.server.loans.conftest import BASE


@pytest.fixture
def at_school(live: Live) -> Iterator[tuple[int, int]]:
    """A teacher and a trolley in the live school; the live devices live in it."""
    with live.database.begin() as session:
        school_id = live.devices[0].school_id
        room = add_location(
            session, actor=None, school_id=school_id, kind=LocationKind.ROOM, name="Year 5"
        )
        trolley = add_location(
            session,
            actor=None,
            school_id=school_id,
            kind=LocationKind.TROLLEY,
            name="Year 5 trolley",
            parent=room,
            capacity=30,
        )
        teacher = create_user(
            session,
            actor=None,
            school=session.get(School, school_id),
            email=f"teacher-{uuid.uuid4().hex[:6]}@live.example",
            name="Wendy Teacher",
            role=Role.TEACHER,
            password="long-password-1",
        )
        session.execute(
            update(Device)
            .where(Device.id.in_([d.id for d in live.devices]))
            .values(home_location_id=trolley.id, current_location_id=trolley.id)
        )
        ids = (teacher.id, trolley.id)
    yield ids
    with live.database.begin() as session:
        # The live database is emptied table by table afterwards: un-nest so nothing blocks it.
        session.execute(
            update(Location).where(Location.school_id == school_id).values(parent_id=None)
        )


def test_a_returned_device_acknowledges_its_wipe(
    live: Live, at_school: tuple[int, int], tmp_path: Path
) -> None:
    """P-PHOTO-1: the return queues a wipe, the device deletes 3 photos and says so."""
    teacher_id, trolley_id = at_school
    fake = live.fakes[0]
    fake.connect()
    with live.database.begin() as session:
        teacher = session.get(User, teacher_id)
        assert teacher is not None
        out = services.scan(
            session,
            teacher,
            mode="out",
            trolley_id=trolley_id,
            code="LIVE-0",
            base_url=BASE,
            key=uuid.uuid4().hex,
        )
        back = services.scan(
            session,
            teacher,
            mode="in",
            trolley_id=trolley_id,
            code="LIVE-0",
            base_url=BASE,
            key=uuid.uuid4().hex,
        )
        assert back.wipe == "wipe pending"
        loan_id = out.loan_id
        assert loan_id is not None
    command = fake.answer()
    assert command.type.value == "wipe_photos"

    def wiped() -> bool:
        with live.database.begin() as session:
            loan = services.get_loan(session, live.devices[0].school_id, loan_id)
            return services.wipe_state(loan.items[0]) == ("done", "wiped (3 photos deleted)")

    wait_until(wiped, what="the device's wipe acknowledgement")
    app = create_app(
        {
            "database_url": live.settings.database_url,
            "testing": True,
            "instance_dir": tmp_path / "web",
            "secure_cookies": False,
            "data_keys": [DATA_KEY],
        }
    )
    try:
        client = app.test_client()
        with live.database.begin() as session:
            log_in_as(client, session.get(User, teacher_id))  # type: ignore[arg-type]
        page = client.get(f"/loans/{loan_id}").get_data(as_text=True)
        assert re.search(r"wiped \(3 photos deleted\)", page)
    finally:
        app.extensions["trolley.db"].dispose()


def test_a_device_still_out_when_its_lesson_ends_wipes_its_photos(
    live: Live, at_school: tuple[int, int]
) -> None:
    """P-PHOTO-1: at the end of the lesson, not at its next return, over a real broker."""
    teacher_id, trolley_id = at_school
    fake = live.fakes[1]
    fake.connect()
    now = utcnow()
    with live.database.begin() as session:
        school = session.get(School, live.devices[0].school_id)
        assert school is not None
        starts, ends = lesson_just_ended(local(now, school))
        session.add(LessonPeriod(school_id=school.id, name="Science", starts=starts, ends=ends))
        teacher = session.get(User, teacher_id)
        assert teacher is not None
        out = services.scan(
            session,
            teacher,
            mode="out",
            trolley_id=trolley_id,
            code="LIVE-1",
            base_url=BASE,
            key=uuid.uuid4().hex,
            now=now - timedelta(minutes=30),
        )
        loan_id = out.loan_id
        assert loan_id is not None
    with live.database.begin() as session:
        services.run_reconciliation(session, now=utcnow())
    command = fake.answer()
    assert command.type.value == "wipe_photos"

    def wiped() -> bool:
        with live.database.begin() as session:
            loan = services.get_loan(session, live.devices[0].school_id, loan_id)
            return services.wipe_state(loan.items[0]) == (
                "done",
                "wiped at the end of a lesson (3 photos deleted)",
            )

    wait_until(wiped, what="the device's answer to the lesson's-end wipe")
