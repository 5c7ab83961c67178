"""Auth, ACL, offline queues, retained state, restarts: each test runs on amqtt and Mosquitto."""

from __future__ import annotations

import time

from mqtt import topics
from tests.mqtt.conftest import BrokerHandle, PeerFactory
from tests.mqtt.support import PASSWORDS, Peer, login

SERVER = "trolley_server"
# Longer than amqtt waits for a PUBACK (5 s) before it would forget the message.
UNACKNOWLEDGED_FOR = 6.0


def server_peer(peer: PeerFactory, broker: BrokerHandle, client_id: str = "worker-1") -> Peer:
    """A connected server-side peer with a clean session."""
    server = peer(broker.port, client_id, clean_session=True, max_inflight=0, **login(SERVER))
    assert not server.connect().is_failure
    return server


def device_peer(peer: PeerFactory, broker: BrokerHandle, device_id: str, **options: object) -> Peer:
    """A connected device peer (persistent session, client id = username)."""
    device = peer(broker.port, device_id, **login(device_id), **options)
    rc = device.connect()
    assert not rc.is_failure, rc
    return device


def test_anonymous_connection_is_refused(broker: BrokerHandle, peer: PeerFactory) -> None:
    anonymous = peer(broker.port, "", clean_session=True)
    rc = anonymous.connect()
    assert rc.is_failure
    assert rc.getName() == "Not authorized"


