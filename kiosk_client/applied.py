"""What the device says about each setting of its profile: enforced, not supported, or failed.

Adapters answer per setting with a `SettingResult` built from what they read back from the
machine, never from what the document asked for. A setting the capability table says the
platform cannot do is `not_supported` with the table's own words, the same words the server's
profile page and the compilers' warnings use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mqtt.messages import SettingState

__all__ = [
    "SettingResult",
    "enforced",
    "failed",
    "lacking",
    "managed_settings",
    "not_supported",
    "table_says_no",
]

_MAX_DETAIL = 500


@dataclass(frozen=True)
class SettingResult:
    """One setting's state on the device, why, and what was read back to know it."""

    setting: str
    state: SettingState
    detail: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The report's entry for this setting."""
        detail = self.detail if len(self.detail) <= _MAX_DETAIL else self.detail[:499] + "…"
        return {
            "setting": self.setting,
            "state": self.state.value,
            "detail": detail,
            "evidence": dict(self.evidence),
        }


def enforced(setting: str, detail: str, **evidence: Any) -> SettingResult:
    """The device enforces the setting; `evidence` is what it read back."""
    return SettingResult(setting, SettingState.ENFORCED, detail, evidence)


def failed(setting: str, error: str, **evidence: Any) -> SettingResult:
    """The device tried and could not, or reads back something else."""
    return SettingResult(setting, SettingState.FAILED, error, evidence)


def not_supported(setting: str, why: str, **evidence: Any) -> SettingResult:
    """The device cannot do this at all."""
    return SettingResult(setting, SettingState.NOT_SUPPORTED, why, evidence)


def lacking(setting: str, need: str, **evidence: Any) -> SettingResult:
    """The platform could, but this machine lacks what it takes (no rfkill radio, no display)."""
    # Imported here: the profile library loads only once a profile has arrived.
    from device_profiles.capabilities import NEEDS

    return not_supported(setting, f"this device has no {NEEDS[need]}", **evidence)


def table_says_no(platform: str, setting: str) -> SettingResult | None:
    """`not_supported` with the capability table's reason, or None when the platform can do it."""
    from device_profiles.capabilities import Support, capability

    entry = capability(platform, setting)
    if entry.support is Support.NO:
        return not_supported(setting, entry.text)
    return None


_DEVICE_KEYS = ("camera", "screenshots", "bluetooth_changes", "wipe_photos_on_return")


def managed_settings(document: Mapping[str, Any]) -> tuple[str, ...]:
    """Every setting the kiosk document manages, from its `settings` list.

    A document from an older server has no list: then only what its own keys carry.
    """
    listed = document.get("settings")
    if isinstance(listed, Sequence) and not isinstance(listed, str):
        return tuple(dict.fromkeys(s for s in listed if isinstance(s, str)))
    device = document.get("device")
    found = ["device.auto_lock_minutes"] if document.get("auto_lock_minutes") else []
    if isinstance(device, Mapping):
        found += [f"device.{key}" for key in _DEVICE_KEYS if device.get(key) is not None]
    kiosk = document.get("kiosk")
    if isinstance(kiosk, Mapping) and kiosk.get("url"):
        found.append("kiosk.url")
    return tuple(found)
