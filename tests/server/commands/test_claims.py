"""Two workers claiming commands for one device at once number them apart (PostgreSQL, where
several workers publish: each claims with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from server.commands import services
from server.commands.models import CommandStatus
from server.commands.services import Outgoing
from server.db import Database, utcnow
from server.enrolment.models import DeviceIdentity
from server.schools.services import create_school
from tests.server.commands.test_acks import _sent, new_sender
from tests.server.conftest import KIOSK, new_device

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("live_url", ["postgres"], indirect=True),
]


def test_two_workers_claiming_for_one_device_at_once_give_it_two_numbers(live_url: str) -> None:
    """A device's sequence numbers count what it was sent, one number a command (its replay
    window is judged by them): a second worker that numbered its claim from the count it read
    while the first had not yet committed sent its command under the first one's number."""
    database = Database(live_url)
    now = utcnow()
    with database.begin() as session:
        school = create_school(session, slug=f"s{uuid.uuid4().hex[:8]}", name="Claim Primary")
        device = new_device(school.id, "CLAIM-1", f"CL{uuid.uuid4().hex[:8].upper()}", **KIOSK)
        session.add(device)
        session.flush()
        sender = new_sender(session, device)
        for command_type in ("lost_mode", "wipe_photos"):
            command = _sent(session, sender, command_type)
            command.status, command.seq, command.mqtt_id = CommandStatus.QUEUED, None, None
        identity_id = sender.identity.id
    claims: dict[str, list[Outgoing]] = {}
    first_claimed, first_may_commit = threading.Event(), threading.Event()

    def first() -> None:
        with database.begin() as session:
            claims["first"] = services.claim_outgoing(session, now=now, limit=1)
            first_claimed.set()
            first_may_commit.wait(10)

    def second() -> None:
        with database.begin() as session:
            claims["second"] = services.claim_outgoing(session, now=now, limit=1)

    one = threading.Thread(target=first)
    one.start()
    try:
        assert first_claimed.wait(10)
        two = threading.Thread(target=second)
        two.start()
        time.sleep(0.3)  # the second has read its command (the first's is locked) meanwhile
    finally:
        first_may_commit.set()
        one.join(10)
    two.join(10)
    try:
        assert [len(claims["first"]), len(claims["second"])] == [1, 1]
        assert claims["first"][0].command_id != claims["second"][0].command_id
        assert sorted([claims["first"][0].seq, claims["second"][0].seq]) == [1, 2]
        with database.session(write=False) as session:
            assert session.get_one(DeviceIdentity, identity_id).last_seq == 2
    finally:
        database.dispose()
