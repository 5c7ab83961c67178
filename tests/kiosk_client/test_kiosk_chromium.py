"""The Linux kiosk's browser-side settings, proved on Debian's real Chromium under Xvfb.

The adapter writes Chromium's managed policy as it does on a kiosk; Chromium runs in its own
mount namespace where a temporary folder stands in for /etc/chromium, so the machine's own
Chromium (and every other test's) never sees the policy. The page then tries the camera, the
microphone and screen capture: with the profile allowing them the browser would ask (or, for
the screen, hands it over); with the profile blocking them each is refused at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_profiles import compile_profile, load_profile
from kiosk_client.adapters.linux import LinuxAdapter
from kiosk_client.adapters.linux_system import X11Idle
from kiosk_client.config import LinuxSettings
from tests.helpers import CI, free_port, in_own_thread
from tests.kiosk_client.support import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TROLLEY_CHROMIUM", "/usr/bin/chromium")

# A media request that is still waiting after two seconds is waiting for a person to answer
# the browser's prompt: the browser would ask, not refuse.
TRY = """async (what) => {
  const waited = new Promise((done) => setTimeout(() => done('asks'), 2000));
  const tried = (async () => {
    try {
      const media = navigator.mediaDevices;
      const stream = what === 'screen'
        ? await media.getDisplayMedia({video: true})
        : await media.getUserMedia({[what]: true});
      stream.getTracks().forEach((track) => track.stop());
      return 'allowed';
    } catch (error) {
      return error.name;
    }
  })();
  return Promise.race([tried, waited]);
}"""


def _needs(ok: bool, message: str) -> None:
    if not ok:
        if CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private X server (Xvfb) on the first free display number."""
    xvfb = shutil.which("Xvfb")
    _needs(xvfb is not None, "Xvfb is not installed (apt-get install xvfb)")
    _needs(Path(CHROMIUM).exists(), f"Chromium is not installed at {CHROMIUM}")
    if os.geteuid() != 0:
        # Only root can give Chromium a private /etc/chromium; never write the machine's own.
        pytest.skip("needs root to give Chromium a private policy folder")
    read, write = os.pipe()
    process = subprocess.Popen(
        [str(xvfb), "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(10)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the test page without logging each request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing."""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A page on 127.0.0.1 (a secure context, so media requests are allowed to ask)."""
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_text("<!doctype html><title>Kiosk</title><p>Lesson page</p>")
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _document(access: str) -> dict[str, Any]:
    """A kiosk document that allows, or blocks, the camera, microphone and screenshots."""
    text = (
        "format: trolley-profile/1\nid: chromium-check\nname: Chromium check\n"
        f"device:\n  camera: {access}\n  screenshots: {access}\n"
        f"browser:\n  microphone: {access}\n"
    )
    result = compile_profile(load_profile(text, "chromium-check.yaml"), "kiosk", version=1)
    document: dict[str, Any] = json.loads(result.content)
    return document


@pytest.fixture
def kiosk(tmp_path: Path, display: str, page_url: str) -> Iterator[tuple[LinuxAdapter, int]]:
    """The Linux adapter driving real Chromium in kiosk mode, reachable over DevTools."""
    etc = tmp_path / "etc-chromium"
    port = free_port()
    # $0 stands in for /etc/chromium, $1 is the display; the rest (and the page) is Chromium's.
    wrapper = (
        f'mount --bind "$0" /etc/chromium && export DISPLAY="$1" && shift && exec {CHROMIUM} "$@"'
    )
    settings = LinuxSettings(
        browser_command=(
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            wrapper,
            str(etc),
            display,
            "--kiosk",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--password-store=basic",
            "--use-fake-device-for-media-stream",
            "--auto-select-desktop-capture-source=Entire screen",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--remote-debugging-port={port}",
        ),
        start_url=page_url,
        policy_file=etc / "policies" / "managed" / "trolley.json",
        photo_dirs=(tmp_path / "Pictures",),
        screens_dir=tmp_path / "screens",
        apps_dir=None,
        storage_path=tmp_path,
        restart_delay=0.2,
        max_restart_delay=1.0,
        idle_source="x11",  # the real X server's idle time
        display=display,
        rfkill_dir=tmp_path / "no-rfkill",
        camera_devices=(),
        microphone_devices=(),
    )
    adapter = LinuxAdapter(settings, tmp_path / "data", school="Oakfield", fsync=False)
    try:
        yield adapter, port
    finally:
        adapter.stop()


def _tries(port: int, page_url: str) -> dict[str, str]:
    """What a page of the kiosk gets when it asks for the camera, the microphone and the screen.

    Each is asked from a page of its own, so one request waiting on a prompt cannot hold up the
    next.
    """
    from playwright.sync_api import Error, sync_playwright

    def connected() -> Any:
        try:
            return playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
        except Error:
            return None

    with sync_playwright() as playwright:
        browser = wait_until(connected, timeout=30, interval=0.3)
        try:
            kiosk_page = wait_until(
                lambda: next(
                    (p for c in browser.contexts for p in c.pages if p.url == page_url), None
                ),
                timeout=30,
                interval=0.2,
            )
            answers = {}
            for what in ("video", "audio", "screen"):
                page = kiosk_page.context.new_page()
                page.goto(page_url)
                answers[what] = page.evaluate(TRY, what)
                page.close()
            return answers
        finally:
            browser.close()


def test_chromium_refuses_the_camera_microphone_and_screen_capture_the_profile_blocks(
    kiosk: tuple[LinuxAdapter, int], page_url: str
) -> None:
    """P-PROFILE-1: blocked in the profile, refused by the real browser; allowed, it would ask."""
    adapter, port = kiosk
    allowing = _document("allowed")
    adapter.apply_profile(allowing, 1)
    tries = in_own_thread(_tries, port, page_url)
    assert tries == {"video": "asks", "audio": "asks", "screen": "allowed"}
    assert {s.state for s in adapter.settings_report(allowing)} == {"enforced"}

    blocking = _document("blocked")
    adapter.apply_profile(blocking, 2)
    tries = in_own_thread(_tries, port, page_url)
    assert tries == {
        "video": "NotAllowedError",
        "audio": "NotAllowedError",
        "screen": "NotAllowedError",
    }
    states = {s.setting: s for s in adapter.settings_report(blocking)}
    assert {s.state for s in states.values()} == {"enforced"}
    assert states["device.screenshots"].evidence == {
        "DisableScreenshots": True,
        "ScreenCaptureAllowed": False,
    }


def test_the_x_session_idle_time_is_read_from_the_screen_saver_extension(display: str) -> None:
    """P-PROFILE-2: the idle source the kiosk locks by, on a real X server."""
    idle = X11Idle(display)
    first = idle.idle_seconds()
    time.sleep(1.1)
    later = idle.idle_seconds()
    assert first is not None and later is not None and later >= first + 1.0
    # A key press or pointer move resets it (here: the server's own reset request).
    xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XForceScreenSaver.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    connection = xlib.XOpenDisplay(display.encode())
    xlib.XForceScreenSaver(connection, 0)  # ScreenSaverReset
    xlib.XSync(connection, 0)
    xlib.XCloseDisplay(connection)
    reset = idle.idle_seconds()
    assert reset is not None and reset < 1.0
    assert X11Idle(":9999").idle_seconds() is None  # no such display: cannot tell
