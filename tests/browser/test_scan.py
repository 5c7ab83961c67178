"""The trolley scan page in a real browser: typed tags, a barcode scanner, offline, undo, and the
camera reading a real label from Chromium's fake video capture (P-TROLLEY-1, P-PHOTO-1)."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from provisioning.qr import qr_png
from server.labels.services import place_url
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, log_in, wait_until_online

pytestmark = pytest.mark.browser

TEACHER = "teacher@oakfield.example"
# Year 4 iPads the other browser tests leave alone, and the Year 3 iPad on the camera label.
TYPED = ["OAK-IPAD-031", "OAK-IPAD-032", "OAK-IPAD-033"]
CAMERA_TAG = "OAK-IPAD-001"
LEAD = "computing@oakfield.example"
# A Year 6 Chromebook the other browser tests leave alone.
YEAR6_TAG = "OAK-CB-011"


def _log_in(page: object, base: str, email: str = TEACHER) -> None:
    log_in(page, base, email)


def _trolley_id(page: object, trolley: str) -> str:
    """The value of a trolley's option in the dropdown (its text also shows its code)."""
    option = page.locator("#scan-trolley option", has_text=f"{trolley} (")  # type: ignore[attr-defined]
    value = option.get_attribute("value")
    assert value, f"{trolley} is not in the dropdown"
    return str(value)


def _scan_page(page: object, base: str, trolley: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/scan")  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", level=1)).to_have_text("Scan devices")  # type: ignore[attr-defined]
    page.get_by_label("Trolley", exact=True).select_option(_trolley_id(page, trolley))  # type: ignore[attr-defined]


def _counts(page: object) -> tuple[int, int]:
    """The running count as it stands ("12 of 30 out"): other tests share the demo school."""
    from playwright.sync_api import expect

    count = page.locator("#scan-count")  # type: ignore[attr-defined]
    expect(count).to_have_text(re.compile(r"^\d+ of \d+ out$"))
    out, total = re.findall(r"\d+", count.inner_text())
    return int(out), int(total)


def _type_tag(page: object, tag: str) -> None:
    box = page.get_by_label("Scan or type an asset tag")  # type: ignore[attr-defined]
    box.fill(tag)
    box.press("Enter")


