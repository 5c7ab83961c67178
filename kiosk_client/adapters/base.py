"""The one interface every platform adapter implements, and the values it returns."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kiosk_client.applied import SettingResult

__all__ = [
    "MAX_WIPE_ERRORS",
    "Inventory",
    "PlatformAdapter",
    "WipeResult",
    "count_files",
    "delete_files",
]

# A wipe reports the first few failures; the count of what remains is always exact.
MAX_WIPE_ERRORS = 10


@dataclass(frozen=True)
class WipeResult:
    """What a photo wipe did: files deleted, files still there, and why they are."""

    deleted: int
    remaining: int
    errors: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Only a wipe that leaves nothing behind counts as done (P-PHOTO-1)."""
        return self.remaining == 0 and not self.errors


@dataclass(frozen=True)
class Inventory:
    """What the device reports about itself (the optional fields of `mqtt.messages.Report`)."""

    os: str | None = None
    os_version: str | None = None
    model: str | None = None
    serial: str | None = None
    storage_total_bytes: int | None = None
    storage_free_bytes: int | None = None
    battery_percent: int | None = None
    charging: bool | None = None
    photo_count: int | None = None
    apps: tuple[str, ...] = ()
    lost_mode: bool = False
    locked: bool = False
    # Whether unlocking needs a passcode and the storage is encrypted; None: cannot tell.
    passcode: bool | None = None
    storage_encrypted: bool | None = None
    security_detail: Mapping[str, str] = field(default_factory=dict)  # how each was read
    network: Mapping[str, str] = field(default_factory=dict)  # {"ssid", "gateway"} when known
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class PlatformAdapter(Protocol):
    """What the agent needs from a platform; every method may raise `AdapterError`."""

    name: str

    def start(self) -> None:
        """Bring the device to its managed state (for Linux: start the supervised browser)."""

    def stop(self) -> None:
        """Release what `start` took (processes, threads); the device keeps its state."""

    def inventory(self) -> Inventory:
        """The device's current inventory."""

    def wipe_photos(self) -> WipeResult:
        """Delete every file in the photo folders and count what is left."""

    def apply_profile(self, document: Mapping[str, Any], version: int) -> Mapping[str, Any]:
        """Enforce a kiosk document; return the document read back from the device."""

    def settings_report(self, document: Mapping[str, Any]) -> list[SettingResult]:
        """Every setting `document` manages, as read back from the device now."""

    def set_lost_mode(self, enabled: bool, message: str) -> None:
        """Show `message` and lock until cleared (enabled), or clear lost mode and any lock."""

    def lock(self, message: str) -> None:
        """Lock the screen, showing `message` (cleared by lost mode off)."""

    def factory_reset(self) -> None:
        """Erase the device's data and managed settings, back to how it left the factory."""


def _walk_files(root: Path, errors: list[str]) -> Iterable[Path]:
    """Every non-directory entry below `root`; unreadable folders are noted in `errors`."""

    def on_error(exc: OSError) -> None:
        """Note an unreadable folder (a wipe cannot vouch for what it holds)."""
        if len(errors) < MAX_WIPE_ERRORS:
            errors.append(f"cannot read {exc.filename}: {exc.strerror}")

    for folder, _dirs, names in os.walk(root, onerror=on_error):
        for name in names:
            yield Path(folder) / name


def count_files(roots: Iterable[Path]) -> int:
    """How many files (photos, videos, anything) are in the folders, recursively."""
    errors: list[str] = []
    return sum(1 for root in roots if root.exists() for _ in _walk_files(root, errors))


def delete_files(roots: Iterable[Path]) -> WipeResult:
    """Delete every file below `roots` (folders stay), then count again what is really left.

    The count after the attempt is taken from the disk, not from the attempt's bookkeeping, so a
    file that could not be deleted, or appeared meanwhile, is always reported as remaining.
    """
    roots = [Path(root) for root in roots]
    deleted = 0
    errors: list[str] = []
    for root in roots:
        if not root.exists():
            continue
        for path in list(_walk_files(root, errors)):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if len(errors) < MAX_WIPE_ERRORS:
                    errors.append(f"cannot delete {path}: {exc.strerror}")
                continue
            deleted += 1
    walk_errors: list[str] = []
    remaining = sum(1 for root in roots if root.exists() for _ in _walk_files(root, walk_errors))
    for message in walk_errors:
        if message not in errors and len(errors) < MAX_WIPE_ERRORS:
            errors.append(message)
    return WipeResult(deleted=deleted, remaining=remaining, errors=tuple(errors))
