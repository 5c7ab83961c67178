"""The worker's device channel over real brokers and databases."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mqtt.client import make_client
from mqtt.envelope import key_id, sign
from mqtt.limits import MAX_REPORT_BYTES
from mqtt.messages import Report
from mqtt.topics import QOS, desired_topic, reported_topic, status_topic
from server.commands import services
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import (
    RETAINED_KEPT_FOR,
    revoke_identities,
    server_broker_password,
)
from server.errors import Forbidden
from tests.server.commands.conftest import Live, wait_until


def _statuses(live: Live) -> list[CommandStatus]:
    with live.database.begin() as session:
        return list(session.scalars(select(Command.status).order_by(Command.id)))


def _issue(
    live: Live, command_type: str, devices: list[Device] | None = None, **args: object
) -> list[int]:
    with live.database.begin() as session:
        actor = session.merge(live.technician)
        targets = [session.merge(d) for d in (devices or live.devices)]
        made = services.issue(session, actor, targets, command_type, dict(args), commit=False)
        session.flush()
        return [c.id for c in made]


def test_wipe_reaches_every_device_and_is_recorded(live: Live) -> None:
    """P-PHOTO-1: a wipe is published, executed once, acknowledged and recorded with its result."""
    for fake in live.fakes:
        fake.connect()
    _issue(live, "wipe_photos")
    for fake in live.fakes:
        command = fake.answer()
        assert command.type.value == "wipe_photos"
    wait_until(lambda: _statuses(live) == [CommandStatus.DONE] * 3, what="three done acks")
    with live.database.begin() as session:
        photo_counts = session.scalars(
            select(Device.photo_count).where(Device.id.in_([d.id for d in live.devices]))
        )
        assert set(photo_counts) == {0}
        results = session.scalars(select(Command.result)).all()
        assert all(r == {"deleted": 3, "remaining": 0} for r in results)


def test_offline_device_gets_its_wipe_when_it_returns(live: Live) -> None:
    """P-PHOTO-1: a device that was off when its wipe was sent is wiped when it reconnects."""
    fake = live.fakes[0]
    fake.connect()
    fake.disconnect()  # a persistent session now exists, with the device away
    _issue(live, "wipe_photos", [live.devices[0]])
    wait_until(lambda: _statuses(live) == [CommandStatus.SENT], what="the command to be sent")
    fake.connect()
    fake.answer()
    wait_until(lambda: _statuses(live) == [CommandStatus.DONE], what="the late ack")


def test_forged_ack_changes_nothing(live: Live) -> None:
    """An ack not signed by the device's registered key is refused and logged."""
    fake = live.fakes[1]
    fake.connect()
    _issue(live, "ping", [live.devices[1]])
    fake.answer(forge=True)
    wait_until(lambda: live.channel.stats.rejected >= 2, what="both forged acks to be refused")
    wait_until(lambda: _statuses(live) == [CommandStatus.SENT], what="the send to be committed")


def test_factory_reset_needs_a_second_person(live: Live) -> None:
    """P-LEAVE-1: a factory reset waits for another account's approval before it is sent."""
    (command_id,) = _issue(live, "factory_reset", [live.devices[2]])
    assert _statuses(live) == [CommandStatus.PENDING_APPROVAL]
    with live.database.begin() as session:
        with pytest.raises(Forbidden):
            services.approve(
                session,
                session.merge(live.technician),
                command_id=command_id,
                stepped_up_at=utcnow(),
            )
    with live.database.begin() as session:
        services.approve(
            session, session.merge(live.head), command_id=command_id, stepped_up_at=utcnow()
        )
    fake = live.fakes[2]
    fake.connect()
    command = fake.answer()
    assert command.type.value == "factory_reset"


