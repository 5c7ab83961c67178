"""The worker process: runs the device channel and the scheduled jobs until it is told to stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from server.config import Settings
from server.crypto import SecretBox
from server.db import Database
from server.device_channel import RETRY_PAUSE, DeviceChannel, broker_url_for_worker
from server.jobs import Scheduler

log = logging.getLogger(__name__)


def run_forever(
    database: Database,
    settings: Settings,
    *,
    tick: float = 5.0,
    client_id: str = "trolley-worker-1",
    shared: bool = False,
    with_broker: bool = True,
) -> None:
    """The `trolley worker` loop: publish, consume, run jobs; stop cleanly on SIGTERM or SIGINT."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker stopping (signal %s)", signum)
        stop.set()
        if channel is not None:
            channel.wake()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    channel: DeviceChannel | None = None
    if with_broker:
        channel = DeviceChannel(
            database,
            settings,
            SecretBox(settings.data_keys),
            broker_url=broker_url_for_worker(settings),
            client_id=client_id,
            shared=shared,
        )
        channel.start()
    scheduler = Scheduler(database, settings)
    log.info("worker started with jobs: %s", ", ".join(sorted(scheduler.jobs)) or "none")
    next_jobs = 0.0
    try:
        while not stop.is_set():
            if channel is not None and not channel.pump():
                stop.wait(RETRY_PAUSE)
            if time.monotonic() >= next_jobs:
                scheduler.run_due()
                next_jobs = time.monotonic() + tick
            if channel is not None:
                channel.wait_for_work(settings.outbox_poll_seconds)
            else:
                stop.wait(tick)
    finally:
        if channel is not None:
            channel.stop()
