"""A real Linux kiosk: Chromium in `--kiosk` mode, supervised; managed policy JSON; photo folders.

* The browser command (configurable; tests use a harmless stand-in such as `sleep`) is started
  with the page to show appended as its last argument, in its own process group, and restarted
  with a growing delay whenever it exits. Changing the page (kiosk address, lock screen, lost-mode
  screen) restarts it at once.
* A profile's `linux.chrome_policy` is written as managed policy JSON to `policy_file` (default
  `/etc/chromium/policies/managed/trolley.json`; Chrome uses `/etc/opt/chrome/...`). The file is
  written atomically and read back to check it. Chromium reads it at start, so the browser is
  restarted after a change.
* Lost mode and lock show a local HTML page with the message; lost mode off clears both.
* Photos are the files in `photo_dirs`.
* What Chromium cannot hold the adapter enforces itself, and a watcher thread keeps it so: the
  lock screen after the profile's idle minutes (idle time from the X session or logind), every
  Bluetooth radio soft-blocked with rfkill, the camera's (and, when the microphone is blocked,
  the microphone's) device files closed. Screenshots and the camera are also blocked in
  Chromium's policy (`linux_settings.browser_policy`).
* `settings_report` reads all of that back for the report: a setting is `enforced` only when
  the machine shows it, `not_supported` where the machine lacks the facility.

The adapter's own state (lock, lost mode, applied profile) is `linux-state.json` in the data dir.
"""

from __future__ import annotations

import html
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kiosk_client.adapters.base import Inventory, WipeResult, count_files, delete_files
from kiosk_client.adapters.linux_settings import (
    ReadBack,
    blocked,
    browser_policy,
    closed_files,
    settings_report,
)
from kiosk_client.adapters.linux_system import (
    IdleSource,
    NetworkFacts,
    Rfkill,
    StorageEncryption,
    device_files,
    make_idle_source,
)
from kiosk_client.applied import SettingResult
from kiosk_client.config import LinuxSettings
from kiosk_client.errors import AdapterError
from kiosk_client.files import atomic_write, atomic_write_json, read_json, remove_quietly

__all__ = ["BrowserSupervisor", "LinuxAdapter", "render_screen"]

logger = logging.getLogger(__name__)

STATE_NAME = "linux-state.json"
# A browser that ran this long before exiting is restarted promptly, not after a long backoff.
HEALTHY_RUN_SECONDS = 30.0
_STOP_TIMEOUT = 5.0
_POLL = 0.2
_MAX_APPS = 5000


