"""Real kiosk agents: a lesson's end wipes a device still out, and a photo check's request for a
fresh count is answered by the device itself (P-PHOTO-1, P-PHOTO-2)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from server.audits import services as audits
from server.auth.models import User
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.loans import services as loans
from server.loans.models import LessonPeriod
from server.schools.models import School, Term
from server.schools.services import local, uk_default_terms
from tests.e2e.conftest import Stack
from tests.helpers import lesson_just_ended
from tests.server.commands.conftest import wait_until


def _online(stack: Stack, count: int) -> None:
    from server.enrolment.models import DeviceIdentity

    def check() -> bool:
        with stack.database.begin() as session:
            rows = session.scalars(
                select(DeviceIdentity).where(
                    DeviceIdentity.school_id == stack.school_id, DeviceIdentity.online.is_(True)
                )
            ).all()
            return len(rows) >= count

    wait_until(check, 30, f"{count} device(s) online")


def test_a_device_still_out_when_its_lesson_ends_deletes_its_photos(stack: Stack) -> None:
    """P-PHOTO-1: "deleted at the end of the lesson", while the class still has the device."""
    (device,) = stack.add_devices(1)
    (kiosk,) = stack.enrol([device], photos=5)
    _online(stack, 1)
    now = utcnow()
    with stack.database.begin() as session:
        school = session.get(School, stack.school_id)
        assert school is not None
        starts, ends = lesson_just_ended(local(now, school))
        session.add(LessonPeriod(school_id=school.id, name="Art", starts=starts, ends=ends))
        lead = session.merge(stack.lead)
        assert isinstance(lead, User)
        loans.scan(
            session,
            lead,
            mode="out",
            trolley_id=stack.trolley_id,
            code=device.asset_tag,
            base_url=stack.base_url,
            key=uuid.uuid4().hex,
            now=now - timedelta(minutes=30),
        )
    with stack.database.begin() as session:
        assert loans.run_reconciliation(session, now=utcnow()).lesson_wipes == 1
    with stack.database.begin() as session:
        (cmd_id,) = session.scalars(
            select(Command.cmd_id).where(
                Command.device_id == device.id, Command.type == "wipe_photos"
            )
        ).all()
    assert stack.wait_finished([cmd_id]) == {cmd_id: CommandStatus.DONE}
    assert kiosk.photos() == 0 and kiosk.ran("wipe_photos") == 1
    with stack.database.begin() as session:
        loans.run_reconciliation(session, now=utcnow())
    with stack.database.begin() as session:
        (item,) = loans.devices_out(session, stack.school_id)
        assert item.asset_tag == device.asset_tag  # still out with the class
        assert loans.wipes_to_check(session, stack.school_id) == []  # confirmed by the device


def test_a_photo_check_is_answered_by_the_devices_themselves(stack: Stack) -> None:
    """P-PHOTO-2: starting the check asks each device; its own count is the evidence."""
    devices = stack.add_devices(2)
    kiosks = stack.enrol(devices, photos=3)
    _online(stack, 2)
    with stack.database.begin() as session:
        terms: list[Term] = uk_default_terms(utcnow().date() - timedelta(days=200))
        for term in terms:
            term.school_id = stack.school_id
        session.add_all(terms)
    with stack.database.begin() as session:
        lead = session.merge(stack.lead)
        assert isinstance(lead, User)
        check = audits.start_photo_check(session, lead)
        check_id = check.id
        asked = session.scalars(
            select(Command.cmd_id).where(Command.type == "report_inventory")
        ).all()
    assert len(asked) == 2
    assert set(stack.wait_finished(list(asked)).values()) == {CommandStatus.DONE}

    def answered() -> bool:
        with stack.database.begin() as session:
            found = audits.get_photo_check(session, stack.school_id, check_id)
            lines = audits.photo_check_lines(session, found)
            return [line.photos_after for line in lines] == [3, 3]

    wait_until(answered, 30, "each device's own count")
    with stack.database.begin() as session:
        lead = session.merge(stack.lead)
        with pytest.raises(Exception, match="2 devices still hold photos"):
            audits.complete_photo_check(session, lead, check_id)
    assert all(k.photos() == 3 for k in kiosks)
