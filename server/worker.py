"""The worker: runs the device channel and the scheduled jobs until it is told to stop.

`trolley worker` runs the channel's two sides in two processes: this one publishes commands
and desired state and runs the jobs; a child it starts and watches records what devices answer.
Each then has an interpreter to itself: in one process the two sides took turns at one
interpreter lock, and a fleet-wide command took half as long again (see the README's
server-cost benchmark).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from server import settle_process
from server.channel_roles import Role
from server.config import Settings
from server.crypto import SecretBox
from server.db import Database
from server.device_channel import RETRY_PAUSE, DeviceChannel, broker_url_for_worker
from server.jobs import Scheduler

log = logging.getLogger(__name__)

# A recording process that exits on its own is started again after this pause (and logged).
RESTART_PAUSE = 5.0


class RecordingProcess:
    """The child process that records acks, reports and presence for a publishing worker."""

    def __init__(self, *, client_id: str, shared: bool) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "server",
            "worker",
            "--role",
            Role.RECORD.value,
            "--client-id",
            client_id,
            "--parent",
            str(os.getpid()),
            *(["--shared"] if shared else []),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv)
        self.started = time.monotonic()

    def check(self) -> None:
        """Start it again if it has stopped (not more often than every RESTART_PAUSE)."""
        if self.process is None or self.process.poll() is None:
            return
        if time.monotonic() - self.started < RESTART_PAUSE:
            return
        log.error(
            "the recording process stopped (exit code %s); starting it again",
            self.process.returncode,
        )
        self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log.error("the recording process did not stop within 15 s; killing it")
            self.process.kill()
            self.process.wait()


def run_forever(
    database: Database,
    settings: Settings,
    *,
    tick: float = 5.0,
    client_id: str = "trolley-worker-1",
    shared: bool = False,
    role: Role | None = None,
    parent: int | None = None,
    with_broker: bool = True,
) -> None:
    """The `trolley worker` loop: publish, record, run jobs; stop cleanly on SIGTERM or SIGINT.

    With no `role`, the recording side runs in a child process under the client id and this
    process publishes; `role` runs one side, or both, here alone. Publishing alone always
    connects as `<client id>-publish`, so the two sides of one worker share a `--client-id`.
    A process given its `parent` stops when that process has gone.
    """
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker stopping (signal %s)", signum)
        stop.set()
        if channel is not None:
            channel.wake()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    channel: DeviceChannel | None = None
    recording: RecordingProcess | None = None
    if with_broker and role is None:
        # The recording side keeps the client id, and with it the broker's session and queue.
        recording = RecordingProcess(client_id=client_id, shared=shared)
        recording.start()
        role = Role.PUBLISH
    role = role or Role.BOTH
    if role is Role.PUBLISH:
        client_id = f"{client_id}-publish"  # its own session: the recording side keeps the id
    if with_broker:
        channel = DeviceChannel(
            database,
            settings,
            SecretBox(settings.data_keys),
            broker_url=broker_url_for_worker(settings),
            client_id=client_id,
            shared=shared,
            role=role,
        )
        channel.start()
    # Scheduled jobs run once per worker: in the publishing process, never in its recorder.
    scheduler = Scheduler(database, settings) if role is not Role.RECORD else None
    if scheduler is not None:
        log.info("worker started with jobs: %s", ", ".join(sorted(scheduler.jobs)) or "none")
    # What start-up built (modules, mappers, the app's settings) lives as long as the process:
    # frozen, it is left out of full collections, which otherwise paused each process for a
    # tenth of a second, mid-round, a couple of times a fleet-wide command.
    settle_process()
    try:
        serve(stop, channel, scheduler, role=role, tick=tick, parent=parent, recording=recording)
    finally:
        if channel is not None:
            channel.stop()
        if recording is not None:
            recording.stop()


def serve(
    stop: threading.Event,
    channel: DeviceChannel | None,
    scheduler: Scheduler | None,
    *,
    role: Role,
    tick: float,
    parent: int | None = None,
    recording: RecordingProcess | None = None,
) -> None:
    """Pump the channel when woken or when its next look is due, and run due jobs, until `stop`."""
    next_jobs = 0.0
    next_look = 0.0  # when the channel's side next looks for work unless woken sooner
    woken = True
    while not stop.is_set():
        if parent is not None and os.getppid() != parent:
            log.warning("the worker that started this process has gone; stopping")
            return
        if recording is not None:
            recording.check()
        if channel is not None and (woken or time.monotonic() >= next_look):
            if not channel.pump():
                stop.wait(RETRY_PAUSE)
            # Only the publishing side looks for queued commands between wake-ups.
            every = channel.poll_seconds() if role.publishes else 0.5
            next_look = time.monotonic() + every
        if scheduler is not None and time.monotonic() >= next_jobs:
            if scheduler.run_due() and channel is not None:
                channel.wake()  # a job may have queued commands (a resend): look at once
            next_jobs = time.monotonic() + tick
        if channel is not None:
            until = next_look if scheduler is None else min(next_look, next_jobs)
            woken = channel.wait_for_work(max(0.0, until - time.monotonic()))
        else:
            stop.wait(tick)
