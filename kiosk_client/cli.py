"""`trolley-kiosk`: enrol a device, run the agent, or simulate a fleet.

    trolley-kiosk enrol PAYLOAD --platform simulated|linux --data-dir DIR [--server-url URL]
    trolley-kiosk run --data-dir DIR
    trolley-kiosk simulate --data-dir DIR [--count N] [--enrol-file FILE]

PAYLOAD is the `trolley-enrol:1:...` text from the device's QR code, or `-` to read it from
standard input (keeps the one-time token out of the process list).

Exit codes:
    0  success (also after a confirmed factory reset: the device must be enrolled again)
    1  unexpected internal error
    2  usage: bad arguments or an invalid enrolment code
    3  enrolment refused by the server (token used or expired, CA mismatch)
    4  server unreachable, or it answered with an error or outside the contract
    5  bad or missing configuration, keys or state (not enrolled)
    6  the data directory is already enrolled (use --force to replace its identity)
    7  the platform adapter failed to start
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kiosk_client.agent import Agent
from kiosk_client.config import (
    DEFAULT_IO_THREADS,
    DEFAULT_REPORT_INTERVAL,
    DEFAULT_WORKERS,
    LinuxSettings,
    Platform,
    load_config,
)
from kiosk_client.enrol import DEFAULT_SAMPLE_PHOTOS, enrol
from kiosk_client.errors import KioskError, UsageError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("kiosk_client")

ENV_LOG_LEVEL = "TROLLEY_KIOSK_LOG_LEVEL"
READY_TIMEOUT = 120.0
EXIT_CODES = __doc__.split("Exit codes:", 1)[1] if __doc__ else ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exit code 2 for usage errors, as argparse does)."""
    parser = argparse.ArgumentParser(
        prog="trolley-kiosk",
        description="The Trolley device agent: enrol, run, simulate.",
        epilog="exit codes:" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help=f"DEBUG, INFO, WARNING, ERROR (default INFO; ${ENV_LOG_LEVEL})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("enrol", help="enrol this device with a one-time enrolment code")
    p.add_argument("payload", help="the trolley-enrol:1:... code, or - to read it from stdin")
    p.add_argument("--platform", required=True, choices=[p.value for p in Platform])
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--server-url", help="use this server address instead of the code's")
    p.add_argument("--force", action="store_true", help="replace an existing enrolment")
    p.add_argument("--ca-file", type=Path, help="CA bundle for the server's HTTPS certificate")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")
    p.add_argument(
        "--report-interval",
        type=int,
        default=DEFAULT_REPORT_INTERVAL,
        help="seconds between inventory reports (0: only on connect)",
    )
    p.add_argument(
        "--photos",
        type=int,
        default=DEFAULT_SAMPLE_PHOTOS,
        help="simulated: sample photos on the new device",
    )
    p.add_argument("--browser-command", help="linux: browser command line (URL is appended)")
    p.add_argument("--start-url", help="linux: page shown when no profile names one")
    p.add_argument("--policy-file", type=Path, help="linux: managed policy JSON to write")
    p.add_argument(
        "--photo-dir", type=Path, action="append", help="linux: a photo folder to wipe (repeatable)"
    )
    p.set_defaults(handler=_enrol)

    p = commands.add_parser("run", help="run the agent for an enrolled data directory")
    p.add_argument("--data-dir", required=True, type=Path)
    p.set_defaults(handler=_run)

    p = commands.add_parser("simulate", help="run many simulated devices in this process")
    p.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        help="fleet directory: one enrolled sub-directory per device",
    )
    p.add_argument("--count", type=int, help="how many devices to run (default: all enrolled)")
    p.add_argument(
        "--enrol-file",
        type=Path,
        help="enrol one device per code in this file (codes already used are skipped)",
    )
    p.add_argument("--server-url", help="enrol against this server address instead of the codes'")
    p.add_argument("--photos", type=int, default=DEFAULT_SAMPLE_PHOTOS)
    p.add_argument("--io-threads", type=int, default=DEFAULT_IO_THREADS)
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    p.add_argument("--report-interval", type=int, help="override every device's interval")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(handler=_simulate)
    return parser


