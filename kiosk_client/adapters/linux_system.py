"""What the Linux adapter reads from, and writes to, the machine itself: each behind a small source
that a test points at a double (a folder shaped like /sys, an idle time it sets).

* Idle time: the X server's screen saver extension (`X11Idle`), or logind's IdleHint
  (`LogindIdle`); `None` from either means the session cannot tell.
* Bluetooth: the kernel's rfkill switches under /sys/class/rfkill (`Rfkill`).
* Storage encryption: the block device under a path, followed down through device-mapper to a
  dm-crypt layer (`StorageEncryption`); "cannot tell" is an answer too.
* Camera and microphone: the device files (/dev/video*, the sound cards' capture devices)
  whose permissions the adapter can take away.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import ipaddress
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "IdleSource",
    "LogindIdle",
    "Radio",
    "Rfkill",
    "StorageEncryption",
    "X11Idle",
    "device_files",
    "make_idle_source",
]

logger = logging.getLogger(__name__)


# --- idle time ------------------------------------------------------------------------------------


class IdleSource(Protocol):
    """How long the person at the kiosk has done nothing."""

    name: str

    def idle_seconds(self) -> float | None:
        """Seconds since the last input, or None when the session cannot tell."""


class _ScreenSaverInfo(ctypes.Structure):
    """XScreenSaverInfo from <X11/extensions/scrnsaver.h>."""

    _fields_ = [
        ("window", ctypes.c_ulong),
        ("state", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("til_or_since", ctypes.c_ulong),
        ("idle", ctypes.c_ulong),
        ("event_mask", ctypes.c_ulong),
    ]


class X11Idle:
    """Idle time from the X server's MIT-SCREEN-SAVER extension, read through libXss."""

    def __init__(self, display: str) -> None:
        """Use the X display `display` (":0"); it is opened on first use."""
        self.display = display
        self.name = f"the X screen saver extension on {display}"
        self._lock = threading.Lock()  # Xlib calls from the watcher and the report threads
        self._dpy: int | None = None
        self._xlib: ctypes.CDLL | None = None
        self._xss: ctypes.CDLL | None = None

    def _open(self) -> bool:
        """Open the display and check the extension is there."""
        if self._dpy is not None:
            return True
        x11_name, xss_name = ctypes.util.find_library("X11"), ctypes.util.find_library("Xss")
        if not x11_name or not xss_name:
            return False
        xlib, xss = ctypes.CDLL(x11_name), ctypes.CDLL(xss_name)
        xlib.XOpenDisplay.restype = ctypes.c_void_p
        xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        xlib.XDefaultRootWindow.restype = ctypes.c_ulong
        xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        xlib.XFree.argtypes = [ctypes.c_void_p]
        xss.XScreenSaverQueryExtension.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
        ]
        xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_ScreenSaverInfo)
        xss.XScreenSaverQueryInfo.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.POINTER(_ScreenSaverInfo),
        ]
        dpy = xlib.XOpenDisplay(self.display.encode())
        if not dpy:
            return False
        event_base, error_base = ctypes.c_int(), ctypes.c_int()
        if not xss.XScreenSaverQueryExtension(
            dpy, ctypes.byref(event_base), ctypes.byref(error_base)
        ):
            xlib.XCloseDisplay(ctypes.c_void_p(dpy))
            return False
        self._dpy, self._xlib, self._xss = dpy, xlib, xss
        return True

    def idle_seconds(self) -> float | None:
        """Milliseconds since the last key press or pointer move, as seconds."""
        with self._lock:
            try:
                if not self._open() or self._xlib is None or self._xss is None:
                    return None
                info = self._xss.XScreenSaverAllocInfo()
                try:
                    root = self._xlib.XDefaultRootWindow(self._dpy)
                    if not self._xss.XScreenSaverQueryInfo(self._dpy, root, info):
                        return None
                    return float(info.contents.idle) / 1000.0
                finally:
                    self._xlib.XFree(info)
            except OSError as exc:
                logger.warning("cannot read the idle time from X display %s: %s", self.display, exc)
                return None


Runner = Callable[[Sequence[str]], str]


