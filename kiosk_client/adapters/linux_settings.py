"""The Linux kiosk's settings: the browser policy it writes for a document, and, from what it reads
back from the machine, each setting's state for the report.

`settings_report` is pure: the adapter gathers a `ReadBack` (the policy file as it is on disk,
the rfkill switches, the permissions of the capture devices' files, the idle source, the
browser) and this module compares it with the document. Nothing here trusts that a write
worked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kiosk_client.adapters.linux_system import Radio
from kiosk_client.applied import (
    SettingResult,
    enforced,
    failed,
    lacking,
    managed_settings,
    table_says_no,
)

__all__ = [
    "DEVICE_POLICIES",
    "PLATFORM",
    "ReadBack",
    "blocked",
    "browser_policy",
    "closed_files",
    "settings_report",
]

PLATFORM = "linux"
# Device settings Chromium's own policy also carries; a device-wide block wins over a browser
# setting that allows the same thing.
DEVICE_POLICIES: Mapping[str, Mapping[str, Any]] = {
    "camera": {"VideoCaptureAllowed": False},
    "screenshots": {"DisableScreenshots": True, "ScreenCaptureAllowed": False},
}


def blocked(document: Mapping[str, Any], name: str) -> bool:
    """Whether the document blocks a device setting ("camera", "bluetooth_changes", ...)."""
    device = document.get("device")
    return isinstance(device, Mapping) and device.get(name) == "blocked"


def closed_files(document: Mapping[str, Any]) -> dict[str, bool]:
    """Per setting that has device files, whether the document closes them."""
    return {
        "device.camera": blocked(document, "camera"),
        "browser.microphone": browser_policy(document).get("AudioCaptureAllowed") is False,
    }


def browser_policy(document: Mapping[str, Any]) -> dict[str, Any]:
    """Chromium's managed policy for a kiosk document: the profile's, plus the device blocks."""
    linux = document.get("linux")
    policy = linux.get("chrome_policy") if isinstance(linux, Mapping) else None
    result = dict(policy) if isinstance(policy, Mapping) else {}
    for name, extra in DEVICE_POLICIES.items():
        if blocked(document, name):
            result.update(extra)
    return result


@dataclass(frozen=True)
class ReadBack:
    """What the adapter read from the machine just now."""

    policy: Mapping[str, Any] | None  # the managed policy file as on disk; None if unreadable
    policy_problem: str = ""
    radios: Sequence[Radio] = ()
    # Per setting (device.camera, browser.microphone): its device files and their permissions.
    files: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    idle_source: str | None = None  # None: no way to read the session's idle time
    browser_pid: int | None = None
    browser_fresh: bool = True  # started after the policy file was last written
    kiosk_url: str | None = None  # the page the kiosk shows when not locked
    photo_dirs: Sequence[str] = ()
    errors: Mapping[str, str] = field(default_factory=dict)  # the last error enforcing each


def _shown(value: Any) -> Any:
    """A policy value for the evidence: long lists are counted, not copied."""
    if isinstance(value, list) and len(value) > 5:
        return f"{len(value)} entries"
    return value


def _policy_setting(setting: str, document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """A setting Chromium holds: every policy it maps to must read back as the document says."""
    from device_profiles.compilers.chrome import POLICY_KEYS

    wanted = browser_policy(document)
    keys = [key for key in POLICY_KEYS.get(setting, ()) if key in wanted]
    if seen.policy is None:
        return failed(setting, f"the browser policy cannot be read: {seen.policy_problem}")
    evidence = {key: _shown(seen.policy.get(key)) for key in keys}
    wrong = [key for key in keys if seen.policy.get(key) != wanted[key]]
    if wrong:
        return failed(setting, "the browser policy holds something else for " + ", ".join(wrong))
    linux = document.get("linux")
    own = linux.get("chrome_policy") if isinstance(linux, Mapping) else None
    overridden = [k for k in keys if isinstance(own, Mapping) and own.get(k) != wanted[k]]
    if overridden:
        return failed(setting, "a device setting blocks this for the browser too", **evidence)
    if not seen.browser_fresh:
        return failed(setting, "the browser has not restarted since its policy changed")
    return enforced(setting, "in Chromium's managed policy, read back from the file", **evidence)


def _device_policy(setting: str, name: str, seen: ReadBack) -> SettingResult | None:
    """A failure if Chromium's policy does not block device setting `name`; None if it does."""
    if seen.policy is None:
        return failed(setting, f"the browser policy cannot be read: {seen.policy_problem}")
    wanted = DEVICE_POLICIES[name]
    evidence = {key: seen.policy.get(key) for key in wanted}
    if any(seen.policy.get(key) != value for key, value in wanted.items()):
        return failed(setting, f"the browser policy does not block the {name}", **evidence)
    if not seen.browser_fresh:
        return failed(setting, "the browser has not restarted since its policy changed")
    return None


