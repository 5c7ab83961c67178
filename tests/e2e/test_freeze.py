"""The freeze through the whole system: the server signs it, real kiosks keep it and refuse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.auth.models import Role
from server.auth.services import create_user
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity
from server.schools.models import School
from tests.e2e.conftest import Stack, build_stack, wait_until
from tests.server.conftest import settle


@pytest.fixture
def stack(live_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The whole system on the embedded broker, on each database."""
    yield from build_stack("embedded", live_url, tmp_path)


def _freeze_commands(stack: Stack, *, enabled: bool) -> list[str]:
    with stack.database.begin() as session:
        rows = session.scalars(
            select(Command).where(Command.school_id == stack.school_id, Command.type == "freeze")
        ).all()
        return [c.cmd_id for c in rows if c.args["enabled"] is enabled]


def _online(stack: Stack, count: int) -> None:
    def check() -> bool:
        with stack.database.begin() as session:
            online = session.scalars(
                select(DeviceIdentity).where(
                    DeviceIdentity.school_id == stack.school_id,
                    DeviceIdentity.revoked_at.is_(None),
                    DeviceIdentity.online.is_(True),
                )
            ).all()
            return len(online) >= count

    wait_until(check, 30, f"{count} device(s) online")


def _in_flight(stack: Stack, device: Device) -> str:
    """A lock already in the outbox when the freeze came (the worker publishes it as it is)."""
    now = utcnow()
    cmd_id = str(uuid.uuid4())
    with stack.database.begin() as session:
        session.add(
            Command(
                school_id=stack.school_id,
                device_id=device.id,
                cmd_id=cmd_id,
                type="lock",
                args={"message": "Pay 2 BTC to unlock"},
                reason="",
                status=CommandStatus.QUEUED,
                requested_by_id=stack.technician.id if stack.technician else None,
                created_at=now,
                approved_at=now,
                expires_at=now + timedelta(hours=1),
                attempts=0,
                detail="",
                result={},
            )
        )
    assert stack.channel is not None
    stack.channel.wake()
    return cmd_id


def test_a_kiosk_with_the_freeze_refuses_a_destructive_command(stack: Stack) -> None:
    """P-SEC-1: the head's freeze reaches each kiosk signed; a lock still in flight is refused
    by the device and recorded so; once the head and an administrator lift it, locks work."""
    devices = stack.add_devices(2)
    kiosks = stack.enrol(devices)
    _online(stack, 2)
    with stack.database.begin() as session:
        admin = create_user(
            session,
            actor=None,
            school=session.get(School, stack.school_id),  # type: ignore[arg-type]
            email=f"admin-{uuid.uuid4().hex[:6]}@oakfield.example",
            name="Office Admin",
            role=Role.ADMIN,
            password="long-password-1",
        )
        settle(admin)  # confirms lifting the freeze: an approver past the cooling-off
        session.commit()
        session.expunge(admin)

    assert stack.api(stack.head, "POST", "/commands/freeze", json={})["state"] == "frozen"
    frozen = _freeze_commands(stack, enabled=True)
    assert len(frozen) == 2
    assert set(stack.wait_finished(frozen).values()) == {CommandStatus.DONE}

    stray = _in_flight(stack, devices[0])
    assert stack.wait_finished([stray]) == {stray: CommandStatus.REJECTED}
    (_status, detail, result) = stack.details([stray])[0]
    assert "frozen" in detail and result["reason"] == "frozen"
    assert kiosks[0].state()["locked"] is False and kiosks[0].ran("lock") == 0

    assert stack.api(stack.head, "POST", "/commands/freeze/lift")["state"] == "frozen"
    assert stack.api(admin, "POST", "/commands/freeze/lift")["state"] == "lifted"
    lifted = _freeze_commands(stack, enabled=False)
    assert set(stack.wait_finished(lifted).values()) == {CommandStatus.DONE}
    lock = stack.api(
        stack.technician, "POST", f"/devices/{kiosks[1].asset_tag}/commands", json={"type": "lock"}
    )
    assert stack.wait_finished([lock["cmd_id"]]) == {lock["cmd_id"]: CommandStatus.DONE}
    assert kiosks[1].state()["locked"] is True