def _configure_logging(level: str | None, default: str) -> None:
    """Log to stderr at the chosen level."""
    name = (level or os.environ.get(ENV_LOG_LEVEL) or default).upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        raise UsageError(f"unknown log level {name!r}")
    logging.basicConfig(
        level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _read_payload(text: str) -> str:
    """The enrolment code, from stdin when given as `-`."""
    return sys.stdin.readline().strip() if text == "-" else text


def _enrol(args: argparse.Namespace) -> int:
    """`trolley-kiosk enrol`."""
    linux: LinuxSettings | None = None
    if args.platform == Platform.LINUX.value:
        defaults = LinuxSettings(screens_dir=args.data_dir.expanduser().absolute() / "screens")
        linux = LinuxSettings(
            browser_command=tuple(shlex.split(args.browser_command))
            if args.browser_command
            else defaults.browser_command,
            start_url=args.start_url or defaults.start_url,
            policy_file=args.policy_file.absolute() if args.policy_file else defaults.policy_file,
            photo_dirs=tuple(p.expanduser().absolute() for p in args.photo_dir)
            if args.photo_dir
            else defaults.photo_dirs,
            screens_dir=defaults.screens_dir,
        )
        if not linux.browser_command:
            raise UsageError("--browser-command is empty")
    config = enrol(
        _read_payload(args.payload),
        platform=args.platform,
        data_dir=args.data_dir,
        server_url=args.server_url,
        force=args.force,
        http_ca_file=args.ca_file,
        http_timeout=args.timeout,
        linux=linux,
        sample_photos=args.photos,
        report_interval=args.report_interval,
    )
    print(
        f"enrolled {config.asset_tag} as {config.device_id} ({config.school}); "
        f"start it with: trolley-kiosk run --data-dir {config.data_dir}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    """`trolley-kiosk run`."""
    config = load_config(args.data_dir)
    agent = Agent(config)
    code = agent.run()
    if agent.forgotten:
        print("factory reset complete: this device must be enrolled again")
    return code


def _simulate(args: argparse.Namespace) -> int:
    """`trolley-kiosk simulate`."""
    # Imported here: `trolley-kiosk run` on a real kiosk never needs the fleet simulator.
    from kiosk_client.simulator import (
        FleetSimulator,
        enrol_fleet,
        enrolled_device_dirs,
        read_payload_file,
    )

    if args.count is not None and args.count < 0:
        raise UsageError("--count must not be negative")
    codes: list[str] = []
    if args.enrol_file is not None:
        try:
            codes = read_payload_file(args.enrol_file)
        except OSError as exc:
            raise UsageError(f"cannot read {args.enrol_file}: {exc}") from exc
    already = len(enrolled_device_dirs(args.data_dir))
    if not already and not codes:
        raise UsageError(f"{args.data_dir} holds no enrolled devices; use --enrol-file")
    wanted = args.count
    # Devices still to enrol join one by one below, so a slow enrolment holds up nobody.
    fleet = FleetSimulator(
        args.data_dir,
        count=wanted if wanted is None or not codes else min(wanted, already),
        io_threads=args.io_threads,
        workers=args.workers,
        report_interval=args.report_interval,
    )
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        """Ask the fleet to stop."""
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    fleet.start()
    started = time.monotonic()
    if codes:
        joining = threading.Lock()

        def join(path: Path) -> None:
            """A newly enrolled device joins the running fleet (up to --count)."""
            with joining:
                if wanted is None or len(fleet.devices) < wanted:
                    fleet.add(path)

        try:
            enrolled = enrol_fleet(
                codes,
                args.data_dir,
                server_url=args.server_url,
                sample_photos=args.photos,
                skip_used=True,
                on_enrolled=join,
            )
        except BaseException:
            fleet.stop()
            raise
        print(f"enrolled {len(enrolled)} new device(s)", flush=True)
        if wanted is not None and len(fleet.devices) < wanted:
            fleet.stop()
            raise UsageError(
                f"{args.data_dir} holds {len(fleet.devices)} enrolled device(s), {wanted} "
                "asked for; enrol more with --enrol-file"
            )
    while not stop.is_set() and not fleet.wait_connected(timeout=0.2):
        if time.monotonic() - started > READY_TIMEOUT:
            print(
                f"only {fleet.connected_count} of {fleet.active_count} device(s) connected "
                "so far; still trying",
                flush=True,
            )
            break
    else:
        if not stop.is_set():
            print(
                f"ready: {fleet.connected_count} device(s) connected in "
                f"{time.monotonic() - started:.1f}s",
                flush=True,
            )
    stop.wait()
    fleet.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trolley-kiosk` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging(args.log_level, "WARNING" if args.command == "simulate" else "INFO")
        code: int = args.handler(args)
    except KioskError as exc:
        print(f"trolley-kiosk: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