def test_a_device_refusing_a_forgery_does_not_cancel_the_real_command(live: Live) -> None:
    """A forgery reusing a real cmd_id makes the device say 'rejected, unverified': ignored."""
    import time as clock

    from mqtt.envelope import key_id, sign
    from mqtt.messages import AckState, build_ack
    from mqtt.topics import QOS, ack_topic

    fake = live.fakes[0]
    fake.connect()
    (command_id,) = _issue(live, "ping", [live.devices[0]])
    wait_until(lambda: _statuses(live) == [CommandStatus.SENT], what="the command to be sent")
    with live.database.begin() as session:
        cmd_id = session.get(Command, command_id).cmd_id  # type: ignore[union-attr]
    refusal = build_ack(
        cmd_id,
        AckState.REJECTED,
        device_id=fake.mqtt_id,
        kid=key_id(fake.key.public_key()),
        now=int(clock.time()),
        detail="bad signature",
        result={"verified": False},
    )
    info = fake.client.publish(ack_topic(fake.mqtt_id), sign(refusal.to_body(), fake.key), qos=QOS)
    info.wait_for_publish(timeout=5)
    wait_until(lambda: live.channel.stats.acks >= 1, what="the refusal to be processed")
    assert _statuses(live) == [CommandStatus.SENT]
    fake.answer()
    wait_until(lambda: _statuses(live) == [CommandStatus.DONE], what="the real ack")


def test_a_lost_ack_is_recovered_by_asking_again(live: Live) -> None:
    """An online device whose `done` never arrived is asked again and re-acknowledges."""
    from datetime import timedelta

    from server.db import utcnow

    fake = live.fakes[0]
    fake.connect()
    _issue(live, "wipe_photos", [live.devices[0]])
    fake.inbox.get(timeout=15)  # received but never answered: the ack is "lost"
    wait_until(lambda: _statuses(live) == [CommandStatus.SENT], what="the command to be sent")

    def online() -> bool:
        from server.enrolment.models import DeviceIdentity

        with live.database.begin() as session:
            found = session.scalar(
                select(DeviceIdentity.online).where(DeviceIdentity.mqtt_id == fake.mqtt_id)
            )
            return bool(found)

    wait_until(online, what="the device to be seen online")
    with live.database.begin() as session:
        assert services.resend_unfinished(session, now=utcnow() + timedelta(minutes=4)) == 1
    fake.answer()
    wait_until(lambda: _statuses(live) == [CommandStatus.DONE], what="the recovered ack")


def test_a_worker_the_broker_stops_delivering_to_reconnects_and_loses_no_ack(live: Live) -> None:
    """P-PHOTO-1: a connection on which nothing arrives is noticed by the worker's heartbeat and
    replaced; the broker's session hands over the ack that was waiting, and the wipe is done."""
    fake = live.fakes[0]
    fake.connect()
    live.channel.heartbeat_every, live.channel.heartbeat_deadline = 0.2, 2.0
    _issue(live, "wipe_photos", [live.devices[0]])
    wait_until(lambda: _statuses(live) == [CommandStatus.SENT], what="the command to be sent")
    live.channel.client.loop_stop()  # the connection stays up, but nothing on it is read
    fake.answer()
    wait_until(lambda: _statuses(live) == [CommandStatus.DONE], what="the waiting ack")
    assert live.channel.stats.restarts == 1


def _identity(live: Live, mqtt_id: str) -> DeviceIdentity:
    with live.database.begin() as session:
        found = session.scalar(select(DeviceIdentity).where(DeviceIdentity.mqtt_id == mqtt_id))
        assert found is not None
        session.expunge(found)
        return found


def test_a_device_that_vanishes_is_recorded_offline_within_twice_its_keepalive(
    live: Live,
) -> None:
    """A device whose network drops (no DISCONNECT) shows `offline` within twice its keep-alive,
    and the server records since when: the broker enforces the keep-alive and sends the will."""
    # Mosquitto 2.0 looks for expired keep-alives every 6 s: within 2 x from 14 s up.
    keepalive = 4 if live.broker == "embedded" else 14
    fake = live.fakes[0]
    fake.connect(keepalive=keepalive)
    wait_until(lambda: _identity(live, fake.mqtt_id).online, what="the device to be online")
    vanished = utcnow()
    started = time.monotonic()
    fake.client.loop_stop()  # the socket stays open, but nothing more is ever sent on it
    wait_until(
        lambda: not _identity(live, fake.mqtt_id).online,
        timeout=2 * keepalive + 5,
        what="the device to be recorded offline",
    )
    elapsed = time.monotonic() - started
    assert elapsed <= 2 * keepalive, f"offline after {elapsed:.1f} s"
    identity = _identity(live, fake.mqtt_id)
    assert identity.offline_since is not None
    assert vanished <= identity.offline_since <= utcnow()