def _run(argv: Sequence[str]) -> str:
    """A command's standard output ('' when it cannot run or fails)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _properties(text: str) -> dict[str, str]:
    """`Key=value` lines, as loginctl prints them."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class LogindIdle:
    """Idle time from logind: the session's IdleHint and IdleSinceHintMonotonic."""

    def __init__(self, session: str = "", run: Runner = _run) -> None:
        """Use `session`, or the seat's active session when it is empty."""
        self.session = session
        self.run = run
        self.name = f"logind session {session or '(active on seat0)'}"

    def _session(self) -> str:
        """The session to ask about."""
        if self.session:
            return self.session
        seat = _properties(self.run(["loginctl", "show-seat", "seat0", "--property=ActiveSession"]))
        return seat.get("ActiveSession", "")

    def idle_seconds(self) -> float | None:
        """Seconds since logind last saw the session busy (0 while it is not idle)."""
        session = self._session()
        if not session:
            return None
        asked = ["IdleHint", "IdleSinceHintMonotonic"]
        argv = ["loginctl", "show-session", session] + [f"--property={p}" for p in asked]
        values = _properties(self.run(argv))
        hint = values.get("IdleHint")
        if hint == "no":
            return 0.0
        since = values.get("IdleSinceHintMonotonic", "")
        if hint != "yes" or not since.isdigit():
            return None
        # logind counts CLOCK_MONOTONIC in microseconds, the same clock as time.monotonic().
        return max(0.0, time.monotonic() - int(since) / 1_000_000)


def make_idle_source(kind: str, display: str = "") -> IdleSource | None:
    """The idle source a configuration names: x11, logind, none, or auto (X11, then logind)."""
    display = display or os.environ.get("DISPLAY", "")
    if kind == "x11" or (kind == "auto" and display):
        return X11Idle(display or ":0")
    if kind in ("logind", "auto") and Path("/run/systemd/seats").exists():
        return LogindIdle(os.environ.get("XDG_SESSION_ID", ""))
    return None


# --- rfkill ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Radio:
    """One rfkill switch and whether it is blocked in software or by a hardware switch."""

    name: str
    soft: bool
    hard: bool

    @property
    def off(self) -> bool:
        """Whether the radio is switched off, by either kind of block."""
        return self.soft or self.hard

    def describe(self) -> str:
        """'hci0: off (soft block)' and the like."""
        if not self.off:
            return f"{self.name}: on"
        kinds = [kind for kind, on in (("soft", self.soft), ("hard", self.hard)) if on]
        return f"{self.name}: off ({' and '.join(kinds)} block)"


class Rfkill:
    """The kernel's radio switches, read and written under /sys/class/rfkill."""

    def __init__(self, root: Path = Path("/sys/class/rfkill")) -> None:
        """Use the rfkill class folder at `root` (a test points it at a double)."""
        self.root = root

    def _switches(self, kind: str) -> list[Path]:
        """The switch folders of one type ("bluetooth")."""
        try:
            folders = sorted(self.root.iterdir())
        except OSError:
            return []
        return [f for f in folders if _read(f / "type") == kind]

    def _radio(self, folder: Path) -> Radio:
        """One switch as it reads now."""
        return Radio(
            name=_read(folder / "name") or folder.name,
            soft=_read(folder / "soft") == "1",
            hard=_read(folder / "hard") == "1",
        )

    def bluetooth(self) -> list[Radio]:
        """Every Bluetooth radio's switch."""
        return [self._radio(f) for f in self._switches("bluetooth")]

    def set_bluetooth(self, off: bool) -> list[Radio]:
        """Soft-block (or unblock) every Bluetooth radio, then read each back."""
        for folder in self._switches("bluetooth"):
            if (_read(folder / "soft") == "1") != off:
                (folder / "soft").write_text("1\n" if off else "0\n")
        return self.bluetooth()


