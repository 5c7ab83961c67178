"""Command line for Chromebooks: the demo's stand-in for Google (started by `trolley demo`)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import click

log = logging.getLogger(__name__)


@click.command("google-stand-in", hidden=True)
@click.option("--port", type=int, required=True)
@click.option("--domain", "seed", type=click.Path(exists=True, path_type=Path), required=True)
def google_stand_in(port: int, seed: Path) -> None:
    """Serve the demo's Google domain on 127.0.0.1 until stopped."""
    from server.chromebooks.demo import stand_in_from

    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stand_in = stand_in_from(seed, port)
    stand_in.up()
    click.echo(f"  Google stand-in on {stand_in.root} ({len(stand_in.devices)} Chromebooks)")
    reported = 0
    while not stop.wait(1.0):
        # Whatever Google itself would have rejected is worth a line in the demo's log.
        for violation in stand_in.violations[reported:]:
            log.warning("a request Google would reject: %s", violation)
        reported = len(stand_in.violations)
    stand_in.down()


commands = [google_stand_in]
