"""A small synchronous MQTT test peer on top of `mqtt.client.make_client`."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Callable
from typing import Any

from paho.mqtt import client as paho
from paho.mqtt.reasoncodes import ReasonCode

from mqtt.client import TLSSettings, make_client, publish_and_wait

TIMEOUT = 5.0
# How long a negative test waits for a message that must not come.
QUIET = 0.4

PASSWORDS = {
    "trolley_server": "server-secret",
    "dev-a": "secret-a",
    "dev-b": "secret-b",
}


def login(user: str) -> dict[str, str]:
    """Username and password keyword arguments for a user in `PASSWORDS`."""
    return {"username": user, "password": PASSWORDS[user]}


class Peer:
    """One MQTT client with queues for CONNACK, SUBACK and messages; waits always have deadlines."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = False,
        will: tuple[str, bytes] | None = None,
        host: str = "127.0.0.1",
        tls: TLSSettings | None = None,
        max_inflight: int | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._connacks: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client = make_client(
            client_id,
            username=username,
            password=password,
            clean_session=clean_session,
            tls=tls,
            will_topic=will[0] if will else None,
            will_payload=will[1] if will else None,
            max_inflight=max_inflight,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._started = False

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            # Stop paho retrying a refused login (its retry sleep would slow every teardown).
            client.disconnect()
        self._connacks.put(rc)

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any
    ) -> None:
        self._subacks.put(rcs)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def connect(self, timeout: float = TIMEOUT) -> ReasonCode:
        """Connect and return the CONNACK reason code; a refused peer is stopped at once."""
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        self._started = True
        rc = self._connacks.get(timeout=timeout)
        if rc.is_failure:
            self.close()
        return rc

    def subscribe(self, *filters: str, timeout: float = TIMEOUT) -> list[ReasonCode]:
        """Subscribe at QoS 1 and return the SUBACK codes."""
        self.client.subscribe([(topic_filter, 1) for topic_filter in filters])
        return self._subacks.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish QoS 1 and wait for the PUBACK."""
        publish_and_wait(self.client, topic, payload, retain=retain, timeout=TIMEOUT)

    def expect(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        """The next message, or fail."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s") from None

    def received(self, wait: float = QUIET) -> list[tuple[str, bytes]]:
        """(topic, payload) of everything that arrives within `wait` seconds."""
        return self.received_until(lambda _got: False, wait)

    def received_until(
        self, enough: Callable[[list[tuple[str, bytes]]], bool], timeout: float = TIMEOUT
    ) -> list[tuple[str, bytes]]:
        """(topic, payload) of what arrives until `enough` says so, or `timeout` seconds pass.

        For a test that expects many messages: a busy machine may take longer than a fixed
        wait to deliver them, and waiting only until they are all in costs nothing when it is not.
        """
        deadline = time.monotonic() + timeout
        got: list[tuple[str, bytes]] = []
        while not enough(got) and (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            got.append((message.topic, message.payload))
        return got

    def settle(self, pause: float = 0.1) -> None:
        """Let paho send the PUBACKs of messages already handed to us, then round-trip once.

        paho acknowledges a QoS 1 message after `on_message` returns, so a test that reacts to
        a message at once could otherwise disconnect before the broker hears the PUBACK.
        """
        time.sleep(pause)
        info = self.client.publish(f"trolley/v1/dev/{self.client_id}/ack", b"settle", qos=1)
        info.wait_for_publish(timeout=TIMEOUT)

    def close(self) -> None:
        """Disconnect cleanly (no will) and stop the network thread."""
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False

    def drop(self) -> None:
        """Vanish without DISCONNECT, as a device whose battery died: the broker sends the will."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        # paho can no longer send DISCONNECT on the dead socket; this only stops its loop.
        self.client.disconnect()
        self.client.loop_stop()
        self._started = False


def wait_until(predicate: Any, timeout: float = TIMEOUT, interval: float = 0.02) -> None:
    """Poll `predicate` until true or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_for_port(host: str, port: int, timeout: float = TIMEOUT) -> None:
    """Wait until something accepts TCP connections on host:port."""

    def accepting() -> bool:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
        except OSError:
            return False
        return True

    wait_until(accepting, timeout=timeout, interval=0.05)
