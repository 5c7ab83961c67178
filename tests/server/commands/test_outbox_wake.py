"""Queuing commands wakes the worker's publishing side as the request commits (PostgreSQL),
rather than leaving them for its next look at the outbox."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mqtt.envelope import encode_public_key
from server.auth.models import Role as StaffRole
from server.auth.services import create_user
from server.channel_roles import Role
from server.commands import services
from server.db import Listener, utcnow
from server.device_channel import DeviceChannel, broker_url_for_worker
from server.devices.models import Device
from server.enrolment.services import enrol, issue_enrolment_token
from server.profiles import services as profiles
from server.profiles.models import TargetType
from server.schools.models import School
from server.worker import serve
from tests.helpers import Heard
from tests.server.commands.conftest import Live
from tests.server.commands.test_channel import _issue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("live_url", ["postgres"], indirect=True),
    pytest.mark.parametrize("live", ["embedded"], indirect=True),
]


def test_queuing_commands_is_announced_and_asking_for_approval_is_not(live: Live) -> None:
    heard = Heard()
    listener = Listener(live.database, services.OUTBOX_CHANNEL, heard)
    listener.start()
    try:
        assert heard.wait_for(1), "the listener never listened"
        (reset,) = _issue(live, "factory_reset", [live.devices[2]])  # waits for a second person
        _issue(live, "wipe_photos", [live.devices[0]])
        # Delivered in commit order: had asking for approval announced anything, it came first.
        assert heard.wait_for(2)
        time.sleep(0.2)
        assert heard.count == 2
        with live.database.begin() as session:
            services.approve(
                session, session.merge(live.head), command_id=reset, stepped_up_at=utcnow()
            )
        assert heard.wait_for(3), "approving queued the reset without saying so"
    finally:
        listener.stop()


def test_the_publishing_side_wakes_when_commands_are_queued(live: Live) -> None:
    """The worker waits up to a tick between looks; a request that queues commands ends it."""
    channel = DeviceChannel(
        live.database,
        live.settings,
        live.box,
        broker_url="mqtt://nobody:nothing@127.0.0.1:9",  # never connected: only its wake is used
        client_id="trolley-wake-test",
        role=Role.PUBLISH,
    )
    channel._outbox.start()
    try:
        assert channel._outbox.listening.wait(10)
        channel.wait_for_work(0)  # what listening began with
        waited: list[float] = []

        def wait() -> None:
            began = time.monotonic()
            channel.wait_for_work(60)
            waited.append(time.monotonic() - began)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        _issue(live, "wipe_photos", [live.devices[1]])
        waiter.join(30)
        assert waited and waited[0] < 30, "the wait ran on to its end"
    finally:
        channel._outbox.stop()


def test_changing_a_desired_state_or_enrolling_a_device_that_has_one_is_announced(
    live: Live,
) -> None:
    """A profile assigned on the web wakes the publishing side too: on PostgreSQL it looks at
    the outboxes only now and then, so a desired state left unannounced would wait for that.
    So does a device's new enrolment, whose new identity is to be sent its profile."""
    heard = Heard()
    listener = Listener(live.database, services.OUTBOX_CHANNEL, heard)
    listener.start()
    try:
        assert heard.wait_for(1), "the listener never listened"
        with live.database.begin() as session:
            lead = create_user(
                session,
                actor=None,
                school=session.get_one(School, live.technician.school_id),
                email=f"l{uuid.uuid4().hex[:6]}@x.example",
                name="Lead",
                role=StaffRole.COMPUTING_LEAD,
                password="long-password-1",
            )
            profile = profiles.create_profile(session, lead, name="KS2", start_from="ks2-ipad")
            profiles.assign(session, lead, profile, TargetType.SCHOOL, lead.school_id)
        assert heard.wait_for(2), "a changed desired state was not announced"
        with live.database.begin() as session:
            assert profiles.recompute_desired(session, live.technician.school_id) == 0
        time.sleep(0.2)
        assert heard.count == 2, "recomputing without a change announced something"
        with live.database.begin() as session:
            device = session.get_one(Device, live.devices[0].id)
            _token, payload = issue_enrolment_token(session, None, device, live.settings)
            enrol(
                session,
                live.box,
                live.settings,
                token=payload.token,
                public_key=encode_public_key(Ed25519PrivateKey.generate().public_key()),
                platform="simulated",
            )
        assert heard.wait_for(3), "a new identity's profile was not announced"
    finally:
        listener.stop()


def test_an_idle_publishing_side_looks_seldom_while_it_hears_the_outbox(live: Live) -> None:
    """Woken by every transaction that queues work, the publisher needs no look 20 times a
    second (3% of a core per worker, idle); queued commands still wake it at once."""
    settings = live.settings.model_copy(update={"outbox_poll_listening_seconds": 30.0})
    channel = DeviceChannel(
        live.database,
        settings,
        live.box,
        broker_url=broker_url_for_worker(settings),
        client_id=f"trolley-idle-{uuid.uuid4().hex[:8]}",
        role=Role.PUBLISH,
    )
    looks = Heard()
    pump = channel.pump

    def counted() -> bool:
        looks()
        return pump()

    channel.pump = counted  # type: ignore[method-assign]
    channel.start()
    stop = threading.Event()
    loop = threading.Thread(
        target=serve, args=(stop, channel, None), kwargs={"role": Role.PUBLISH, "tick": 5.0}
    )
    try:
        assert channel.connected.wait(10) and channel._outbox.listening.wait(10)
        assert channel.poll_seconds() == 30.0
        loop.start()
        time.sleep(2.5)
        idle = looks.count
        # The first look, and one for each of connecting and starting to listen at most.
        assert 1 <= idle <= 3, f"{idle} looks in 2.5 s idle"
        _issue(live, "wipe_photos", [live.devices[0]])
        assert looks.wait_for(idle + 1, timeout=10), "queuing a command did not wake it"
    finally:
        stop.set()
        channel.wake()
        loop.join(10)
        channel.stop()


def test_without_notifications_the_publishing_side_looks_often(live: Live) -> None:
    """Until the listener hears the outbox (never, on SQLite: it has no notifications), the
    short look."""
    channel = DeviceChannel(
        live.database,
        live.settings,
        live.box,
        broker_url="mqtt://nobody:nothing@127.0.0.1:9",  # never connected
        client_id="trolley-look-test",
        role=Role.PUBLISH,
    )
    assert channel.poll_seconds() == live.settings.outbox_poll_seconds
    channel._outbox.start()
    try:
        assert channel._outbox.listening.wait(10)
        assert channel.poll_seconds() == live.settings.outbox_poll_listening_seconds
    finally:
        channel._outbox.stop()