def test_wrong_password_and_unknown_user_are_refused(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    assert peer(broker.port, "dev-a", username="dev-a", password="wrong").connect().is_failure
    assert peer(broker.port, "dev-z", username="dev-z", password="secret-a").connect().is_failure
    # The server's password does not open a device account either.
    other = peer(broker.port, "dev-a", username="dev-a", password=PASSWORDS[SERVER])
    assert other.connect().is_failure


def test_device_cannot_receive_another_devices_commands(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    device_a = device_peer(peer, broker, "dev-a")
    own, foreign, wildcard = device_a.subscribe(
        topics.cmd_topic("dev-a"), topics.cmd_topic("dev-b"), "trolley/v1/dev/+/cmd"
    )
    assert not own.is_failure
    server = server_peer(peer, broker)
    server.publish(topics.cmd_topic("dev-b"), b"for-b")
    server.publish(topics.cmd_topic("dev-a"), b"for-a")
    # Mosquitto 2.0 grants the foreign subscriptions but delivers nothing; amqtt refuses them.
    assert device_a.received() == [(topics.cmd_topic("dev-a"), b"for-a")]
    if broker.name == "embedded":
        assert foreign.is_failure and wildcard.is_failure


def test_device_cannot_publish_on_another_devices_topics(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    server = server_peer(peer, broker)
    server.subscribe(*topics.server_subscriptions(), topics.cmd_topic("dev-b"))
    device_a = device_peer(peer, broker, "dev-a")
    # Under MQTT 3.1.1 a refused publish is still acknowledged; it just goes nowhere.
    device_a.publish(topics.ack_topic("dev-b"), b"forged-ack")
    device_a.publish(topics.status_topic("dev-b"), b"offline")
    device_a.publish(topics.cmd_topic("dev-b"), b"forged-cmd")
    device_a.publish(topics.ack_topic("dev-a"), b"real-ack")
    assert server.received() == [(topics.ack_topic("dev-a"), b"real-ack")]


def test_server_user_reaches_every_device_topic(broker: BrokerHandle, peer: PeerFactory) -> None:
    server = server_peer(peer, broker)
    assert not any(code.is_failure for code in server.subscribe("trolley/v1/#"))
    device_b = device_peer(peer, broker, "dev-b")
    device_b.subscribe(*topics.device_subscriptions("dev-b"))
    device_b.publish(topics.reported_topic("dev-b"), b"inventory")
    assert server.expect().payload == b"inventory"
    server.publish(topics.cmd_topic("dev-b"), b"ping")
    message = device_b.expect()
    assert (message.topic, message.payload) == (topics.cmd_topic("dev-b"), b"ping")


def test_offline_device_receives_queued_command_on_reconnect(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    device.close()
    server = server_peer(peer, broker)
    server.publish(topics.cmd_topic("dev-a"), b"wipe-while-away")
    # Same client id, clean_session=False, and no new SUBSCRIBE: the session brings it.
    again = device_peer(peer, broker, "dev-a")
    message = again.expect()
    assert (message.topic, message.payload) == (topics.cmd_topic("dev-a"), b"wipe-while-away")
    assert message.qos == 1


def test_a_command_never_acknowledged_comes_again_when_the_device_reconnects(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    """P-PHOTO-1: a wipe sent to a device that stopped reading is not lost; the resumed session
    sends it again, even after the broker has given up waiting for the PUBACK."""
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    device.client.loop_stop()  # still connected, but it reads (and acknowledges) nothing
    server = server_peer(peer, broker)
    server.publish(topics.cmd_topic("dev-a"), b"wipe-unread")
    time.sleep(UNACKNOWLEDGED_FOR)
    device.drop()
    again = device_peer(peer, broker, "dev-a")
    message = again.expect()
    assert (message.topic, message.payload) == (topics.cmd_topic("dev-a"), b"wipe-unread")


def test_retained_desired_and_offline_will(broker: BrokerHandle, peer: PeerFactory) -> None:
    status = topics.status_topic("dev-a")
    device = device_peer(peer, broker, "dev-a", will=(status, topics.STATUS_OFFLINE))
    device.publish(status, topics.STATUS_ONLINE, retain=True)
    server = server_peer(peer, broker)
    server.publish(topics.desired_topic("dev-a"), b"desired-v1", retain=True)

    watcher = server_peer(peer, broker, "worker-2")
    watcher.subscribe(status)
    assert watcher.expect().payload == b"online"  # retained presence

    device.drop()  # no DISCONNECT: the broker publishes the will
    message = watcher.expect(timeout=15)
    assert (message.topic, message.payload) == (status, b"offline")

    fresh = peer(broker.port, "dev-a", clean_session=True, **login("dev-a"))
    assert not fresh.connect().is_failure
    fresh.subscribe(topics.desired_topic("dev-a"))
    retained = fresh.expect()
    assert (retained.payload, retained.retain) == (b"desired-v1", True)


def test_restart_keeps_retained_and_queued_messages(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    device.close()
    server = server_peer(peer, broker)
    server.publish(topics.desired_topic("dev-b"), b"desired-b", retain=True)
    server.publish(topics.cmd_topic("dev-a"), b"queued-before-restart")
    server.close()

    broker.restart()

    again = device_peer(peer, broker, "dev-a")
    assert again.expect().payload == b"queued-before-restart"
    device_b = device_peer(peer, broker, "dev-b")
    device_b.subscribe(topics.desired_topic("dev-b"))
    assert device_b.expect().payload == b"desired-b"


def test_delivered_queue_is_not_replayed_after_another_restart(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    device = device_peer(peer, broker, "dev-a")
    device.subscribe(topics.cmd_topic("dev-a"))
    device.close()
    server = server_peer(peer, broker)
    server.publish(topics.cmd_topic("dev-a"), b"once")
    server.close()
    broker.restart()
    first = device_peer(peer, broker, "dev-a")
    assert first.expect().payload == b"once"
    first.settle()  # make sure the PUBACK left before we disconnect
    first.close()

    broker.restart()

    second = device_peer(peer, broker, "dev-a")
    assert second.received() == []
    # The subscription itself survived both restarts.
    server = server_peer(peer, broker, "worker-2")
    server.publish(topics.cmd_topic("dev-a"), b"after")
    assert second.expect().payload == b"after"


def test_failed_login_cannot_disturb_another_devices_session(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    device = device_peer(peer, broker, "dev-b")
    device.subscribe(topics.cmd_topic("dev-b"))
    device.close()
    server = server_peer(peer, broker)
    server.publish(topics.cmd_topic("dev-b"), b"keep-me")
    # A clean-session CONNECT with dev-b's client id but no valid password must not wipe it.
    intruder = peer(broker.port, "dev-b", clean_session=True, username="dev-b", password="guess")
    assert intruder.connect().is_failure
    again = device_peer(peer, broker, "dev-b")
    assert again.expect().payload == b"keep-me"


def test_reconnecting_device_gets_no_other_devices_retained_messages(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    server = server_peer(peer, broker)
    server.subscribe("trolley/v1/#")
    device_b = device_peer(peer, broker, "dev-b")
    device_b.publish(topics.status_topic("dev-b"), b"online", retain=True)
    server.publish(topics.desired_topic("dev-b"), b"desired-b", retain=True)
    device_a = device_peer(peer, broker, "dev-a")
    device_a.subscribe(topics.cmd_topic("dev-a"))
    device_a.close()
    again = device_peer(peer, broker, "dev-a")
    assert again.received() == []


def test_will_on_another_devices_topic_never_arrives(
    broker: BrokerHandle, peer: PeerFactory
) -> None:
    watcher = server_peer(peer, broker)
    watcher.subscribe(topics.status_topic("dev-b"))
    spoofer = peer(
        broker.port,
        "dev-a",
        **login("dev-a"),
        will=(topics.status_topic("dev-b"), topics.STATUS_OFFLINE),
    )
    if broker.name == "embedded":
        # amqtt does not check a will against the ACL when it fires, so the login is refused.
        assert spoofer.connect().is_failure
        return
    # Mosquitto accepts the login and checks the ACL when the will would be published.
    assert not spoofer.connect().is_failure
    spoofer.drop()
    assert watcher.received(wait=1.0) == []


def test_shared_subscriptions(broker: BrokerHandle, peer: PeerFactory) -> None:
    worker = server_peer(peer, broker)
    codes = worker.subscribe(*topics.server_subscriptions(shared=True))
    if broker.name == "embedded":
        # amqtt has no shared subscriptions: refusing them beats silently delivering nothing.
        assert all(code.is_failure for code in codes)
        return
    assert not any(code.is_failure for code in codes)
    device = device_peer(peer, broker, "dev-a")
    device.publish(topics.ack_topic("dev-a"), b"ack")
    assert worker.expect().payload == b"ack"