def _camera(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """Camera: Chromium's capture policy, and no access to the camera's device files."""
    setting = "device.camera"
    if not blocked(document, "camera"):
        return enforced(setting, "the camera is not restricted")
    problem = _device_policy(setting, "camera", seen)
    if problem is not None:
        return problem
    open_files = _still_open(setting, seen)
    if open_files is not None:
        return open_files
    files = {path: oct(mode) for path, mode in seen.files.get(setting, {}).items()}
    where = "and its device files closed" if files else "(no camera device files found)"
    return enforced(
        setting, f"blocked in Chromium's policy {where}", VideoCaptureAllowed=False, files=files
    )


def _still_open(setting: str, seen: ReadBack) -> SettingResult | None:
    """A failure naming the setting's device files any program can still open; None if none."""
    files = {path: oct(mode) for path, mode in seen.files.get(setting, {}).items()}
    usable = [path for path, mode in seen.files.get(setting, {}).items() if mode & 0o777]
    if usable:
        return failed(setting, "still usable through " + ", ".join(usable), files=files)
    return None


def _microphone(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """The microphone in web pages: Chromium's policy and, when blocked, its device files."""
    setting = "browser.microphone"
    result = _policy_setting(setting, document, seen)
    if result.state != "enforced" or not closed_files(document)[setting]:
        return result
    open_files = _still_open(setting, seen)
    if open_files is not None:
        return open_files
    files = {path: oct(mode) for path, mode in seen.files.get(setting, {}).items()}
    return replace(result, evidence={**result.evidence, "files": files})


def _screenshots(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """Screenshots and screen capture from the browser."""
    setting = "device.screenshots"
    if not blocked(document, "screenshots"):
        return enforced(setting, "screenshots are not restricted")
    problem = _device_policy(setting, "screenshots", seen)
    if problem is not None:
        return problem
    return enforced(
        setting, "blocked in Chromium's managed policy", **DEVICE_POLICIES["screenshots"]
    )


def _bluetooth(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """Bluetooth off with rfkill, kept off by the adapter's watcher."""
    setting = "device.bluetooth_changes"
    if not blocked(document, "bluetooth_changes"):
        return enforced(setting, "Bluetooth is not restricted")
    if not seen.radios:
        return lacking(setting, "rfkill")
    radios = {radio.name: radio.describe() for radio in seen.radios}
    on = [radio.name for radio in seen.radios if not radio.off]
    if on:
        return failed(setting, "Bluetooth is on: " + ", ".join(on), radios=radios)
    return enforced(setting, "every Bluetooth radio is switched off (rfkill)", radios=radios)


def _auto_lock(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """The kiosk's lock screen after the document's idle minutes."""
    setting = "device.auto_lock_minutes"
    minutes = document.get("auto_lock_minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
        return failed(setting, "the profile gives no idle time to lock after")
    if seen.idle_source is None:
        return lacking(setting, "idle")
    return enforced(
        setting,
        f"the lock screen shows after {minutes} minutes idle",
        minutes=minutes,
        idle_source=seen.idle_source,
    )


def _kiosk_url(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """The browser runs on the kiosk's address (or on a lock screen over it)."""
    setting = "kiosk.url"
    kiosk = document.get("kiosk")
    url = kiosk.get("url") if isinstance(kiosk, Mapping) else None
    if not url:
        return failed(setting, "the document gives no address")
    if seen.kiosk_url != url:
        return failed(setting, "the kiosk shows another page", page=seen.kiosk_url)
    if seen.browser_pid is None:
        return failed(setting, "the browser is not running")
    return enforced(setting, "the browser runs in kiosk mode on the address", page=url)


def _photos(document: Mapping[str, Any], seen: ReadBack) -> SettingResult:
    """Photo folders the kiosk empties when told to wipe."""
    setting = "device.wipe_photos_on_return"
    if not seen.photo_dirs:
        return failed(setting, "no photo folders are configured")
    folders = list(seen.photo_dirs)
    return enforced(setting, "the kiosk empties its photo folders when told", folders=folders)


_OWN = {
    "device.camera": _camera,
    "browser.microphone": _microphone,
    "device.screenshots": _screenshots,
    "device.bluetooth_changes": _bluetooth,
    "device.auto_lock_minutes": _auto_lock,
    "device.wipe_photos_on_return": _photos,
    "kiosk.url": _kiosk_url,
}


def settings_report(document: Mapping[str, Any], seen: ReadBack) -> list[SettingResult]:
    """Every setting the document manages, as the machine shows it now."""
    # Imported here: the profile library loads only once a profile has arrived.
    from device_profiles.compilers.chrome import POLICY_KEYS

    results = []
    for setting in managed_settings(document):
        refused = table_says_no(PLATFORM, setting)
        if refused is not None:
            results.append(refused)
        elif setting in _OWN:
            results.append(_OWN[setting](document, seen))
        elif setting in POLICY_KEYS:
            results.append(_policy_setting(setting, document, seen))
        else:
            results.append(failed(setting, "this kiosk does not know how to check it"))
    return [_with_error(result, seen.errors.get(result.setting)) for result in results]


def _with_error(result: SettingResult, error: str | None) -> SettingResult:
    """A failure with the error the last attempt to enforce it met, when there was one."""
    if error is None or result.state != "failed":
        return result
    return replace(result, detail=f"{result.detail} ({error})")
