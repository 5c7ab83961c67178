"""`trolley-kiosk simulate`: thousands of simulated devices in one process.

Each device is a full `DeviceCore` with its own sub-directory, key, ledger and paho client, but
there is no thread per device:

* a few **I/O threads** each drive a share of the paho clients with `loop_read`/`loop_write`/
  `loop_misc` over one `selectors` selector (paho's external-loop API). Every call into paho
  happens on the client's own I/O thread; other threads hand work over with `call_soon`, which
  wakes the selector through a socket pair. Connections are opened a bounded number at a time
  and re-opened after a loss with a jittered exponential backoff.
* a small **worker pool** verifies, persists, executes and signs. A device always goes to the
  same worker, so its messages are handled one at a time and in order, exactly as in
  `trolley-kiosk run`.

Programmatic use (tests, the demo, benchmarks)::

    paths = enrol_fleet(payload_lines, data_dir)          # or devices enrolled earlier
    with FleetSimulator(data_dir, count=1000) as fleet:   # starts; stops on exit
        fleet.wait_connected(timeout=60)
        ...
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import heapq
import itertools
import logging
import os
import queue
import random
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt import client as paho
from paho.mqtt.reasoncodes import ReasonCode

from kiosk_client.adapters.simulated import SimulatedAdapter
from kiosk_client.config import (
    DEFAULT_IO_THREADS,
    DEFAULT_WORKERS,
    ENV_BROKER_URL,
    ENV_SERVER_URL,
    KioskConfig,
    Platform,
    load_config,
    load_identity,
    load_server_keys,
)
from kiosk_client.core import DeviceCore
from kiosk_client.errors import ConfigError
from kiosk_client.fleet_enrolment import (
    DEVICE_DIR_PREFIX,
    enrol_fleet,
    enrolled_device_dirs,
    read_payload_file,
)
from kiosk_client.server_api import ServerClient
from kiosk_client.state import StateStore
from mqtt.client import make_client_for_url
from mqtt.envelope import encode_public_key
from mqtt.topics import QOS, STATUS_OFFLINE, STATUS_ONLINE, device_subscriptions, status_topic

__all__ = [
    "DEVICE_DIR_PREFIX",
    "FleetSimulator",
    "enrol_fleet",
    "enrolled_device_dirs",
    "read_payload_file",
]

logger = logging.getLogger(__name__)

# Connections opened at once per I/O thread: a broker's accept backlog is finite (amqtt: 100).
DEFAULT_CONNECT_CONCURRENCY = 50
MIN_RECONNECT_DELAY = 1.0
MAX_RECONNECT_DELAY = 60.0
_MAINTENANCE_INTERVAL = 1.0
_STOP_FLUSH_TIMEOUT = 5.0


# --- one simulated device -----------------------------------------------------------------------


class _Device:
    """A simulated device: its core, its paho client, and where it lives in the fleet."""

    def __init__(
        self, fleet: FleetSimulator, config: KioskConfig, loop: _IOLoop, worker: _Worker
    ) -> None:
        """Build the device's core and paho client (not connected yet)."""
        self.fleet = fleet
        self.config = config
        self.device_id = config.device_id
        self.loop = loop
        self.worker = worker
        self.generation = 0
        self.connected = False
        self.subscribed = False
        self.connecting = False
        self.ever_connected = False
        self.removed = False
        self.attempts = 0
        self.next_report = 0.0
        self.client = make_client_for_url(
            config.broker(),
            config.device_id,
            tls=config.tls.settings() if config.tls is not None else None,
            will_topic=status_topic(config.device_id),
            will_payload=STATUS_OFFLINE,
            manual_ack=True,
            userdata=self,
            min_reconnect_delay=MIN_RECONNECT_DELAY,
            max_reconnect_delay=MAX_RECONNECT_DELAY,
        )
        client = self.client
        client.on_connect = loop.on_connect
        client.on_disconnect = loop.on_disconnect
        client.on_message = loop.on_message
        client.on_subscribe = loop.on_subscribe
        client.on_socket_open = loop.on_socket_open
        client.on_socket_close = loop.on_socket_close
        client.on_socket_register_write = loop.on_socket_register_write
        client.on_socket_unregister_write = loop.on_socket_unregister_write
        adapter = SimulatedAdapter(
            config.simulated.root if config.simulated is not None else config.data_dir / "device",
            operation_delay=config.simulated.operation_delay if config.simulated else 0.0,
            fsync=config.fsync,
        )
        self.core = DeviceCore(
            config,
            identity=load_identity(config),
            server_keys=fleet.shared_keys(load_server_keys(config)),
            adapter=adapter,
            store=StateStore(config.state_path, config.desired_path, fsync=config.fsync),
            publisher=self,
            server=fleet.server_client(config),
            on_forgotten=self._forgotten,
        )

    # Publisher: called from the device's worker thread; paho is touched only on the I/O thread.

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Hand a QoS 1 publish to the I/O thread."""
        self.loop.call_soon(lambda: self._publish_now(topic, payload, retain))

    def _publish_now(self, topic: str, payload: bytes, retain: bool) -> paho.MQTTMessageInfo:
        """Publish from the I/O thread."""
        return self.client.publish(topic, payload, qos=QOS, retain=retain)

    def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 5.0
    ) -> bool:
        """Publish through the I/O thread and wait (bounded) for the PUBACK."""
        deadline = time.monotonic() + timeout
        future: concurrent.futures.Future[paho.MQTTMessageInfo] = concurrent.futures.Future()

        def run() -> None:
            """Publish on the I/O thread and hand back the message info."""
            try:
                future.set_result(self._publish_now(topic, payload, retain))
            except Exception as exc:  # hand any paho error to the waiting worker
                future.set_exception(exc)

        self.loop.call_soon(run)
        try:
            info = future.result(timeout)
            info.wait_for_publish(max(deadline - time.monotonic(), 0.1))
        except (concurrent.futures.TimeoutError, RuntimeError, ValueError):
            return False
        return info.is_published()

    def settle(self, mid: int, qos: int, generation: int) -> None:
        """PUBACK a message on the I/O thread, unless it came on an earlier connection."""

        def run() -> None:
            """PUBACK on the I/O thread if the connection is still the same."""
            if qos > 0 and generation == self.generation and self.connected:
                self.client.ack(mid, qos)

        self.loop.call_soon(run)

    def _forgotten(self) -> None:
        """After a factory reset the device leaves the fleet."""
        self.loop.call_soon(lambda: self.loop.remove(self))


# --- workers ------------------------------------------------------------------------------------

_WorkItem = tuple[str, _Device, Any] | None


class _Worker(threading.Thread):
    """Runs device logic for the devices assigned to it, one item at a time."""

    def __init__(self, index: int) -> None:
        """An idle worker; `start()` runs it."""
        super().__init__(name=f"trolley-sim-worker-{index}", daemon=True)
        self.items: queue.SimpleQueue[_WorkItem] = queue.SimpleQueue()
        self.handled = 0
        # Once stopping, queued messages are left alone: not PUBACKed, the broker keeps them.
        self.stopping = False

    def put(self, kind: str, device: _Device, data: Any = None) -> None:
        """Queue work for a device this worker owns."""
        self.items.put((kind, device, data))

    def run(self) -> None:
        """Handle items until the stop sentinel."""
        while True:
            item = self.items.get()
            if item is None:
                return
            kind, device, data = item
            if device.core.forgotten or (self.stopping and kind != "resume"):
                continue
            try:
                if kind == "message":
                    topic, payload, mid, qos, generation = data
                    device.core.handle_message(
                        topic, payload, functools.partial(device.settle, mid, qos, generation)
                    )
                elif kind == "report":
                    device.core.publish_report()
                elif kind == "resume":
                    device.core.resume()
            except Exception:  # one device's bug must not stop the others
                logger.exception("%s: unexpected error handling %s", device.device_id, kind)
            self.handled += 1


# --- I/O threads ---------------------------------------------------------------------------------


class _IOLoop(threading.Thread):
    """One selector driving many paho clients (paho's external-loop API)."""

    def __init__(self, fleet: FleetSimulator, index: int, connect_concurrency: int) -> None:
        """An idle I/O thread; devices are added before `start()`."""
        super().__init__(name=f"trolley-sim-io-{index}", daemon=True)
        self.fleet = fleet
        self.devices: list[_Device] = []
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._wake_pending = False
        self._calls: collections.deque[Callable[[], Any]] = collections.deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._to_connect: collections.deque[_Device] = collections.deque()
        self._connecting = 0
        self.connect_concurrency = connect_concurrency
        self._stopping = False
        self._stop_deadline = 0.0
        self._leaving: list[tuple[_Device, paho.MQTTMessageInfo, float]] = []

    # --- cross-thread entry points ----------------------------------------------------------

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on this I/O thread (safe from any thread)."""
        self._calls.append(fn)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake_w.send(b"\0")
            except BlockingIOError:
                pass  # the pipe is full, so the loop is awake anyway

    def request_stop(self) -> None:
        """Publish `offline`, disconnect every client, and end once flushed."""
        self.call_soon(self._begin_stop)

    # --- loop-thread helpers -------------------------------------------------------------------

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` on this thread after `delay` seconds (call from this thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids), fn))

    def queue_connect(self, device: _Device) -> None:
        """Queue a (re)connection, opened when a connect slot is free."""
        if not device.removed and not self._stopping:
            self._to_connect.append(device)

    def join_fleet(self, device: _Device) -> None:
        """Drive a device that joined after the start (call from this thread only)."""
        self.devices.append(device)
        self.queue_connect(device)

    def remove(self, device: _Device) -> None:
        """Take a device out of the fleet (after a factory reset): `offline`, then disconnect."""
        device.removed = True
        if device.connected:
            self._leave(device)
        elif device.connecting:
            device.client.disconnect()

    def _leave(self, device: _Device) -> None:
        # A clean DISCONNECT suppresses the will, so say `offline` ourselves, and disconnect
        # once the broker has acknowledged it: amqtt 0.12 leaks the connection of a client
        # that hangs up while the broker still owes it a PUBACK.
        """Publish `offline`, then disconnect once the broker acknowledged it."""
        info = self._publish_offline(device)
        self._leaving.append((device, info, time.monotonic() + _STOP_FLUSH_TIMEOUT / 2))

    def _publish_offline(self, device: _Device) -> paho.MQTTMessageInfo:
        """Publish the retained `offline` status."""
        return device.client.publish(
            status_topic(device.device_id), STATUS_OFFLINE, qos=QOS, retain=True
        )

    def _begin_stop(self) -> None:
        """Start leaving: stop connecting, say `offline`, disconnect."""
        self._stopping = True
        self._stop_deadline = time.monotonic() + _STOP_FLUSH_TIMEOUT
        self._to_connect.clear()
        for device in self.devices:
            if device.connected:
                self._leave(device)
            elif device.connecting:
                device.client.disconnect()

    def _finish_leaving(self) -> None:
        """Disconnect each leaving client whose `offline` was acknowledged (or timed out)."""
        now = time.monotonic()
        waiting: list[tuple[_Device, paho.MQTTMessageInfo, float]] = []
        for device, info, deadline in self._leaving:
            if info.is_published() or now > deadline or not device.connected:
                device.client.disconnect()
            else:
                waiting.append((device, info, deadline))
        self._leaving = waiting

    def _start_connects(self) -> None:
        """Open queued connections, a bounded number at a time."""
        while self._to_connect and self._connecting < self.connect_concurrency:
            device = self._to_connect.popleft()
            if device.removed or device.connected or device.connecting:
                continue
            broker = device.config.broker()
            try:
                if device.ever_connected or device.attempts:
                    device.client.reconnect()
                else:
                    device.client.connect(
                        broker.host, broker.port, keepalive=device.config.keepalive
                    )
            except (OSError, ValueError) as exc:
                logger.debug("%s: cannot connect: %s", device.device_id, exc)
                self._retry_later(device)
                continue
            device.connecting = True
            self._connecting += 1

    def _retry_later(self, device: _Device) -> None:
        """Schedule a reconnection with exponential backoff and jitter."""
        device.attempts += 1
        base = min(MAX_RECONNECT_DELAY, MIN_RECONNECT_DELAY * 2 ** min(device.attempts - 1, 10))
        # Jitter: a fleet that lost its broker must not come back in one burst.
        self.call_later(base * random.uniform(1.0, 1.5), lambda: self.queue_connect(device))

    def _connect_finished(self, device: _Device) -> None:
        """Free the connect slot a device held."""
        if device.connecting:
            device.connecting = False
            self._connecting -= 1

    # --- paho callbacks (always on this thread) ------------------------------------------------

    def on_socket_open(self, client: paho.Client, device: _Device, sock: Any) -> None:
        """Watch a new socket for reading."""
        self.selector.register(sock, selectors.EVENT_READ, device)

    def on_socket_close(self, client: paho.Client, device: _Device, sock: Any) -> None:
        """Stop watching a closed socket."""
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def on_socket_register_write(self, client: paho.Client, device: _Device, sock: Any) -> None:
        """Also watch for writability: paho has data to send."""
        try:
            self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, device)
        except (KeyError, ValueError):
            pass

    def on_socket_unregister_write(self, client: paho.Client, device: _Device, sock: Any) -> None:
        """Back to reading only: paho's buffer is empty."""
        try:
            self.selector.modify(sock, selectors.EVENT_READ, device)
        except (KeyError, ValueError):
            pass

    def on_connect(
        self, client: paho.Client, device: _Device, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        """Subscribe, say `online`, schedule reports."""
        self._connect_finished(device)
        if reason.is_failure:
            logger.warning("%s: broker refused the connection: %s", device.device_id, reason)
            return
        device.connected = True
        device.subscribed = False
        device.ever_connected = True
        device.attempts = 0
        device.generation += 1
        client.subscribe([(topic, QOS) for topic in device_subscriptions(device.device_id)])
        client.publish(status_topic(device.device_id), STATUS_ONLINE, qos=QOS, retain=True)
        interval = device.config.report_interval
        if interval > 0:
            # Spread periodic reports so the fleet does not report in one burst.
            device.next_report = time.monotonic() + interval * random.uniform(0.5, 1.0)
        device.worker.put("report", device)

    def on_subscribe(
        self, client: paho.Client, device: _Device, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        """The device is ready for commands."""
        if any(reason.is_failure for reason in reasons):
            logger.error("%s: the broker refused a subscription: %s", device.device_id, reasons)
            return
        device.subscribed = True

    def on_disconnect(
        self, client: paho.Client, device: _Device, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        """Reconnect later, unless stopping or removed."""
        self._connect_finished(device)
        device.connected = False
        device.subscribed = False
        if self._stopping or device.removed:
            return
        logger.info("%s: disconnected (%s); reconnecting", device.device_id, reason)
        self._retry_later(device)

    def on_message(self, client: paho.Client, device: _Device, message: paho.MQTTMessage) -> None:
        """Hand the message to the device's worker."""
        device.worker.put(
            "message",
            device,
            (message.topic, bytes(message.payload), message.mid, message.qos, device.generation),
        )

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """The I/O loop: select, read, write, hand-overs, timers, keepalive."""
        for device in self.devices:
            self.queue_connect(device)
        next_maintenance = time.monotonic() + _MAINTENANCE_INTERVAL
        try:
            while True:
                now = time.monotonic()
                if self._stopping and (now > self._stop_deadline or not self._busy()):
                    return
                self._start_connects()
                timeout = max(min(next_maintenance, self._next_timer()) - now, 0.0)
                if self._calls:
                    timeout = 0.0
                for key, mask in self.selector.select(timeout):
                    device = key.data
                    if device is None:
                        self._drain_wake()
                        continue
                    if mask & selectors.EVENT_READ:
                        device.client.loop_read()
                    if mask & selectors.EVENT_WRITE and device.client.socket() is not None:
                        device.client.loop_write()
                self._run_calls()
                self._run_timers()
                if self._leaving:
                    self._finish_leaving()
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + _MAINTENANCE_INTERVAL
                    self._maintain()
        except Exception:
            logger.exception("%s crashed", self.name)
            raise
        finally:
            for device in self.devices:
                sock = device.client.socket()
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
            self.selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _busy(self) -> bool:
        """Whether any client still has a socket open (stopping waits for all to flush)."""
        return bool(self._calls) or any(d.client.socket() is not None for d in self.devices)

    def _next_timer(self) -> float:
        """When the next timer is due (infinity if none)."""
        return self._timers[0][0] if self._timers else float("inf")

    def _drain_wake(self) -> None:
        """Empty the wake-up socket."""
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        self._wake_pending = False

    def _run_calls(self) -> None:
        """Run the calls handed over by other threads."""
        for _ in range(len(self._calls)):
            fn = self._calls.popleft()
            try:
                fn()
            except Exception:  # a failed publish must not stop the other devices' I/O
                logger.exception("%s: deferred call failed", self.name)

    def _run_timers(self) -> None:
        """Run the timers that are due."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            fn()

    def _maintain(self) -> None:
        """Keepalive pings and due reports for every client."""
        now = time.monotonic()
        for device in self.devices:
            if device.client.socket() is not None:
                device.client.loop_misc()
            interval = device.config.report_interval
            if device.connected and interval > 0 and now >= device.next_report:
                device.next_report = now + interval
                device.worker.put("report", device)


# --- the fleet ------------------------------------------------------------------------------------


class FleetSimulator:
    """Many simulated devices in one process; a context manager that starts and stops them."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        count: int | None = None,
        io_threads: int = DEFAULT_IO_THREADS,
        workers: int = DEFAULT_WORKERS,
        fsync: bool = False,
        report_interval: int | None = None,
        connect_concurrency: int = DEFAULT_CONNECT_CONCURRENCY,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Load up to `count` enrolled devices from `data_dir` (all if None).

        `fsync=False` (the default here) keeps each device's writes atomic but not flushed to
        disk: a simulated fleet measures the protocol, not the disk. `environ` may point the
        whole fleet at another broker or server (`TROLLEY_KIOSK_BROKER_URL`/`_SERVER_URL`).
        """
        self.data_dir = Path(data_dir).expanduser().absolute()
        env = os.environ if environ is None else environ
        overrides = {k: env[k] for k in (ENV_BROKER_URL, ENV_SERVER_URL) if env.get(k)}
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._servers: dict[tuple[str, str, float], ServerClient] = {}
        _raise_file_limit()
        self._workers = [_Worker(i) for i in range(max(workers, 1))]
        self._loops = [_IOLoop(self, i, connect_concurrency) for i in range(max(io_threads, 1))]
        self.devices: list[_Device] = []
        self._overrides = overrides
        self._fsync = fsync
        self._report_interval = report_interval
        self._adding = threading.Lock()
        self._started = False
        dirs = enrolled_device_dirs(self.data_dir)
        if count is not None:
            if len(dirs) < count:
                raise ConfigError(
                    f"{self.data_dir} holds {len(dirs)} enrolled device(s), {count} asked for; "
                    "enrol more with --enrol-file"
                )
            dirs = dirs[:count]
        for path in dirs:
            self.add(path)

    def add(self, path: Path) -> None:
        """Take the device enrolled in `path` into the fleet; once started, it connects now."""
        config = load_config(path, self._overrides)
        if config.platform is not Platform.SIMULATED:
            raise ConfigError(f"{path} is not a simulated device")
        config = config.with_overrides(fsync=self._fsync)
        if self._report_interval is not None:
            config = config.with_overrides(report_interval=self._report_interval)
        with self._adding:
            index = len(self.devices)
            loop = self._loops[index % len(self._loops)]
            worker = self._workers[index % len(self._workers)]
            device = _Device(self, config, loop, worker)
            self.devices.append(device)
            if not self._started:
                loop.devices.append(device)
                return
        worker.put("resume", device)
        loop.call_soon(lambda: loop.join_fleet(device))

    def shared_keys(self, keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
        """The same key objects for every device that pins the same server keys (memory)."""
        shared: dict[str, Ed25519PublicKey] = {}
        for kid, key in keys.items():
            text = encode_public_key(key)
            shared[kid] = self._keys.setdefault(f"{kid}:{text}", key)
        return shared

    def server_client(self, config: KioskConfig) -> ServerClient:
        """One HTTP client per distinct server, shared by its devices."""
        ca = str(config.http_ca_file or "")
        key = (config.server_url, ca, config.http_timeout)
        if key not in self._servers:
            self._servers[key] = ServerClient(
                config.server_url, timeout=config.http_timeout, ca_file=config.http_ca_file
            )
        return self._servers[key]

    @property
    def device_ids(self) -> list[str]:
        """Every device id in the fleet (including any that factory reset since)."""
        return [device.device_id for device in self.devices]

    @property
    def connected_count(self) -> int:
        """How many devices are connected and subscribed (ready for commands) right now."""
        return sum(1 for device in self.devices if device.connected and device.subscribed)

    @property
    def active_count(self) -> int:
        """How many devices are still enrolled (not factory reset)."""
        return sum(1 for device in self.devices if not device.removed)

    def start(self) -> None:
        """Resume each device's ledger, then start the workers and the I/O threads."""
        with self._adding:
            if self._started:
                return
            self._started = True
            joined = list(self.devices)  # any added from now on resume as they join
        for device in joined:
            device.worker.put("resume", device)
        for worker in self._workers:
            worker.start()
        for loop in self._loops:
            loop.start()
        logger.info(
            "simulating %d device(s) on %d I/O thread(s) and %d worker(s)",
            len(self.devices),
            len(self._loops),
            len(self._workers),
        )

    def wait_connected(self, timeout: float, count: int | None = None) -> bool:
        """Block until `count` (default: all active) devices are connected and subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            target = self.active_count if count is None else count
            if self.connected_count >= target:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Finish the work in hand, publish `offline`, disconnect, and join every thread."""
        if not self._started:
            return
        self._started = False
        for worker in self._workers:
            worker.stopping = True
            worker.items.put(None)
        for worker in self._workers:
            worker.join(30)
        for loop in self._loops:
            loop.request_stop()
        for loop in self._loops:
            loop.join(_STOP_FLUSH_TIMEOUT + 5)
        logger.info("fleet stopped")

    def run(self, stop: threading.Event) -> int:
        """Start, wait for `stop`, stop; return the exit code (0)."""
        self.start()
        stop.wait()
        self.stop()
        return 0

    def __enter__(self) -> FleetSimulator:
        """Start on entry."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop on exit."""
        self.stop()


def _raise_file_limit() -> None:
    """Lift the soft open-file limit to the hard one: each device holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from %d: %s", soft, exc)
