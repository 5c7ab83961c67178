"""Enrolling a simulated fleet: one sub-directory per device, each enrolled over HTTP exactly as
a real kiosk enrols (the codes come from a file, one per line)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from kiosk_client.config import CONFIG_NAME, Platform
from kiosk_client.enrol import DEFAULT_SAMPLE_PHOTOS, enrol
from kiosk_client.errors import KioskError

__all__ = ["DEVICE_DIR_PREFIX", "enrol_fleet", "enrolled_device_dirs", "read_payload_file"]

logger = logging.getLogger(__name__)

DEVICE_DIR_PREFIX = "sim-"
USED_CODES_NAME = ".enrolled-codes"


def read_payload_file(path: str | os.PathLike[str]) -> list[str]:
    """Enrolment codes from a file: one per line; blank lines and `#` comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def enrolled_device_dirs(data_dir: str | os.PathLike[str]) -> list[Path]:
    """The fleet's enrolled sub-directories, in name order."""
    base = Path(data_dir)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / CONFIG_NAME).is_file())


# A fleet's enrolments queue at one server, each behind those before it (the server hashes a
# broker password for each): on a busy 2-core machine one of 84 waited past a kiosk's 10 s, and
# a code cannot be tried again once the server has taken it.
FLEET_HTTP_TIMEOUT = 60.0


def _code_hash(code: str) -> str:
    """What the fleet remembers of a used code (never the token itself)."""
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


def enrol_fleet(
    payloads: Iterable[str],
    data_dir: str | os.PathLike[str],
    *,
    server_url: str | None = None,
    sample_photos: int = DEFAULT_SAMPLE_PHOTOS,
    concurrency: int = 8,
    skip_used: bool = False,
    on_enrolled: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Enrol one simulated device per code into `data_dir/sim-NNNNN/`; return their paths.

    Devices are numbered after those already there, so a second file adds to the fleet. With
    `skip_used`, codes this fleet enrolled before are skipped (tokens are one-time), so the
    same file can be given again. `on_enrolled` is told of each device as soon as it is
    enrolled (from a pool thread). The first failure is raised once every enrolment finished.
    """
    base = Path(data_dir).expanduser().absolute()
    base.mkdir(parents=True, exist_ok=True)
    used_file = base / USED_CODES_NAME
    used = set(used_file.read_text(encoding="ascii").split()) if used_file.exists() else set()
    codes = [code for code in payloads if not (skip_used and _code_hash(code) in used)]
    existing = [
        p.name[len(DEVICE_DIR_PREFIX) :]
        for p in base.iterdir()
        if p.name.startswith(DEVICE_DIR_PREFIX)
    ]
    start_index = max((int(n) for n in existing if n.isdigit()), default=0) + 1
    targets = [
        (base / f"{DEVICE_DIR_PREFIX}{start_index + offset:05d}", code)
        for offset, code in enumerate(codes)
    ]
    lock = threading.Lock()

    def one(target: Path, code: str) -> Path:
        """Enrol one device and remember its code as used."""
        enrol(
            code,
            platform=Platform.SIMULATED,
            data_dir=target,
            server_url=server_url,
            sample_photos=sample_photos,
            fsync=False,
            http_timeout=FLEET_HTTP_TIMEOUT,
        )
        with lock, used_file.open("a", encoding="ascii") as handle:
            handle.write(_code_hash(code) + "\n")
        if on_enrolled is not None:
            on_enrolled(target)
        return target

    done: list[Path] = []
    errors: list[BaseException] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        futures = [pool.submit(one, target, code) for target, code in targets]
        for future in futures:
            try:
                done.append(future.result())
            except KioskError as exc:
                errors.append(exc)
    if errors:
        logger.error(
            "%d of %d enrolment(s) failed; first: %s", len(errors), len(targets), errors[0]
        )
        raise errors[0]
    return done