def write_y4m(
    path: Path,
    shown: str | Image.Image,
    *,
    frames: int = 8,
    size: tuple[int, int] = (640, 480),
) -> None:
    """A few frames of a label as YUV4MPEG2 (4:2:0), for Chromium's fake camera: the QR code
    of a text, or a picture of a printed label."""
    width, height = size
    frame = Image.new("L", size, 255)
    if isinstance(shown, str):
        code = Image.open(io.BytesIO(qr_png(shown, scale=6))).convert("L")
        side = min(height * 3 // 4, code.width)
        code = code.resize((side, side), Image.Resampling.NEAREST)
    else:
        code = shown.convert("L")
        code.thumbnail((width * 9 // 10, height * 9 // 10), Image.Resampling.LANCZOS)
    frame.paste(code, ((width - code.width) // 2, (height - code.height) // 2))
    y, cb, cr = frame.convert("RGB").convert("YCbCr").split()
    half = (width // 2, height // 2)
    planes = y.tobytes() + cb.resize(half, Image.Resampling.BOX).tobytes()
    planes += cr.resize(half, Image.Resampling.BOX).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)


def test_write_y4m_makes_whole_420_frames(tmp_path: Path) -> None:
    path = tmp_path / "label.y4m"
    write_y4m(path, "http://127.0.0.1:5000/d/OAK-IPAD-001", frames=3, size=(64, 48))
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    assert header == b"YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg"
    frame = len(b"FRAME\n") + 64 * 48 * 3 // 2
    assert len(rest) == 3 * frame and rest.count(b"FRAME\n") >= 3


def test_a_teacher_takes_out_and_returns_by_typing_and_scanner(
    browser: object, live_server: str
) -> None:
    """P-TROLLEY-1: typed tags and a keyboard-wedge scanner, counts, undo, offline and back."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 820, "height": 1180})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        _log_in(page, live_server)
        for tag in (TYPED[0], TYPED[2]):
            wait_until_online(page, live_server, tag)
        _scan_page(page, live_server, "Year 4 trolley")
        feedback = page.locator("#scan-feedback")
        count = page.locator("#scan-count")
        page.wait_for_load_state("networkidle")
        out, total = _counts(page)

        def showing(n: int) -> str:
            return f"{out + n} of {total} out"

        page.get_by_label("Class").fill("Year 4 Oak")

        _type_tag(page, TYPED[0])
        expect(feedback).to_contain_text(f"{TYPED[0]} is out with you.")
        expect(feedback).to_have_class(re.compile(r"\bok\b"))
        expect(count).to_have_text(showing(1))

        # A USB or Bluetooth scanner types the tag and Enter wherever the focus happens to be.
        page.get_by_role("heading", name="This session").click()
        page.keyboard.type(TYPED[1], delay=5)
        page.keyboard.press("Enter")
        expect(feedback).to_contain_text(f"{TYPED[1]} is out with you.")
        expect(count).to_have_text(showing(2))

        _type_tag(page, TYPED[1])  # scanned twice: recorded once
        expect(feedback).to_contain_text(f"{TYPED[1]} is already out with you.")
        expect(count).to_have_text(showing(2))

        page.get_by_role("button", name="Undo last scan").click()
        expect(feedback).to_contain_text(f"Undone: {TYPED[1]} is back in Year 4 trolley.")
        expect(count).to_have_text(showing(1))

        _type_tag(page, "OAK-NOPE-404")
        expect(feedback).to_contain_text("No device OAK-NOPE-404")
        expect(feedback).to_have_class(re.compile(r"\bbad\b"))

        # The connection drops: the scan waits on the page and is sent once it is back.
        context.set_offline(True)
        _type_tag(page, TYPED[2])
        expect(feedback).to_contain_text(f"Saved {TYPED[2]}")
        expect(page.locator("#scan-queue")).to_contain_text("1 scan saved on this device")
        context.set_offline(False)
        expect(feedback).to_contain_text(f"{TYPED[2]} is out with you.", timeout=15_000)
        expect(count).to_have_text(showing(2))
        expect(page.locator("#scan-queue")).to_be_hidden()
        expect(page.locator("#scan-still-out")).to_contain_text(TYPED[2])

        page.get_by_text("Putting devices back").click()
        for tag in (TYPED[0], TYPED[2]):
            _type_tag(page, tag)
            expect(feedback).to_contain_text(f"{tag} is back in Year 4 trolley.")
        expect(count).to_have_text(showing(0))
        expect(page.locator("#scan-still-out")).to_contain_text("every device from here is back")

        # P-PHOTO-1: the demo's simulated iPads answer each return's wipe; the loan shows it.
        page.goto(f"{live_server}/loans")
        page.locator("table a").first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Year 4 Oak")
        wiped = page.locator(".wipe-done", has_text=re.compile(r"^wiped \(\d+ photos? deleted\)$"))
        deadline = time.monotonic() + 60
        while wiped.count() < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(1000)
            page.reload()
        expect(wiped).to_have_count(2)
    finally:
        context.close()


def test_the_device_page_takes_out_and_returns_in_one_tap(
    browser: object, live_server: str
) -> None:
    """A phone's own camera opens the label's URL; one tap takes it out, one puts it back."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        _log_in(page, live_server)
        page.goto(f"{live_server}/d/OAK-IPAD-034")
        page.get_by_role("button", name="Take out").click()
        expect(page.get_by_text("OAK-IPAD-034 is out with you.")).to_be_visible()
        page.get_by_role("button", name="Return to Year 4 trolley").click()
        expect(page.get_by_text("OAK-IPAD-034 is back in Year 4 trolley.")).to_be_visible()
    finally:
        context.close()


def _camera(browser: object, video: Path) -> object:
    """A second Chromium whose camera shows `video`."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    return browser.browser_type.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM,
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )


@pytest.fixture
def camera_browser(browser: object, tmp_path: Path, live_server: str) -> Iterator[object]:
    """A second Chromium whose camera shows a printed label for OAK-IPAD-001."""
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    _log_in(page, live_server)
    page.goto(f"{live_server}/scan")
    base = page.locator("#scan-app").get_attribute("data-label-base")
    context.close()
    assert base, "the scan page says which server its labels belong to"
    video = tmp_path / "label.y4m"
    write_y4m(video, f"{base}/d/{CAMERA_TAG}")
    camera = _camera(browser, video)
    yield camera
    camera.close()


@pytest.fixture
def trolley_label_camera(
    browser: object, tmp_path: Path, live_server: str
) -> Iterator[tuple[object, str]]:
    """A Chromium whose camera shows the Year 3 trolley's label, printed from the label page."""
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    _log_in(page, live_server)
    page.goto(f"{live_server}/scan")
    year3 = _trolley_id(page, "Year 3 trolley")
    sheet = page.request.get(
        f"{live_server}/labels/sheet", params={"places": year3, "layout": "single"}
    )
    assert sheet.ok and sheet.headers["content-type"] == "application/pdf"
    document = pdfium.PdfDocument(sheet.body())
    try:
        label = document[0].render(scale=300 / 72).to_pil()
    finally:
        document.close()
    context.close()
    video = tmp_path / "trolley-label.y4m"
    write_y4m(video, label)
    camera = _camera(browser, video)
    yield camera, year3
    camera.close()


def test_the_camera_reads_a_label(camera_browser: object, live_server: str) -> None:
    """The in-page camera reads a real label continuously, without BarcodeDetector (iPad Safari)."""
    from playwright.sync_api import expect

    context = camera_browser.new_context(permissions=["camera"])  # type: ignore[attr-defined]
    # As on an iPad: Safari has no BarcodeDetector, so the page must decode frames itself.
    context.add_init_script("delete window.BarcodeDetector;")
    page = context.new_page()
    try:
        _log_in(page, live_server)
        _scan_page(page, live_server, "Year 3 trolley")
        page.get_by_text("Taking devices out").click()
        page.wait_for_load_state("networkidle")
        out, total = _counts(page)
        feedback = page.locator("#scan-feedback")
        page.get_by_role("button", name="Use the camera").click()
        expect(feedback).to_contain_text(f"{CAMERA_TAG} is out with you.", timeout=20_000)
        expect(page.locator("#scan-camera-box")).to_have_attribute("data-decoder", "jsqr")
        expect(page.locator("#scan-count")).to_have_text(f"{out + 1} of {total} out")
        page.get_by_text("Putting devices back").click()
        expect(feedback).to_contain_text(f"{CAMERA_TAG} is back in Year 3 trolley.", timeout=20_000)
        page.get_by_role("button", name="Stop the camera").click()
        expect(page.locator("#scan-count")).to_have_text(f"{out} of {total} out")
        log = page.locator("#scan-log li")
        expect(log.first).to_contain_text(f"{CAMERA_TAG} is back in Year 3 trolley.")
    finally:
        context.close()


def test_a_trolley_label_chooses_the_trolley_and_returns_go_home_at_phone_width(
    browser: object, live_server: str
) -> None:
    """P-TROLLEY-1: a scanned trolley label chooses the trolley; a return goes into the device's
    own trolley, never a place remembered or first by name; each person's trolley is their own."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        _log_in(page, live_server)
        page.goto(f"{live_server}/scan")
        dropdown = page.get_by_label("Trolley", exact=True)
        feedback = page.locator("#scan-feedback")
        expect(dropdown).to_have_value("")  # nothing is chosen for the teacher
        expect(page.locator("#scan-trolley option", has_text="(Y6-TROLLEY)")).to_have_count(1)
        year6, year4 = _trolley_id(page, "Year 6 trolley"), _trolley_id(page, "Year 4 trolley")
        base = page.locator("#scan-app").get_attribute("data-label-base")
        assert base

        # The trolley's printed label, read by a keyboard-wedge scanner wherever the focus is.
        page.get_by_role("heading", name="This session").click()
        page.keyboard.type(place_url(base, int(year6)), delay=2)
        page.keyboard.press("Enter")
        expect(dropdown).to_have_value(year6)
        expect(feedback).to_contain_text("Trolley: Year 6 trolley.")
        out, total = _counts(page)
        _type_tag(page, YEAR6_TAG)
        expect(feedback).to_contain_text(f"{YEAR6_TAG} is out with you.")
        expect(page.locator("#scan-count")).to_have_text(f"{out + 1} of {total} out")

        # The code printed on another trolley's label, typed: that trolley is remembered.
        _type_tag(page, "y4-trolley")
        expect(dropdown).to_have_value(year4)
        page.reload()
        expect(dropdown).to_have_value(year4)

        # Putting back without touching the dropdown: into the device's own trolley.
        page.get_by_text("Putting devices back").click()
        expect(dropdown).to_have_value("")
        _type_tag(page, YEAR6_TAG)
        expect(feedback).to_contain_text(f"{YEAR6_TAG} is back in Year 6 trolley.")
        expect(feedback).not_to_contain_text("lives in")
        expect(page.locator("#scan-count")).to_have_text(f"Year 6 trolley: {out} of {total} out")
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways at 390 px: {width}"

        # Another person on the same phone does not get the teacher's trolley. (On a phone,
        # Sign out is in the folded menu.)
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("button", name="Sign out").click()
        _log_in(page, live_server, LEAD)
        page.goto(f"{live_server}/scan")
        expect(dropdown).to_have_value("")
    finally:
        context.close()


def test_the_camera_reads_a_printed_trolley_label(
    trolley_label_camera: tuple[object, str], live_server: str
) -> None:
    """P-TROLLEY-1: the trolley's label from the label sheet, held to the camera, chooses it."""
    from playwright.sync_api import expect

    camera, year3 = trolley_label_camera
    context = camera.new_context(permissions=["camera"])  # type: ignore[attr-defined]
    context.add_init_script("delete window.BarcodeDetector;")
    page = context.new_page()
    try:
        _log_in(page, live_server)
        page.goto(f"{live_server}/scan")
        page.wait_for_load_state("networkidle")
        lookups: list[str] = []
        page.on(
            "request",
            lambda request: lookups.append(request.url) if "/loans/trolleys/" in request.url else 0,
        )
        page.get_by_role("button", name="Use the camera").click()
        expect(page.get_by_label("Trolley", exact=True)).to_have_value(year3, timeout=20_000)
        expect(page.locator("#scan-feedback")).to_contain_text("Trolley: Year 3 trolley.")
        # The label stays in view: it chooses the trolley once, not on every frame read.
        page.wait_for_timeout(2000)
        assert len(lookups) == 1, lookups
        page.get_by_role("button", name="Stop the camera").click()
        expect(page.locator("#scan-log li")).to_have_count(0)  # nothing was sent as a device
    finally:
        context.close()
