"""What the import's steps share: the register's devices as loaded once, and progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from server.devices.models import Device, DeviceStatus, Platform

PROGRESS_EVERY = 1_000
CHUNK = 500  # rows per statement when writing or looking up in bulk

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total); stages are "checking" and "importing"."""


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class _Known:
    """A device as the register holds it now, loaded once for the whole file."""

    id: int
    asset_tag: str
    serial: str
    platform: Platform
    make: str
    model: str
    os_version: str | None
    status: DeviceStatus
    home_location_id: int | None
    home_slot: int | None
    purchase_date: date | None
    purchase_cost_pence: int | None
    supplier: str | None
    warranty_until: date | None
    notes: str | None


_KNOWN_COLUMNS = [getattr(Device, f) for f in _Known.__dataclass_fields__]


def _notify(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None and (done == total or done % PROGRESS_EVERY == 0):
        progress(stage, done, total)
