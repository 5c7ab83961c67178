"""The simulated platform: a directory is the device.

    <root>/DCIM/          photo files (anything in here counts as a photo)
    <root>/state.json     lock, lost mode, applied profile, battery, storage, apps, passcode
                          and encryption, and a history of the operations run (tests use it
                          to prove "run once")

A simulated device has every facility a kiosk can need: a setting is enforced when the profile
it holds is the one asked about, and not supported where the capability table says so.

Used by the tests, the demo and the fleet simulator; cheap enough to run thousands per process.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiosk_client.adapters.base import Inventory, WipeResult, count_files, delete_files
from kiosk_client.applied import (
    SettingResult,
    enforced,
    failed,
    managed_settings,
    table_says_no,
)
from kiosk_client.errors import AdapterError
from kiosk_client.files import atomic_write_json, read_json

__all__ = ["DEVICE_FORMAT", "SimulatedAdapter", "create_simulated_device"]

logger = logging.getLogger(__name__)

DEVICE_FORMAT = "trolley-simulated-device/1"
STATE_FILE = "state.json"
PHOTO_DIR = "DCIM"
HISTORY_LIMIT = 100
_GB = 1_000_000_000
DEFAULT_APPS = ("org.trolley.kiosk", "org.chromium.Chromium")


def _factory_state(serial: str) -> dict[str, Any]:
    """The state of a device fresh from the box."""
    return {
        "format": DEVICE_FORMAT,
        "serial": serial,
        "model": "Trolley simulated kiosk",
        "os": "TrolleyOS",
        "os_version": "1.0",
        "battery_percent": 87,
        "charging": False,
        "storage_total_bytes": 32 * _GB,
        "storage_system_bytes": 6 * _GB,
        "apps": list(DEFAULT_APPS),
        "locked": False,
        "lock_message": "",
        "lost_mode": False,
        "lost_message": "",
        "profile": None,
        "profile_version": None,
        # What a real device would read from its system; a test may set either to false or null.
        "passcode": True,
        "storage_encrypted": True,
        # The network a real device would read ({"ssid", "gateway"}); a test may move it.
        "network": {},
        "history": [],
    }


def _flag(value: object) -> bool | None:
    """A yes/no the state file holds; anything else is not known."""
    return value if isinstance(value, bool) else None


def create_simulated_device(
    root: Path, *, photos: int = 5, serial: str | None = None, fsync: bool = True
) -> None:
    """Make `root` a factory-fresh simulated device with `photos` sample photos (if not one yet)."""
    state_path = root / STATE_FILE
    if state_path.exists():
        return
    dcim = root / PHOTO_DIR
    dcim.mkdir(parents=True, exist_ok=True)
    for number in range(1, photos + 1):
        # Small stand-ins for camera files; a JPEG header keeps file-type sniffers honest.
        (dcim / f"IMG_{number:04d}.JPG").write_bytes(b"\xff\xd8\xff\xe0" + bytes(60))
    serial = serial or f"SIM-{secrets.token_hex(4).upper()}"
    atomic_write_json(state_path, _factory_state(serial), mode=0o644, fsync=fsync)


class SimulatedAdapter:
    """`PlatformAdapter` over a device directory; `operation_delay` makes operations slow."""

    name = "simulated"

    def __init__(self, root: Path, *, operation_delay: float = 0.0, fsync: bool = True) -> None:
        """Use the device at `root` (created factory-fresh if missing)."""
        self.root = root
        self.operation_delay = operation_delay
        self.fsync = fsync

    @property
    def photo_dir(self) -> Path:
        """Where the device keeps its photos."""
        return self.root / PHOTO_DIR

    # --- state file ---------------------------------------------------------------------------

    def read_state(self) -> dict[str, Any]:
        """The device's state file."""
        try:
            data = read_json(self.root / STATE_FILE)
        except (OSError, ValueError) as exc:
            raise AdapterError(
                f"simulated device {self.root} has no readable state: {exc}"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != DEVICE_FORMAT:
            raise AdapterError(f"simulated device {self.root} state is not {DEVICE_FORMAT}")
        return data

    def _write_state(self, state: Mapping[str, Any]) -> None:
        """Replace the device's state file atomically."""
        atomic_write_json(self.root / STATE_FILE, dict(state), mode=0o644, fsync=self.fsync)

    def _operation(self, op: str, **details: Any) -> dict[str, Any]:
        """Record that an operation starts (before its effects), then wait the simulated time."""
        state = self.read_state()
        history = list(state.get("history", []))
        history.append({"op": op, "at": int(time.time()), **details})
        state["history"] = history[-HISTORY_LIMIT:]
        self._write_state(state)
        if self.operation_delay:
            time.sleep(self.operation_delay)
        return state

    # --- PlatformAdapter ----------------------------------------------------------------------

    def start(self) -> None:
        """Make sure the device exists."""
        if not (self.root / STATE_FILE).exists():
            create_simulated_device(self.root, fsync=self.fsync)

    def stop(self) -> None:
        """Nothing runs in the background."""

    def inventory(self) -> Inventory:
        """The state file plus a count of the photos on disk."""
        state = self.read_state()
        photo_bytes = 0
        photos = 0
        if self.photo_dir.exists():
            for path in self.photo_dir.rglob("*"):
                if path.is_file():
                    photos += 1
                    photo_bytes += path.stat().st_size
        total = int(state.get("storage_total_bytes", 32 * _GB))
        used = int(state.get("storage_system_bytes", 0)) + photo_bytes
        return Inventory(
            os=state.get("os"),
            os_version=state.get("os_version"),
            model=state.get("model"),
            serial=state.get("serial"),
            storage_total_bytes=total,
            storage_free_bytes=max(total - used, 0),
            battery_percent=state.get("battery_percent"),
            charging=state.get("charging"),
            photo_count=photos,
            apps=tuple(state.get("apps", ())),
            lost_mode=bool(state.get("lost_mode")),
            locked=bool(state.get("locked")),
            passcode=_flag(state.get("passcode")),
            storage_encrypted=_flag(state.get("storage_encrypted")),
            security_detail={
                "passcode": "the simulated device's state",
                "storage_encrypted": "the simulated device's state",
            },
            network={
                key: value
                for key, value in (state.get("network") or {}).items()
                if key in ("ssid", "gateway") and isinstance(value, str)
            },
        )

    def settings_report(self, document: Mapping[str, Any]) -> list[SettingResult]:
        """Each setting of `document`: enforced if the device holds that document."""
        held = self.read_state().get("profile")
        sha = held.get("sha256") if isinstance(held, dict) else None
        results = []
        for setting in managed_settings(document):
            refused = table_says_no(self.name, setting)
            if refused is not None:
                results.append(refused)
            elif sha != document.get("sha256"):
                results.append(failed(setting, "the device holds another profile", held=sha))
            else:
                results.append(enforced(setting, "simulated", held=sha))
        return results

    def photo_count(self) -> int:
        """Files in DCIM."""
        return count_files([self.photo_dir])

    def wipe_photos(self) -> WipeResult:
        """Delete everything in DCIM."""
        self._operation("wipe_photos")
        return delete_files([self.photo_dir])

    def apply_profile(self, document: Mapping[str, Any], version: int) -> Mapping[str, Any]:
        """Store the document as the device's applied profile and read it back."""
        state = self._operation("apply_profile", version=version)
        state["profile"] = dict(document)
        state["profile_version"] = version
        self._write_state(state)
        applied = self.read_state().get("profile")
        if not isinstance(applied, dict):
            raise AdapterError("the simulated device did not keep the profile")
        return applied

    def applied_profile(self) -> Mapping[str, Any] | None:
        """The profile document the device holds, if any."""
        profile = self.read_state().get("profile")
        return profile if isinstance(profile, dict) else None

    def set_lost_mode(self, enabled: bool, message: str) -> None:
        """Show the return message and lock, or clear lost mode and any lock."""
        state = self._operation("lost_mode", enabled=enabled)
        state["lost_mode"] = enabled
        state["lost_message"] = message if enabled else ""
        state["locked"] = enabled
        state["lock_message"] = message if enabled else ""
        self._write_state(state)

    def lock(self, message: str) -> None:
        """Lock with a message."""
        state = self._operation("lock")
        state["locked"] = True
        state["lock_message"] = message
        self._write_state(state)

    def factory_reset(self) -> None:
        """Delete the photos and return the state to factory settings (the serial survives)."""
        state = self._operation("factory_reset")
        result = delete_files([self.photo_dir])
        if result.remaining:
            raise AdapterError(f"factory reset left {result.remaining} file(s) in {self.photo_dir}")
        fresh = _factory_state(str(state.get("serial", "")))
        fresh["history"] = state.get("history", [])
        self._write_state(fresh)
        logger.info("simulated device %s reset to factory settings", self.root)
