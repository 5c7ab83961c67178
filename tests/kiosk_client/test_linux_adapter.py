"""The Linux kiosk adapter with temporary folders and a harmless stand-in for Chromium."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_profiles import kiosk_document_sha256
from kiosk_client.adapters.linux import LinuxAdapter
from kiosk_client.config import LinuxSettings, Platform, load_config
from kiosk_client.enrol import enrol
from tests.kiosk_client.conftest import Kiosk
from tests.kiosk_client.support import FakeServer, ServerPeer, wait_until
from tests.kiosk_client.test_commands import kiosk_document


def stand_in_browser(urls_log: Path) -> tuple[str, ...]:
    """A 'browser' that writes the page it was given to a log and then just waits."""
    return ("sh", "-c", 'echo "$1" >> "$0"; exec sleep 30', str(urls_log))


@pytest.fixture
def settings(tmp_path: Path) -> LinuxSettings:
    photos = tmp_path / "home" / "Pictures"
    webcam = tmp_path / "home" / "Videos" / "Webcam"
    for folder in (photos, webcam):
        folder.mkdir(parents=True)
    (photos / "a.jpg").write_bytes(b"a")
    (photos / "trip").mkdir()
    (photos / "trip" / "b.jpg").write_bytes(b"b")
    (webcam / "c.webm").write_bytes(b"c")
    apps = tmp_path / "applications"
    apps.mkdir()
    (apps / "org.chromium.Chromium.desktop").write_text("[Desktop Entry]\n")
    return LinuxSettings(
        browser_command=stand_in_browser(tmp_path / "urls.log"),
        start_url="https://start.example.org/",
        policy_file=tmp_path / "etc" / "chromium" / "policies" / "managed" / "trolley.json",
        photo_dirs=(photos, webcam, tmp_path / "home" / "missing"),
        screens_dir=tmp_path / "screens",
        apps_dir=apps,
        storage_path=tmp_path,
        restart_delay=0.05,
        max_restart_delay=0.2,
        # Nothing of this machine's own: no idle session, radios or cameras.
        idle_source="none",
        rfkill_dir=tmp_path / "no-rfkill",
        camera_devices=(),
        microphone_devices=(),
    )


@pytest.fixture
def adapter(settings: LinuxSettings, tmp_path: Path) -> Iterator[LinuxAdapter]:
    linux = LinuxAdapter(settings, tmp_path / "data", school="Oakfield Primary", fsync=False)
    linux.start()
    yield linux
    linux.stop()


def shown(tmp_path: Path) -> list[str]:
    log = tmp_path / "urls.log"
    return log.read_text().split() if log.exists() else []


def test_the_browser_is_supervised_and_restarted(adapter: LinuxAdapter, tmp_path: Path) -> None:
    pid = wait_until(lambda: adapter.browser.pid)
    # The pid is known before the stand-in has written its line: wait for the line, not the pid.
    assert wait_until(lambda: shown(tmp_path)) == ["https://start.example.org/"]
    os.kill(pid, signal.SIGKILL)  # the browser crashes
    new_pid = wait_until(lambda: adapter.browser.pid not in (None, pid) and adapter.browser.pid)
    assert new_pid != pid and adapter.browser.launches == 2
    adapter.stop()
    assert adapter.browser.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)


def test_apply_profile_writes_managed_policy_and_opens_the_kiosk_page(
    adapter: LinuxAdapter, settings: LinuxSettings, tmp_path: Path
) -> None:
    document = kiosk_document(4)
    applied = adapter.apply_profile(document, 4)
    assert kiosk_document_sha256(applied) == document["sha256"]
    policy = json.loads(settings.policy_file.read_text())
    # The profile blocks screenshots on the device: Chromium's policy carries that too.
    assert document["device"]["screenshots"] == "blocked"
    screenshots = {"DisableScreenshots": True, "ScreenCaptureAllowed": False}
    assert policy == document["linux"]["chrome_policy"] | screenshots
    assert policy["URLBlocklist"] == ["*", "view-source:*"]
    assert oct(settings.policy_file.stat().st_mode & 0o777) == "0o644"
    wait_until(lambda: shown(tmp_path)[-1:] == ["https://assessment.example.org/"])
    assert adapter.applied_profile() == document


def test_lost_mode_shows_an_escaped_return_message_until_cleared(
    adapter: LinuxAdapter, settings: LinuxSettings, tmp_path: Path
) -> None:
    """P-LOSS-3: the lost-mode screen carries the school's message; off returns to the kiosk."""
    adapter.set_lost_mode(True, "Return to <b>Oakfield</b> office\nPhone: 01632 960000")
    page = settings.screens_dir / "lost.html"
    wait_until(lambda: shown(tmp_path)[-1:] == [page.resolve().as_uri()])
    html = page.read_text()
    assert "Return to &lt;b&gt;Oakfield&lt;/b&gt; office" in html and "<b>" not in html
    assert "Phone: 01632 960000" in html and "Oakfield Primary" in html
    assert adapter.inventory().lost_mode is True and adapter.inventory().locked is True
    adapter.set_lost_mode(False, "")
    wait_until(lambda: shown(tmp_path)[-1:] == ["https://start.example.org/"])
    assert adapter.inventory().locked is False


def test_wipe_and_factory_reset(adapter: LinuxAdapter, settings: LinuxSettings) -> None:
    """P-PHOTO-1 and P-LEAVE-1 on a Linux kiosk: every configured folder is emptied."""
    assert adapter.inventory().photo_count == 3
    result = adapter.wipe_photos()
    assert (result.deleted, result.remaining, result.complete) == (3, 0, True)
    assert all(folder.is_dir() for folder in settings.photo_dirs[:2])  # folders stay
    adapter.apply_profile(kiosk_document(1), 1)
    adapter.lock("Locked for assembly")
    (settings.photo_dirs[0] / "late.jpg").write_bytes(b"x")
    adapter.factory_reset()
    assert not settings.policy_file.exists()
    assert adapter.inventory().photo_count == 0
    assert adapter.applied_profile() is None
    assert adapter.browser.pid is None


def test_inventory(adapter: LinuxAdapter) -> None:
    inventory = adapter.inventory()
    assert inventory.os and inventory.os_version
    assert inventory.storage_total_bytes and inventory.storage_free_bytes is not None
    assert inventory.apps == ("org.chromium.Chromium",)
    assert inventory.photo_count == 3


def test_a_linux_kiosk_end_to_end(
    server: FakeServer,
    peer: ServerPeer,
    settings: LinuxSettings,
    tmp_path: Path,
) -> None:
    """`enrol --platform linux`, then the agent drives the Linux adapter over the broker."""
    config = enrol(
        server.payload("LAB-01"),
        platform=Platform.LINUX,
        data_dir=tmp_path / "kiosk",
        linux=settings,
        fsync=False,
    )
    loaded = load_config(config.data_dir)
    assert loaded.linux == settings
    kiosk = Kiosk(loaded, peer)
    kiosk.start()
    try:
        report = peer.wait_report(kiosk.device_id)
        assert report.extra["platform"] == "linux" and report.photo_count == 3
        peer.wait_ack(peer.send(kiosk.device_id, "lost_mode", {"enabled": True}), "done")
        assert peer.wait_report(kiosk.device_id, lambda r: bool(r.lost_mode))
        ack = peer.wait_ack(peer.send(kiosk.device_id, "wipe_photos"), "done")
        assert ack.result == {"deleted": 3, "remaining": 0}
    finally:
        kiosk.stop()