def test_a_full_inventory_is_recorded_and_an_oversize_message_refused(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """A report listing 5,000 apps is recorded; a payload over its kind's limit is refused and
    logged before it is parsed."""
    fake = live.fakes[0]
    fake.connect()
    now = int(time.time())
    report = Report(
        kid=key_id(fake.key.public_key()),
        device_id=fake.mqtt_id,
        iat=now,
        exp=now + 600,
        apps=tuple(f"uk.co.vendor{n:04d}.classroom.reader" for n in range(5000)),
    )
    payload = sign(report.to_body(), fake.key)
    assert len(payload) > 64 * 1024
    fake.client.publish(reported_topic(fake.mqtt_id), payload, qos=QOS).wait_for_publish(10)
    wait_until(lambda: live.channel.stats.reports >= 1, what="the inventory to be recorded")
    oversize = b"x" * (MAX_REPORT_BYTES + 1)
    fake.client.publish(reported_topic(fake.mqtt_id), oversize, qos=QOS).wait_for_publish(10)
    # Other refusals (a stale retained status on the shared broker) also count as rejected.
    refused = f"refused a {MAX_REPORT_BYTES + 1}-byte message"
    wait_until(lambda: refused in caplog.text, what="the oversize report refused")
    assert live.channel.stats.reports == 1


def _retained(live: Live, topics: list[str]) -> dict[str, bytes]:
    """What the broker retains on `topics`, as a new subscriber with the server's login hears;
    the last topic always has a retained message, which says the broker has sent them."""
    heard: dict[str, bytes] = {}
    subscribed = threading.Event()
    client = make_client(
        f"look-{uuid.uuid4().hex[:8]}",
        username=live.settings.mqtt_server_user,
        password=server_broker_password(live.settings),
        clean_session=True,
    )
    client.on_connect = lambda c, *_a: c.subscribe([(topic, QOS) for topic in topics])
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = lambda _c, _u, m: heard.__setitem__(m.topic, bytes(m.payload))
    client.connect("127.0.0.1", live.port)
    client.loop_start()
    try:
        assert subscribed.wait(10), "could not subscribe"
        wait_until(lambda: topics[-1] in heard, timeout=10, what="the retained messages")
        time.sleep(0.5)  # and any on the other topics, sent with it
    finally:
        client.disconnect()
        client.loop_stop()
    return heard


def test_a_revoked_identitys_retained_messages_leave_the_broker_once_its_will_is_past(
    live: Live,
) -> None:
    """A device erased or enrolled again leaves its old identity's last status and profile
    retained on the broker, kept in its memory for ever and replayed to every worker. The
    worker clears them, but only once the old identity's will can no longer come, and leaves
    every live identity's alone."""
    gone, kept = live.fakes[0], live.fakes[1]
    gone.connect()
    kept.connect()  # each retains "online" on its status topic
    wait_until(lambda: _identity(live, gone.mqtt_id).online, what="the device to be online")
    gone.disconnect()
    topics = [status_topic(gone.mqtt_id), desired_topic(gone.mqtt_id), status_topic(kept.mqtt_id)]
    # The profile the server sent the old identity, as the worker retains it.
    sent = live.channel.client.publish(topics[1], b"signed profile", qos=QOS, retain=True)
    sent.wait_for_publish(5)
    before = {topics[0]: b"online", topics[1]: b"signed profile", topics[2]: b"online"}
    assert _retained(live, topics) == before

    revoked_at = utcnow() - RETAINED_KEPT_FOR + timedelta(minutes=1)
    with live.database.begin() as session:
        device = session.get(Device, live.devices[0].id)
        assert device is not None
        revoke_identities(session, device, now=revoked_at, why="enrolled again")
    live.channel.clear_revoked_retained()
    assert _retained(live, topics) == before
    assert _identity(live, gone.mqtt_id).retained_cleared_at is None

    with live.database.begin() as session:
        session.execute(
            update(DeviceIdentity)
            .where(DeviceIdentity.mqtt_id == gone.mqtt_id)
            .values(revoked_at=revoked_at - timedelta(minutes=2))
        )
    live.channel.clear_revoked_retained()
    assert _retained(live, topics) == {topics[2]: b"online"}
    assert _identity(live, gone.mqtt_id).retained_cleared_at is not None
    assert live.channel.clear_revoked_retained() == 0  # cleared once
