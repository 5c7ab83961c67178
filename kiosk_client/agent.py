"""`trolley-kiosk run`: one device, one paho client, one worker thread.

paho's network thread (`loop_start`) connects, reconnects with its own jittered backoff
(`mqtt.client.make_client`), subscribes in `on_connect` and hands every message to a queue; it
never verifies, writes or waits. The worker thread owns the `DeviceCore`: it verifies, persists,
PUBACKs (`manual_ack=True`, so the broker re-delivers anything not yet on disk), executes and
acks. SIGTERM/SIGINT stop it cleanly: the command in hand finishes, nothing new is started,
`offline` is published (what the will would say) and the client disconnects.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from paho.mqtt import client as paho
from paho.mqtt.reasoncodes import ReasonCode

from kiosk_client.adapters import PlatformAdapter, make_adapter
from kiosk_client.config import KioskConfig, load_identity, load_server_keys
from kiosk_client.core import DeviceCore
from kiosk_client.server_api import ServerClient
from kiosk_client.state import StateStore
from kiosk_client.whereabouts import CheckIns
from mqtt.client import make_client_for_url
from mqtt.topics import (
    QOS,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    device_subscriptions,
    status_topic,
)

__all__ = ["Agent", "close_wakeup_sockets"]

logger = logging.getLogger(__name__)

# Far more than a device is ever sent at once; beyond it messages wait in the broker.
QUEUE_LIMIT = 1000
STOP_TIMEOUT = 30.0
_OFFLINE_TIMEOUT = 2.0


@dataclass(frozen=True)
class _Message:
    """A message from paho's network thread, waiting for the worker."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int


@dataclass(frozen=True)
class _Task:
    """Work for the worker that is not a message (a report, the start-up resume)."""

    name: str


_Item = _Message | _Task | None


def close_wakeup_sockets(client: paho.Client) -> None:
    """Close the socket pair `loop_start` opened to wake paho's thread (once it has stopped).

    paho closes it only in `Client.__del__`; when the client is freed as part of a reference
    cycle, the sockets may be finalised first and warn about being left open.
    """
    client._reset_sockets(sockpair_only=True)


