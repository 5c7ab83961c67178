"""Shared test helpers: reaching the real services this machine runs."""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from time import sleep
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADDR = ("127.0.0.1", 5432)
MOSQUITTO_ADDR = ("127.0.0.1", 1883)


def require_service(name: str, addr: tuple[str, int]) -> None:
    """Fail under CI=true (never skip) when a required service is down; skip visibly otherwise."""
    try:
        socket.create_connection(addr, timeout=2).close()
    except OSError as exc:
        message = f"{name} is not reachable at {addr[0]}:{addr[1]} ({exc})"
        if CI:
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(f"{message}; set CI=true to make this a failure")


# Ports for test servers come from below Linux's ephemeral range (32768-60999), a block per test
# process: a port the kernel handed out was often taken, before the server bound it, by one of
# the thousands of outgoing connections a fleet test opens, or by another test process.
_PORT_BLOCK = 1000
_PORT_BASE = 20000 + _PORT_BLOCK * int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0
)
_next_port = [0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, and no other test process picks."""
    for _ in range(_PORT_BLOCK):
        port = _PORT_BASE + _next_port[0] % _PORT_BLOCK
        _next_port[0] += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_BASE}-{_PORT_BASE + _PORT_BLOCK - 1}")


_TEMPLATE: list[Path] = []


def migrated_sqlite(path: Path) -> str:
    """A SQLite file at `path` holding every migration; its URL.

    The migrations run once per test process, into a template; each later file is a copy.
    """
    from server.db import make_engine, migrate

    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="trolley-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        engine = make_engine(f"sqlite:///{folder / 'migrated.db'}")
        migrate(engine)
        engine.dispose()
        _TEMPLATE.append(folder / "migrated.db")
    # SQLite's own copy: consistent whatever the template's journal holds.
    source, target = sqlite3.connect(_TEMPLATE[0]), sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return f"sqlite:///{path}"


def clear_retained(addr: tuple[str, int], *, wait: float = 2.0, quiet: float = 0.3) -> int:
    """Delete Trolley's retained messages left on a shared broker by earlier runs.

    Every run's devices leave a retained `status`; thousands of them would be replayed to each
    new worker subscription and slow every test that follows.
    """
    import threading
    import time

    from paho.mqtt import client as paho

    topics: set[str] = set()
    subscribed = threading.Event()
    heard = [time.monotonic()]  # when the last message came

    def on_message(_client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        heard[0] = time.monotonic()
        if message.retain:
            topics.add(message.topic)

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"trolley-tests-clean-{time.time_ns()}",
        clean_session=True,
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    try:
        client.connect(*addr)
    except OSError:
        return 0
    client.subscribe([("trolley/v1/dev/+/status", 1), ("trolley/v1/dev/+/desired", 1)])
    client.loop_start()
    deadline = time.monotonic() + wait
    subscribed.wait(wait)
    # The broker sends the retained messages straight after the SUBACK: done once they pause.
    heard[0] = max(heard[0], time.monotonic())
    while time.monotonic() < deadline and time.monotonic() - heard[0] < quiet:
        time.sleep(0.05)
    infos = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
    for info in infos:
        info.wait_for_publish(timeout=5)
    client.loop_stop()
    client.disconnect()
    return len(topics)


# The last second-factor step each person's code was taken from, by whatever names them.
_CODE_STEPS: dict[object, int] = {}


# Seconds a second factor's code must stay acceptable after it is made (see `unused_code`).
CODE_MARGIN = 15


def unused_code(secret: str, who: object) -> str:
    """A code Trolley has not yet seen from `who`: it never takes the same one twice and accepts
    the steps either side of now, so a fourth log-in within 30 seconds waits for the next."""
    import time
    from datetime import UTC, datetime

    import pyotp

    totp = pyotp.TOTP(secret)
    while True:
        moment = datetime.now(UTC)
        now = totp.timecode(moment)
        # The step before now is accepted only until this step ends: on a busy machine the
        # code can reach the server after that, and be refused. Used only with time to spare.
        left = totp.interval - moment.timestamp() % totp.interval
        for step in (now - 1, now, now + 1) if left > CODE_MARGIN else (now, now + 1):
            if step > _CODE_STEPS.get(who, -1):
                _CODE_STEPS[who] = step
                return str(totp.generate_otp(step))
        time.sleep(1)


def lesson_just_ended(here: datetime) -> tuple[time, time]:
    """A lesson that ended a moment before `here` (a school's local time): 40 minutes long, or
    from midnight just after it, as a lesson cannot cross midnight. In the first two seconds of
    a day it waits them out, so that such a lesson has ended by the time it is returned."""
    midnight = here.replace(hour=0, minute=0, second=0, microsecond=0)
    early = midnight + timedelta(seconds=2) - here
    if early > timedelta(0):
        sleep(early.total_seconds())
        here += early
    ends = max(here - timedelta(minutes=1), midnight + timedelta(seconds=1))
    starts = max(here - timedelta(minutes=40), midnight)
    return starts.time(), ends.time()


def in_own_thread(fn: Callable[..., T], *args: Any, timeout: float = 120) -> T:
    """`fn(*args)` on a thread of its own: a test process that has run the browser tests keeps
    Playwright's event loop marked as running on its main thread, where no other event loop (nor
    a second Playwright) can then start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result(timeout=timeout)


class Heard:
    """A callback that counts its calls, for a test to wait on (a `Listener`'s `heard`)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def __call__(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout)
