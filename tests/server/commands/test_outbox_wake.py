"""Queuing commands wakes the worker's publishing side as the request commits (PostgreSQL),
rather than leaving them for its next look at the outbox."""

from __future__ import annotations

import threading
import time

import pytest

from server.channel_roles import Role
from server.commands import services
from server.db import Listener, utcnow
from server.device_channel import DeviceChannel
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