class Agent:
    """The kiosk agent for one enrolled data directory."""

    def __init__(
        self,
        config: KioskConfig,
        *,
        adapter: PlatformAdapter | None = None,
        clock: Callable[[], float] = time.time,
        server: ServerClient | None = None,
    ) -> None:
        """Load keys, state and adapter (raising `ConfigError` early); connect with `start()`."""
        self.config = config
        self.adapter = adapter if adapter is not None else make_adapter(config)
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._worker: threading.Thread | None = None
        self.client = self._make_client()
        identity = load_identity(config)
        server = server or ServerClient(
            config.server_url, timeout=config.http_timeout, ca_file=config.http_ca_file
        )
        self.check_ins = CheckIns(server, identity, config.device_id, clock=clock)
        self.core = DeviceCore(
            config,
            identity=identity,
            server_keys=load_server_keys(config),
            adapter=self.adapter,
            store=StateStore(config.state_path, config.desired_path, fsync=config.fsync),
            publisher=self,
            server=server,
            clock=clock,
            on_forgotten=self._stop.set,
            on_network=self.check_ins.offer,
        )

    def _make_client(self) -> paho.Client:
        """The paho client: device id as client id and username, LWT, manual PUBACK."""
        config = self.config
        client = make_client_for_url(
            config.broker(),
            config.device_id,
            tls=config.tls.settings() if config.tls is not None else None,
            will_topic=status_topic(config.device_id),
            will_payload=STATUS_OFFLINE,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # --- paho callbacks (network thread: never block here) ------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        """Subscribe, say `online` and queue a report (paho thread: nothing that blocks)."""
        if reason.is_failure:
            logger.error("broker refused the connection: %s (retrying with backoff)", reason)
            return
        self._generation += 1
        self._subscribed.clear()
        self._connected.set()
        logger.info("connected to %s as %s", self.config.broker(), self.config.device_id)
        client.subscribe([(topic, QOS) for topic in device_subscriptions(self.config.device_id)])
        client.publish(status_topic(self.config.device_id), STATUS_ONLINE, qos=QOS, retain=True)
        self._enqueue(_Task("report"))

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        """Note that commands sent from now on reach this device."""
        if any(reason.is_failure for reason in reasons):
            logger.error("broker refused the subscriptions: %s", reasons)
            return
        self._subscribed.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        """Note the loss; paho reconnects by itself with backoff."""
        self._connected.clear()
        self._subscribed.clear()
        if not self._stop.is_set():
            logger.warning("disconnected from the broker (%s); paho will reconnect", reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """Hand the message to the worker; it is PUBACKed once persisted."""
        self._enqueue(
            _Message(
                topic=message.topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self._generation,
            )
        )

    def _enqueue(self, item: _Item) -> None:
        """Queue work for the worker without ever blocking the caller."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # Not PUBACKed, so the broker delivers it again after the next reconnect.
            logger.error("work queue full; dropping %r until the broker re-delivers it", item)

    # --- Publisher ----------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a QoS 1 publish; paho sends it now or after the next connect."""
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            logger.error("publish to %s refused by paho: %s", topic, paho.error_string(info.rc))

    def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 5.0
    ) -> bool:
        """Publish and wait for the PUBACK (bounded); False if it did not come in time."""
        deadline = time.monotonic() + timeout
        if not self._connected.wait(timeout):
            return False
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        try:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.1))
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def forgotten(self) -> bool:
        """Whether a factory reset erased this device's enrolment."""
        return self.core.forgotten

    @property
    def connected(self) -> bool:
        """Whether the client is connected right now."""
        return self._connected.is_set()

    def start(self) -> None:
        """Start the adapter, the worker and paho's network thread (returns at once)."""
        self.adapter.start()
        self.check_ins.start()
        self._queue.put(_Task("resume"))
        self._worker = threading.Thread(target=self._work, name="trolley-kiosk-worker", daemon=True)
        self._worker.start()
        broker = self.config.broker()
        self.client.connect_async(broker.host, broker.port, keepalive=self.config.keepalive)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected and subscribed, so commands sent now arrive (or time out)."""
        return self._subscribed.wait(timeout)

    def request_stop(self) -> None:
        """Ask the agent to stop (safe from signal handlers and other threads)."""
        self._stop.set()

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Start, send periodic reports, and block until stopped; return the exit code (0)."""
        if install_signal_handlers:
            self._install_signal_handlers()
        self.start()
        interval = self.config.report_interval
        while not self._stop.wait(interval if interval > 0 else None):
            self._enqueue(_Task("report"))
        self.stop()
        return 0

    def _install_signal_handlers(self) -> None:
        """Stop cleanly on SIGTERM and SIGINT."""

        def handle(signum: int, frame: FrameType | None) -> None:
            """Ask the run loop to stop (nothing else is safe in a signal handler)."""
            logger.info("received %s; stopping", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Finish the command in hand, then publish `offline`, disconnect and stop threads."""
        if self._stopped.is_set():
            return
        self._stop.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)
            if self._worker.is_alive():
                logger.error("the worker did not finish within %.0fs; leaving it", timeout)
        if self._connected.is_set():
            # A clean DISCONNECT suppresses the will, so say `offline` ourselves.
            info = self.client.publish(
                status_topic(self.config.device_id), STATUS_OFFLINE, qos=QOS, retain=True
            )
            try:
                info.wait_for_publish(_OFFLINE_TIMEOUT)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        close_wakeup_sockets(self.client)
        self.check_ins.stop()
        self.adapter.stop()
        self._stopped.set()
        logger.info("stopped")

    # --- worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        """The worker thread: one item at a time until stopped."""
        while True:
            item = self._queue.get()
            if item is None or (self._stop.is_set() and not isinstance(item, _Task)):
                # Messages left in the queue are not PUBACKed: the broker keeps them.
                return
            try:
                self._handle(item)
            except Exception:  # the worker must survive anything one message does
                logger.exception("unexpected error handling %r", item)
            if self.core.forgotten:
                return

    def _handle(self, item: _Message | _Task) -> None:
        """Run one queued item through the device core."""
        if isinstance(item, _Task):
            if self._stop.is_set():
                return
            if item.name == "resume":
                self.core.resume()
            elif item.name == "report":
                self.core.publish_report()
            return

        def settle() -> None:
            # A mid from an earlier connection means nothing now; the broker re-sends it.
            """Send the PUBACK for this message."""
            if item.qos > 0 and item.generation == self._generation:
                self.client.ack(item.mid, item.qos)

        self.core.handle_message(item.topic, item.payload, settle)
