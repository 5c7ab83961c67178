"""A whole leaver case over a real broker: the device's own acknowledgement completes its reset."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from mqtt.envelope import key_id
from mqtt.messages import AckState
from server.auth.models import Role, User
from server.auth.services import create_user
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.escrow import services as escrow
from server.jobs import JobContext
from server.leavers import services
from server.leavers.jobs import note_resets
from server.leavers.models import CaseStatus, LeaverCase, LeaverItem, ResetSource
from server.schools.models import School
from tests.server.commands.conftest import FakeDevice, Live, wait_until
from tests.server.leavers.conftest import BASE, PIN


def _status(live: Live, command_id: int) -> CommandStatus:
    with live.database.begin() as session:
        command = session.get(Command, command_id)
        assert command is not None
        return command.status


def _run_job(live: Live) -> int:
    with live.database.begin() as session:
        return int(note_resets(JobContext(session, utcnow(), live.settings)))  # type: ignore[call-overload]


def _item(live: Live, item_id: int) -> LeaverItem:
    with live.database.begin() as session:
        item = session.get(LeaverItem, item_id)
        assert item is not None
        return item


def _reset_approved(live: Live, case_id: int, item_id: int) -> int:
    """The technician asks; the headteacher (a second person) approves."""
    with live.database.begin() as session:
        command = services.send_reset(session, session.merge(live.technician), case_id, item_id)
        command_id = command.id
    with live.database.begin() as session:
        commands.approve(
            session, session.merge(live.head), command_id=command_id, stepped_up_at=utcnow()
        )
    return command_id


def _forged_ack(liar: FakeDevice, cmd_id: str) -> None:
    """A DONE ack for someone else's command, properly signed by the wrong device."""
    liar._ack(cmd_id, AckState.DONE, liar.key, key_id(liar.key.public_key()), int(time.time()))


def test_the_whole_case_with_the_devices_own_reset_acknowledgement(live: Live) -> None:
    """P-LEAVE-1: the device's own reset ack completes its item; a wrong device's never does."""
    on_case, also_on_case, elsewhere = live.devices
    with live.database.begin() as session:
        school = session.get(School, live.technician.school_id)
        assert school is not None

        def person(role: Role, email: str) -> User:
            return create_user(
                session,
                actor=None,
                school=school,
                email=email,
                name=email.split("@")[0].title(),
                role=role,
                password="long-password-1",
            )

        sbm = person(Role.SBM, f"sbm-{school.slug}@x.example")
        manager = person(Role.COMPUTING_LEAD, f"lead-{school.slug}@x.example")
        leaver = person(Role.TEACHER, f"leaver-{school.slug}@x.example")
        for device in (on_case, also_on_case):
            session.merge(device).holder_id = leaver.id
    with live.database.begin() as session:
        opened = services.open_case(
            session,
            session.merge(sbm),
            leaver_id=leaver.id,
            last_day=(utcnow() + timedelta(days=3)).date(),
            line_manager_id=manager.id,
            technician_id=live.technician.id,
            base_url=BASE,
        )
        case_id = opened.case.id
        items = {i.device_id: i.id for i in opened.case.items}
        assert set(items) == {on_case.id, also_on_case.id}
        for item_id in items.values():
            services.hand_over_credentials(
                session, live.box, session.merge(leaver), case_id, item_id, passcode=PIN
            )
    first = _reset_approved(live, case_id, items[on_case.id])
    # Another device's reset (not on this case) finishes first: it must not count.
    with live.database.begin() as session:
        (other,) = commands.issue(
            session,
            session.merge(live.technician),
            [session.merge(elsewhere)],
            "factory_reset",
            {},
            commit=False,
        )
        other_id = other.id
    with live.database.begin() as session:
        commands.approve(
            session, session.merge(live.head), command_id=other_id, stepped_up_at=utcnow()
        )
    wait_until(lambda: _status(live, first) is CommandStatus.SENT, what="the reset to be sent")
    live.fakes[2].connect()
    assert live.fakes[2].answer().type.value == "factory_reset"
    wait_until(lambda: _status(live, other_id) is CommandStatus.DONE, what="the other reset")
    # The wrong device claims the case device's reset: the worker ignores it.
    with live.database.begin() as session:
        first_cmd_id = session.get(Command, first).cmd_id  # type: ignore[union-attr]
    liar = live.fakes[1]
    liar.connect()
    before = live.channel.stats.acks
    _forged_ack(liar, first_cmd_id)
    wait_until(lambda: live.channel.stats.acks > before, what="the wrong device's ack")
    _run_job(live)
    assert _status(live, first) is CommandStatus.SENT
    assert _item(live, items[on_case.id]).reset_at is None
    assert _item(live, items[also_on_case.id]).reset_at is None
    # The right device answers: its item completes.
    live.fakes[0].connect()
    command = live.fakes[0].answer()
    assert command.cmd_id == first_cmd_id
    wait_until(lambda: _status(live, first) is CommandStatus.DONE, what="the device's ack")
    assert _run_job(live) == 1
    done = _item(live, items[on_case.id])
    assert done.reset_at is not None and done.reset_source is ResetSource.DEVICE
    assert _item(live, items[also_on_case.id]).reset_at is None
    assert _run_job(live) == 0  # noted once
    with live.database.begin() as session:
        (entry,) = escrow.history_for_device(session, session.merge(on_case))
        assert entry.destroyed_at is not None  # the old PIN is gone with the reset
        (still,) = escrow.history_for_device(session, session.merge(also_on_case))
        assert still.destroyed_at is None
    # The second device: returned, reset and acknowledged; then the three sign-offs.
    second = _reset_approved(live, case_id, items[also_on_case.id])
    assert liar.answer().type.value == "factory_reset"
    wait_until(lambda: _status(live, second) is CommandStatus.DONE, what="the second ack")
    with live.database.begin() as session:
        for device in (on_case, also_on_case):
            services.return_device(
                session, session.merge(sbm), case_id, device.asset_tag, base_url=BASE
            )
    with live.database.begin() as session:
        for person_row in (leaver, manager, live.technician):
            services.sign(session, session.merge(person_row), case_id)
    with live.database.begin() as session:
        case = session.get(LeaverCase, case_id)
        assert case is not None and case.status is CaseStatus.CLOSED
        assert {i.reset_source for i in case.items} == {ResetSource.DEVICE}
        holders = session.scalars(
            select(Device.holder_id).where(Device.id.in_([on_case.id, also_on_case.id]))
        ).all()
        assert holders == [None, None]