class BrowserSupervisor:
    """Keeps one browser process running on the current page; restarts it when it exits."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        restart_delay: float = 2.0,
        max_restart_delay: float = 60.0,
    ) -> None:
        """Describe the browser; nothing starts until `start()`."""
        if not command:
            raise AdapterError("the browser command is empty")
        self.command = tuple(command)
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.launches = 0
        self.started_at = 0.0  # wall-clock time of the last launch
        self._url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page the browser shows (or will show)."""
        return self._url

    @property
    def pid(self) -> int | None:
        """The running browser's process id."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self, url: str) -> None:
        """Start the browser on `url` and supervise it from a daemon thread."""
        if self._thread is not None:
            self.set_url(url)
            return
        self._url = url
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="trolley-browser", daemon=True)
        self._thread.start()

    def set_url(self, url: str) -> None:
        """Show `url`: the browser is restarted on it at once (no-op if it shows it already)."""
        if url == self._url:
            return
        self._url = url
        self._changed.set()
        self._terminate()

    def stop(self) -> None:
        """Stop supervising and end the browser."""
        self._stopping.set()
        self._changed.set()
        self._terminate()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT + 2)
            self._thread = None

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """Launch the browser on the current page."""
        argv = [*self.command, self._url]
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its own process group, so stopping it also stops the renderers it forks.
                start_new_session=True,
            )
        except OSError as exc:
            logger.error("cannot start the browser %s: %s", self.command[0], exc)
            return None
        self.launches += 1
        self.started_at = time.time()
        logger.info("browser started (pid %d) on %s", process.pid, self._url)
        return process

    def _terminate(self) -> None:
        """End the current browser process group (TERM, then KILL)."""
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("browser pid %d ignored SIGTERM; killing it", process.pid)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            process.wait(_STOP_TIMEOUT)

    def _run(self) -> None:
        """Supervision loop: launch, wait, restart with a growing delay after a crash."""
        delay = self.restart_delay
        while not self._stopping.is_set():
            self._changed.clear()
            with self._lock:
                self._process = self._spawn()
                process = self._process
            started = time.monotonic()
            while process is not None and process.poll() is None:
                if self._stopping.is_set():
                    break
                self._changed.wait(_POLL)
            if self._stopping.is_set():
                break
            if self._changed.is_set():
                delay = self.restart_delay
                continue
            ran = time.monotonic() - started
            code = process.returncode if process is not None else None
            delay = self.restart_delay if ran >= HEALTHY_RUN_SECONDS else delay
            logger.warning(
                "browser exited (code %s) after %.1fs; restarting in %.1fs", code, ran, delay
            )
            self._changed.wait(delay)
            delay = min(max(delay * 2, 0.1), self.max_restart_delay)
        self._terminate()


def render_screen(title: str, message: str, school: str) -> str:
    """A full-screen HTML page for the lock and lost-mode screens (all text escaped)."""
    paragraphs = "".join(
        f"<p>{html.escape(line)}</p>" for line in message.splitlines() if line.strip()
    )
    return (
        '<!doctype html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "html,body{margin:0;height:100%;background:#12355b;color:#fff;"
        "font:1.6rem/1.5 system-ui,sans-serif}"
        "main{display:flex;flex-direction:column;justify-content:center;align-items:center;"
        "height:100%;text-align:center;padding:0 2rem}h1{font-size:2.6rem}"
        "</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1>{paragraphs}"
        f"<p><small>{html.escape(school)}</small></p>"
        "</main></body></html>\n"
    )


def _os_release() -> dict[str, str]:
    """Key/values of /etc/os-release (empty if unreadable)."""
    values: dict[str, str] = {}
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def _read_sys(path: str) -> str | None:
    """One line from sysfs, or None."""
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _battery() -> tuple[int | None, bool | None]:
    """(percent, charging) of the first battery in /sys/class/power_supply."""
    base = Path("/sys/class/power_supply")
    try:
        supplies = sorted(base.iterdir())
    except OSError:
        return None, None
    for supply in supplies:
        if _read_sys(str(supply / "type")) != "Battery":
            continue
        capacity = _read_sys(str(supply / "capacity"))
        status = _read_sys(str(supply / "status"))
        percent = int(capacity) if capacity and capacity.isdigit() else None
        if percent is not None:
            percent = max(0, min(percent, 100))
        return percent, (status == "Charging") if status else None
    return None, None


class LinuxAdapter:
    """`PlatformAdapter` for a Linux kiosk PC."""

    name = "linux"

    def __init__(
        self,
        settings: LinuxSettings,
        data_dir: Path,
        *,
        school: str = "",
        fsync: bool = True,
        idle: IdleSource | None = None,
        rfkill: Rfkill | None = None,
        storage: StorageEncryption | None = None,
        network: NetworkFacts | None = None,
    ) -> None:
        """Describe the kiosk; the browser and the watcher start with `start()`.

        The idle, rfkill, storage and network sources come from the settings unless given
        (tests give doubles).
        """
        self.settings = settings
        self.data_dir = data_dir
        self.school = school
        self.fsync = fsync
        self.browser = BrowserSupervisor(
            settings.browser_command,
            restart_delay=settings.restart_delay,
            max_restart_delay=settings.max_restart_delay,
        )
        self.idle = idle or make_idle_source(settings.idle_source, settings.display)
        self.rfkill = rfkill or Rfkill(settings.rfkill_dir)
        self.storage = storage or StorageEncryption(settings.sys_dir, settings.mountinfo)
        self.network = network or NetworkFacts()
        # Times Bluetooth or a capture device was found open again and closed ("kept off").
        self.reclosed = 0
        self._lock = threading.RLock()  # the watcher and the agent's worker share the state
        self._idle_locked = False
        self._errors: dict[str, str] = {}  # the last error enforcing each setting
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- local state --------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        """The adapter's own state file."""
        return self.data_dir / STATE_NAME

    def _state(self) -> dict[str, Any]:
        """The adapter's state file (empty when there is none yet)."""
        if not self.state_path.exists():
            return {}
        try:
            data = read_json(self.state_path)
        except (OSError, ValueError) as exc:
            raise AdapterError(f"cannot read {self.state_path}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _save(self, state: Mapping[str, Any]) -> None:
        """Write the adapter's state file atomically."""
        atomic_write_json(self.state_path, dict(state), fsync=self.fsync)

    def _kiosk_page(self, state: Mapping[str, Any]) -> str:
        """The page the kiosk shows when nothing locks it."""
        profile = state.get("profile")
        kiosk = profile.get("kiosk") if isinstance(profile, dict) else None
        if isinstance(kiosk, dict) and isinstance(kiosk.get("url"), str):
            return str(kiosk["url"])
        return self.settings.start_url

    def _page(self, state: Mapping[str, Any]) -> str:
        """What the browser should show: lost mode over lock over idle lock over the kiosk."""
        if state.get("lost_mode"):
            return self._screen(
                "lost", "This device has been reported lost", str(state.get("lost_message", ""))
            )
        if state.get("locked"):
            return self._screen("lock", "This device is locked", str(state.get("lock_message", "")))
        if self._idle_locked:
            profile = state.get("profile")
            minutes = profile.get("auto_lock_minutes") if isinstance(profile, dict) else None
            return self._screen(
                "lock",
                "This device is locked",
                f"Locked after {minutes} minutes without use.\n"
                "Touch the screen or press a key to start again.",
            )
        return self._kiosk_page(state)

    def _screen(self, name: str, title: str, message: str) -> str:
        """Write a screen page and return its file URL."""
        path = self.settings.screens_dir / f"{name}.html"
        try:
            atomic_write(
                path,
                render_screen(title, message, self.school).encode("utf-8"),
                mode=0o644,
                fsync=self.fsync,
            )
        except OSError as exc:
            raise AdapterError(f"cannot write the {name} screen {path}: {exc}") from exc
        return path.resolve().as_uri()

    # --- what Chromium cannot hold: Bluetooth, capture devices' files, the idle lock ---------

    def _device_files(self) -> dict[str, list[Path]]:
        """Per setting, the device files it may close (the camera's, the microphone's)."""
        return {
            "device.camera": device_files(self.settings.camera_devices),
            "browser.microphone": device_files(self.settings.microphone_devices),
        }

    def _enforce(self, document: Mapping[str, Any], state: dict[str, Any]) -> None:
        """Switch Bluetooth and the capture devices' files as the document says; keep errors."""
        self._errors.pop("device.bluetooth_changes", None)
        try:
            if blocked(document, "bluetooth_changes"):
                if self.rfkill.bluetooth():
                    self.rfkill.set_bluetooth(True)
                    state["bluetooth_blocked"] = True
            elif state.pop("bluetooth_blocked", False):
                self.rfkill.set_bluetooth(False)  # only what this kiosk switched off
        except OSError as exc:
            self._errors["device.bluetooth_changes"] = f"rfkill: {exc.strerror or exc}"
        # Each file's permissions from before the kiosk closed it, to give back.
        modes: dict[str, int] = state.setdefault("file_modes", {})
        wanted = closed_files(document)
        for setting, files in self._device_files().items():
            self._errors.pop(setting, None)
            try:
                for node in files:
                    if wanted[setting]:
                        mode = node.stat().st_mode & 0o7777
                        modes.setdefault(str(node), mode)
                        if mode & 0o777:
                            os.chmod(node, 0)
                    elif str(node) in modes:
                        os.chmod(node, modes.pop(str(node)))
            except OSError as exc:
                self._errors[setting] = f"{exc.filename}: {exc.strerror or exc}"

    def _watch(self) -> None:
        """Keep Bluetooth and capture devices closed and lock the screen when idle, till stopped."""
        while not self._stopping.wait(self.settings.watch_interval):
            try:
                self._check()
            except (AdapterError, OSError) as exc:
                logger.warning("kiosk check failed: %s", exc)

    def _check(self) -> None:
        """One round of the watcher."""
        with self._lock:
            state = self._state()
            profile = state.get("profile")
            document: Mapping[str, Any] = profile if isinstance(profile, dict) else {}
            opened = blocked(document, "bluetooth_changes") and any(
                not radio.off for radio in self.rfkill.bluetooth()
            )
            wanted = closed_files(document)
            for setting, files in self._device_files().items():
                opened = opened or (
                    wanted[setting] and any(node.stat().st_mode & 0o777 for node in files)
                )
            if opened:
                self.reclosed += 1
                logger.warning("Bluetooth or a capture device was opened again; closing it")
                self._enforce(document, state)
                self._save(state)
            self._check_idle(document, state)

    def _check_idle(self, document: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        """Show the lock screen after the document's idle minutes; go back on activity."""
        minutes = document.get("auto_lock_minutes")
        idle = self.idle.idle_seconds() if self.idle is not None else None
        if not isinstance(minutes, int) or idle is None:
            locked = False
        else:
            locked = idle >= minutes * 60
        if locked != self._idle_locked:
            self._idle_locked = locked
            logger.info("idle lock %s", "shown" if locked else "lifted")
            self.browser.set_url(self._page(state))

    # --- PlatformAdapter ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervised browser on the page the state calls for, and the watcher."""
        with self._lock:
            self.browser.start(self._page(self._state()))
        if self._watcher is None:
            self._stopping.clear()
            self._watcher = threading.Thread(target=self._watch, name="trolley-watch", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher and the browser."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(_STOP_TIMEOUT)
            self._watcher = None
        self.browser.stop()

    def inventory(self) -> Inventory:
        """OS, hardware, storage, battery, photos, installed desktop apps, lock state."""
        release = _os_release()
        total: int | None = None
        free: int | None = None
        try:
            usage = shutil.disk_usage(self.settings.storage_path)
            total, free = int(usage.total), int(usage.free)
        except OSError:
            pass  # reported as unknown
        percent, charging = _battery()
        state = self._state()
        encrypted, how = self.storage.check(self.settings.storage_path)
        return Inventory(
            os=(release.get("NAME") or platform.system())[:200],
            os_version=(release.get("VERSION_ID") or platform.release())[:200],
            model=(_read_sys("/sys/class/dmi/id/product_name") or "Linux PC")[:200],
            serial=(_read_sys("/sys/class/dmi/id/product_serial") or None),
            storage_total_bytes=total,
            storage_free_bytes=free,
            battery_percent=percent,
            charging=charging,
            photo_count=count_files(self.settings.photo_dirs),
            apps=self._apps(),
            lost_mode=bool(state.get("lost_mode")),
            locked=bool(state.get("locked")),
            # The kiosk's own lock screen asks for nothing: anyone can start again.
            passcode=False,
            storage_encrypted=encrypted,
            security_detail={
                "passcode": "the kiosk's lock screen asks for no passcode",
                "storage_encrypted": how[:200],
            },
            network=self.network.read(),
            extra={"browser_pid": self.browser.pid, "browser_url": self.browser.url},
        )

    def _apps(self) -> tuple[str, ...]:
        """Installed desktop applications (the .desktop files' names)."""
        apps_dir = self.settings.apps_dir
        if apps_dir is None:
            return ()
        try:
            names = sorted(p.stem for p in apps_dir.glob("*.desktop"))
        except OSError:
            return ()
        return tuple(name[:200] for name in names[:_MAX_APPS] if name)

    def wipe_photos(self) -> WipeResult:
        """Delete every file in the photo folders."""
        return delete_files(self.settings.photo_dirs)

    def apply_profile(self, document: Mapping[str, Any], version: int) -> Mapping[str, Any]:
        """Write the managed Chrome policy, switch what Chromium cannot, restart the browser."""
        policy = browser_policy(document)
        policy_file = self.settings.policy_file
        text = json.dumps(policy, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                # World-readable so Chromium (running as the kiosk user) can read it.
                atomic_write(policy_file, text.encode("utf-8"), mode=0o644, fsync=self.fsync)
                written = read_json(policy_file)
            except (OSError, ValueError) as exc:
                raise AdapterError(f"cannot write the browser policy {policy_file}: {exc}") from exc
            if written != policy:
                raise AdapterError(f"the browser policy read back from {policy_file} differs")
            state = self._state()
            self._enforce(document, state)
            state["profile"] = dict(document)
            state["profile_version"] = version
            self._save(state)
            # Chromium reads managed policy at start-up.
            self.browser.stop()
            self.browser.start(self._page(state))
            applied = self._state().get("profile")
        if not isinstance(applied, dict):
            raise AdapterError("the applied profile was not kept")
        return applied

    def settings_report(self, document: Mapping[str, Any]) -> list[SettingResult]:
        """Each setting of `document` as the machine shows it now."""
        policy_file = self.settings.policy_file
        with self._lock:
            state = self._state()
            problem = ""
            policy: Mapping[str, Any] | None = None
            try:
                read = read_json(policy_file)
                policy = read if isinstance(read, dict) else None
                problem = "" if policy is not None else "it is not a JSON object"
                fresh = self.browser.pid is None or (
                    self.browser.started_at >= policy_file.stat().st_mtime
                )
            except (OSError, ValueError) as exc:
                problem, fresh = str(exc), False
            files: dict[str, dict[str, int]] = {}
            for setting, nodes in self._device_files().items():
                for node in nodes:
                    try:
                        files.setdefault(setting, {})[str(node)] = node.stat().st_mode & 0o777
                    except OSError:
                        continue
            seen = ReadBack(
                policy=policy,
                policy_problem=problem,
                radios=self.rfkill.bluetooth(),
                files=files,
                idle_source=(
                    self.idle.name
                    if self.idle is not None and self.idle.idle_seconds() is not None
                    else None
                ),
                browser_pid=self.browser.pid,
                browser_fresh=fresh,
                kiosk_url=self._kiosk_page(state),
                photo_dirs=tuple(str(p) for p in self.settings.photo_dirs),
                errors=dict(self._errors),
            )
        return settings_report(document, seen)

    def applied_profile(self) -> Mapping[str, Any] | None:
        """The profile document last applied."""
        profile = self._state().get("profile")
        return profile if isinstance(profile, dict) else None

    def set_lost_mode(self, enabled: bool, message: str) -> None:
        """Show the lost-mode screen, or go back to the kiosk page (also clearing any lock)."""
        with self._lock:
            state = self._state()
            state.update(
                lost_mode=enabled,
                lost_message=message if enabled else "",
                locked=enabled,
                lock_message=message if enabled else "",
            )
            page = self._page(state)
            self._save(state)
            self.browser.set_url(page)

    def lock(self, message: str) -> None:
        """Show the lock screen."""
        with self._lock:
            state = self._state()
            state.update(locked=True, lock_message=message)
            page = self._page(state)
            self._save(state)
            self.browser.set_url(page)

    def factory_reset(self) -> None:
        """Stop the browser; delete photos, the managed policy, the screens and the local state.

        Bluetooth and the capture devices' files go back to how the kiosk found them.
        """
        self.stop()
        result = delete_files(self.settings.photo_dirs)
        if result.remaining or result.errors:
            raise AdapterError(
                f"factory reset left {result.remaining} file(s) in the photo folders: "
                + "; ".join(result.errors)
            )
        with self._lock:
            state = self._state()
            self._enforce({}, state)
            kept = ("device.bluetooth_changes", "device.camera", "browser.microphone")
            problems = [self._errors[k] for k in kept if k in self._errors]
            if problems:
                raise AdapterError("factory reset could not give back " + "; ".join(problems))
            try:
                remove_quietly(self.settings.policy_file)
                for name in ("lost.html", "lock.html"):
                    remove_quietly(self.settings.screens_dir / name)
                remove_quietly(self.state_path)
            except OSError as exc:
                raise AdapterError(f"factory reset could not remove managed files: {exc}") from exc