def _read(path: Path) -> str | None:
    """A sysfs attribute without its newline, or None."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


# --- network --------------------------------------------------------------------------------------


class NetworkFacts:
    """The Wi-Fi name and default gateway, so the server can tell a kiosk seen off-site."""

    def __init__(self, route_file: Path = Path("/proc/net/route"), run: Runner = _run) -> None:
        """Read routes from `route_file`; ask `iwgetid`, then NetworkManager, for the SSID."""
        self.route_file = route_file
        self.run = run

    def gateway(self) -> str | None:
        """The default route's gateway (the kernel prints it as little-endian hex)."""
        try:
            lines = self.route_file.read_text(encoding="ascii").splitlines()[1:]
        except (OSError, UnicodeDecodeError):
            return None
        for line in lines:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                try:
                    return str(ipaddress.IPv4Address(int(fields[2], 16).to_bytes(4, "little")))
                except ValueError:
                    return None
        return None

    def ssid(self) -> str | None:
        """The connected Wi-Fi network's name, or None on a wired or unknown connection."""
        name = self.run(("iwgetid", "--raw")).strip()
        if not name:
            active = self.run(("nmcli", "-t", "-f", "active,ssid", "dev", "wifi"))
            name = next((ln[4:] for ln in active.splitlines() if ln.startswith("yes:")), "")
        # An SSID is at most 32 bytes; anything longer was not one.
        return name if 0 < len(name.encode()) <= 32 else None

    def read(self) -> dict[str, str]:
        """{"ssid", "gateway"}, each only when known."""
        facts = {"ssid": self.ssid(), "gateway": self.gateway()}
        return {key: value for key, value in facts.items() if value}


# --- storage encryption ---------------------------------------------------------------------------


class StorageEncryption:
    """Whether the storage under a path sits on dm-crypt, read from mountinfo and sysfs."""

    def __init__(
        self, sys_dir: Path = Path("/sys"), mountinfo: Path = Path("/proc/self/mountinfo")
    ) -> None:
        """Read sysfs under `sys_dir` and the mount table from `mountinfo`."""
        self.sys_dir = sys_dir
        self.mountinfo = mountinfo

    def _mount(self, path: Path) -> tuple[str, str, str, str] | None:
        """(mount point, major:minor, file system, source) of the mount holding `path`."""
        try:
            lines = self.mountinfo.read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        target = str(path)
        best: tuple[str, str, str, str] | None = None
        for line in lines:
            head, sep, tail = line.partition(" - ")
            fields, rest = head.split(), tail.split()
            if not sep or len(fields) < 5 or len(rest) < 2:
                continue
            point = fields[4].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) >= len(best[0])):
                best = (point, fields[2], rest[0], rest[1])
        return best

    def check(self, path: Path) -> tuple[bool | None, str]:
        """True, False or None (cannot tell), with how that was read."""
        mount = self._mount(path.resolve())
        if mount is None:
            return None, f"cannot tell: no mount found for {path}"
        point, number, fs_type, source = mount
        if number.startswith("0:") and source.startswith("/dev/"):
            try:  # btrfs and friends report an anonymous number; the source names the device
                rdev = os.stat(source).st_rdev
                number = f"{os.major(rdev)}:{os.minor(rdev)}"
            except OSError:
                pass
        block = self.sys_dir / "dev" / "block" / number
        if number.startswith("0:") or not block.exists():
            return None, f"cannot tell: {point} is {fs_type} on {source}, not a block device"
        layers = self._crypt_layers(block, depth=0)
        if layers is None:
            return None, f"cannot tell how {point} ({source}) is stored"
        if layers:
            return True, f"{point} is on an encrypted device (dm-crypt {', '.join(layers)})"
        return False, f"{point} is on {source}, and nothing under it is encrypted"

    def _crypt_layers(self, block: Path, depth: int) -> list[str] | None:
        """dm-crypt kinds ("LUKS2") found down from `block`; None when the chain cannot be read."""
        if depth > 8:
            return None
        uuid = _read(block / "dm" / "uuid")
        if uuid is not None and uuid.startswith("CRYPT-"):
            return [uuid.split("-")[1] if uuid.count("-") >= 2 else "plain"]
        slaves = block / "slaves"
        try:
            below = sorted(slaves.iterdir()) if slaves.is_dir() else []
        except OSError:
            return None
        if not below:
            return [] if (block / "dev").exists() or uuid is None else None
        found: list[str] = []
        for slave in below:
            layers = self._crypt_layers(slave, depth + 1)
            if layers is None:
                return None
            found += layers
        return found


# --- capture device files -------------------------------------------------------------------------


def device_files(patterns: Sequence[str]) -> list[Path]:
    """The device files the patterns match ("/dev/video*")."""
    found: set[str] = set()
    for pattern in patterns:
        found.update(glob.glob(pattern))
    return [Path(p) for p in sorted(found)]
