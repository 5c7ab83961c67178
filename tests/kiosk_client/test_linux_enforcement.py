"""The Linux kiosk enforces what it claims: idle lock, Bluetooth off, camera, screenshots.

The kernel and session sides run through the adapter's own sources pointed at test doubles: a
folder shaped like /sys/class/rfkill, an idle source whose idle time the test sets.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from kiosk_client.adapters.linux import LinuxAdapter
from kiosk_client.adapters.linux_system import LogindIdle, StorageEncryption
from kiosk_client.config import LinuxSettings
from tests.kiosk_client.support import wait_until
from tests.kiosk_client.test_commands import kiosk_document
from tests.kiosk_client.test_linux_adapter import shown, stand_in_browser


class SetIdle:
    """An idle source whose idle time the test sets (None: the session cannot tell)."""

    name = "test idle source"

    def __init__(self) -> None:
        self.seconds: float | None = 0.0

    def idle_seconds(self) -> float | None:
        return self.seconds


def radio(root: Path, name: str, kind: str, soft: str = "0") -> Path:
    """One rfkill switch as the kernel shows it under /sys/class/rfkill."""
    folder = root / name
    folder.mkdir(parents=True)
    for file, value in {"type": kind, "name": f"{kind}-0", "soft": soft, "hard": "0"}.items():
        (folder / file).write_text(value + "\n")
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> LinuxSettings:
    rfkill = tmp_path / "sys" / "class" / "rfkill"
    radio(rfkill, "rfkill0", "bluetooth")
    radio(rfkill, "rfkill1", "wlan")
    return LinuxSettings(
        browser_command=stand_in_browser(tmp_path / "urls.log"),
        start_url="https://start.example.org/",
        policy_file=tmp_path / "policies" / "managed" / "trolley.json",
        photo_dirs=(tmp_path / "Pictures",),
        screens_dir=tmp_path / "screens",
        apps_dir=None,
        storage_path=tmp_path,
        restart_delay=0.05,
        max_restart_delay=0.2,
        rfkill_dir=rfkill,
        camera_devices=(),
        microphone_devices=(),
        watch_interval=0.05,
    )


@pytest.fixture
def idle() -> SetIdle:
    return SetIdle()


@pytest.fixture
def adapter(settings: LinuxSettings, tmp_path: Path, idle: SetIdle) -> Iterator[LinuxAdapter]:
    linux = LinuxAdapter(settings, tmp_path / "data", school="Oakfield", fsync=False, idle=idle)
    linux.start()
    yield linux
    linux.stop()


def test_bluetooth_is_switched_off_and_kept_off(
    adapter: LinuxAdapter, settings: LinuxSettings
) -> None:
    """P-PROFILE-1 ("Bluetooth off"): rfkill soft-blocks the radio, and again if it is turned on."""
    soft = settings.rfkill_dir / "rfkill0" / "soft"
    adapter.apply_profile(kiosk_document(1, "ks2-ipad"), 1)
    assert soft.read_text().strip() == "1"
    assert (settings.rfkill_dir / "rfkill1" / "soft").read_text().strip() == "0"  # wifi stays
    soft.write_text("0\n")  # someone switches it back on
    wait_until(lambda: soft.read_text().strip() == "1")


def test_the_screen_locks_after_the_profiles_idle_minutes(
    adapter: LinuxAdapter, settings: LinuxSettings, idle: SetIdle, tmp_path: Path
) -> None:
    """P-PROFILE-2: ten idle minutes (the profile's) bring up the kiosk's lock screen."""
    document = kiosk_document(1, "ks2-ipad")
    assert document["auto_lock_minutes"] == 10
    adapter.apply_profile(document, 1)
    idle.seconds = 9 * 60
    wait_until(lambda: adapter.browser.url == "https://start.example.org/")
    idle.seconds = 10 * 60 + 1
    lock_page = (settings.screens_dir / "lock.html").resolve().as_uri()
    wait_until(lambda: shown(tmp_path)[-1:] == [lock_page])
    assert "10 minutes" in (settings.screens_dir / "lock.html").read_text()
    idle.seconds = 0.5  # someone touches the screen
    wait_until(lambda: shown(tmp_path)[-1:] == ["https://start.example.org/"])


def test_without_the_facilities_the_settings_are_not_supported(
    settings: LinuxSettings, tmp_path: Path
) -> None:
    """No rfkill switch and no display session: the kiosk says so instead of claiming them."""
    bare = dataclasses.replace(settings, rfkill_dir=tmp_path / "nothing", idle_source="none")
    linux = LinuxAdapter(bare, tmp_path / "data", fsync=False)
    document = kiosk_document(1, "ks2-ipad")
    linux.apply_profile(document, 1)
    try:
        states = {s.setting: s for s in linux.settings_report(document)}
    finally:
        linux.stop()
    assert states["device.bluetooth_changes"].state == "not_supported"
    assert "rfkill" in states["device.bluetooth_changes"].detail
    assert states["device.auto_lock_minutes"].state == "not_supported"
    assert json.loads(bare.policy_file.read_text())  # the browser side still went on


def _block(
    sys_dir: Path, number: str, uuid: str | None = None, below: tuple[str, ...] = ()
) -> Path:
    """One block device as sysfs shows it: dm/uuid for device-mapper, slaves for what is below."""
    folder = sys_dir / "dev" / "block" / number
    folder.mkdir(parents=True)
    (folder / "dev").write_text(number + "\n")
    if uuid is not None:
        (folder / "dm").mkdir()
        (folder / "dm" / "uuid").write_text(uuid + "\n")
    if below:
        (folder / "slaves").mkdir()
        for name in below:
            (folder / "slaves" / name).symlink_to(sys_dir / "dev" / "block" / name)
    return folder


def _mounts(path: Path, *lines: tuple[str, str, str, str]) -> Path:
    """A mountinfo file: (mount point, major:minor, file system, source) per line."""
    text = "".join(
        f"{n} 1 {number} / {point} rw,relatime shared:1 - {fs} {source} rw\n"
        for n, (point, number, fs, source) in enumerate(lines, start=20)
    )
    path.write_text(text)
    return path


def test_storage_encryption_is_read_down_to_dm_crypt(tmp_path: Path) -> None:
    """P-REG-7: LVM on LUKS counts as encrypted; a plain partition does not; tmpfs is not known."""
    sys_dir = tmp_path / "sys"
    _block(sys_dir, "8:2")
    _block(sys_dir, "253:0", "CRYPT-LUKS2-0123456789abcdef-luks-root", ("8:2",))
    _block(sys_dir, "253:1", "LVM-abcdefABCDEF", ("253:0",))
    _block(sys_dir, "8:3")
    mountinfo = _mounts(
        tmp_path / "mountinfo",
        ("/", "253:1", "ext4", "/dev/mapper/vg-root"),
        ("/srv/photos", "8:3", "ext4", "/dev/sda3"),
        ("/run", "0:25", "tmpfs", "tmpfs"),
    )
    storage = StorageEncryption(sys_dir, mountinfo)
    encrypted, how = storage.check(Path("/home"))
    assert encrypted is True and "dm-crypt LUKS2" in how
    plain, how = storage.check(Path("/srv/photos/lesson"))
    assert plain is False and "/dev/sda3" in how
    unknown, how = storage.check(Path("/run/user"))
    assert unknown is None and "cannot tell" in how
    assert StorageEncryption(sys_dir, tmp_path / "missing").check(Path("/"))[0] is None


def test_logind_idle_reads_the_sessions_idle_hint() -> None:
    """P-PROFILE-2 without X: logind's IdleHint, in the same clock as the kiosk's."""
    since = int((time.monotonic() - 125) * 1_000_000)
    answers = {
        "show-seat": "ActiveSession=c2\n",
        "show-session": f"IdleHint=yes\nIdleSinceHintMonotonic={since}\n",
    }
    asked: list[list[str]] = []

    def run(argv: Sequence[str]) -> str:
        asked.append(list(argv))
        return answers[argv[1]]

    idle = LogindIdle(run=run).idle_seconds()
    assert idle is not None and 124 <= idle <= 127
    assert asked[1][:3] == ["loginctl", "show-session", "c2"]
    answers["show-session"] = "IdleHint=no\n"
    assert LogindIdle("c2", run=run).idle_seconds() == 0.0
    assert LogindIdle(run=lambda argv: "").idle_seconds() is None


def test_the_capture_devices_files_are_closed_and_given_back(
    settings: LinuxSettings, tmp_path: Path, idle: SetIdle
) -> None:
    """P-PROFILE-1: a blocked camera or microphone is closed to every program on the kiosk;
    allowed again, its files are as before."""
    devices = tmp_path / "dev"
    (devices / "snd").mkdir(parents=True)
    camera, capture, playback = (
        devices / "video0",
        devices / "snd/pcmC0D0c",
        devices / "snd/pcmC0D0p",
    )
    for node in (camera, capture, playback):
        node.write_bytes(b"")
        node.chmod(0o660)
    with_files = dataclasses.replace(
        settings,
        camera_devices=(str(devices / "video*"),),
        microphone_devices=(str(devices / "snd" / "pcmC*D*c"),),
    )
    linux = LinuxAdapter(with_files, tmp_path / "data", fsync=False, idle=idle)
    blocked = kiosk_document(1)  # the exam kiosk blocks the camera and the microphone
    try:
        linux.apply_profile(blocked, 1)
        assert camera.stat().st_mode & 0o777 == 0 and capture.stat().st_mode & 0o777 == 0
        assert playback.stat().st_mode & 0o777 == 0o660  # sound still plays
        states = {s.setting: s for s in linux.settings_report(blocked)}
        assert states["device.camera"].state == "enforced"
        assert states["device.camera"].evidence["files"] == {str(camera): "0o0"}
        assert states["browser.microphone"].evidence["files"] == {str(capture): "0o0"}
        camera.chmod(0o660)  # udev gives it back on a replug
        states = {s.setting: s for s in linux.settings_report(blocked)}
        assert states["device.camera"].state == "failed"
        assert str(camera) in states["device.camera"].detail
        linux.start()
        wait_until(lambda: camera.stat().st_mode & 0o777 == 0)
        assert linux.reclosed >= 1
        linux.apply_profile(kiosk_document(2, "ks2-ipad"), 2)  # camera and microphone allowed
        assert camera.stat().st_mode & 0o777 == 0o660 and capture.stat().st_mode & 0o777 == 0o660
    finally:
        linux.stop()


def test_a_failed_rfkill_write_is_reported_with_its_error(
    settings: LinuxSettings, tmp_path: Path, idle: SetIdle
) -> None:
    """A setting the kiosk tried and could not enforce is `failed`, with the error."""
    soft = settings.rfkill_dir / "rfkill0" / "soft"
    soft.unlink()
    soft.mkdir()  # writing to it now fails as a denied write would
    linux = LinuxAdapter(settings, tmp_path / "data", fsync=False, idle=idle)
    document = kiosk_document(1, "ks2-ipad")
    try:
        linux.apply_profile(document, 1)
        state = {s.setting: s for s in linux.settings_report(document)}
    finally:
        linux.stop()
    bluetooth = state["device.bluetooth_changes"]
    assert bluetooth.state == "failed" and "rfkill" in bluetooth.detail


def test_the_linux_report_carries_encryption_and_no_passcode(
    adapter: LinuxAdapter, settings: LinuxSettings
) -> None:
    """P-REG-7: the kiosk's lock screen has no passcode, and says so; storage is as read."""
    inventory = adapter.inventory()
    assert inventory.passcode is False
    assert "no passcode" in inventory.security_detail["passcode"]
    assert inventory.storage_encrypted in (True, False, None)
    assert inventory.security_detail["storage_encrypted"]


def test_a_factory_reset_gives_bluetooth_back(
    adapter: LinuxAdapter, settings: LinuxSettings
) -> None:
    """P-LEAVE-1: a reset device is as the kiosk found it: its radio is no longer switched off."""
    soft = settings.rfkill_dir / "rfkill0" / "soft"
    adapter.apply_profile(kiosk_document(1, "ks2-ipad"), 1)
    assert soft.read_text().strip() == "1"
    adapter.factory_reset()
    assert soft.read_text().strip() == "0"
