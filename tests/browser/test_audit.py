"""The termly audit in a real browser: the computing lead audits the whole demo school with a
few devices missing, misplaced and damaged, signs it off, reads and downloads the report and
raises the follow-ups; then the half-termly photo check and a GDPR spot check leave their
evidence (P-AUDIT-1, P-AUDIT-2, P-PHOTO-2, P-PHOTO-3)."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.schools.demo import DEMO_PASSWORD
from tests.browser.conftest import _stop_group, _wait_for_port
from tests.helpers import free_port

pytestmark = pytest.mark.browser

LEAD = "computing@oakfield.example"
# The demo school: 30 iPads in each of the Year 3 and Year 4 trolleys, 30 Chromebooks in Year 6.
TROLLEYS = {
    "Year 3 trolley": [f"OAK-IPAD-{n:03d}" for n in range(1, 31)],
    "Year 4 trolley": [f"OAK-IPAD-{n:03d}" for n in range(31, 61)],
    "Year 6 trolley": [f"OAK-CB-{n:03d}" for n in range(1, 31)],
}
MISSING = ["OAK-CB-028", "OAK-CB-029", "OAK-CB-030"]
MISPLACED = "OAK-CB-026"  # a Year 6 Chromebook left in the Year 3 trolley
DAMAGED = "OAK-CB-027"
UNKNOWN = "OAK-NOPE-777"


@pytest.fixture(scope="module")
def audit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A demo school of its own: this test reports devices lost and sends one for repair."""
    workdir = tmp_path_factory.mktemp("audit-demo")
    port = free_port()
    log = workdir / "server.log"
    env = {
        **os.environ,
        "TROLLEY_INSTANCE_DIR": str(workdir / "instance"),
        "TROLLEY_MQTT_PORT": str(free_port()),
    }
    env.pop("TROLLEY_DATABASE_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "demo", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_group(proc)


def _log_in(page: object, base: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.get_by_label("E-mail").fill(LEAD)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(DEMO_PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{base}/")  # type: ignore[attr-defined]


def _stand_in(page: object, place: str) -> None:
    """Choose where we are scanning (the options are full paths ending in the place's name)."""
    value = page.eval_on_selector(  # type: ignore[attr-defined]
        'select[name="location_id"]',
        "(s, name) => [...s.options].find(o => o.text.endsWith(name)).value",
        place,
    )
    page.get_by_label("Where are you scanning?").select_option(value)  # type: ignore[attr-defined]


def _scan(page: object, tag: str) -> str:
    from playwright.sync_api import expect

    page.locator("#audit-app[data-ready]").wait_for()  # type: ignore[attr-defined]
    box = page.get_by_label("Scan or type an asset tag")  # type: ignore[attr-defined]
    box.fill(tag)
    box.press("Enter")
    feedback = page.locator("#audit-feedback")  # type: ignore[attr-defined]
    expect(feedback).to_have_text(re.compile(rf"^(?!Recording).*{re.escape(tag)}"))
    return str(feedback.inner_text())


def test_the_computing_lead_runs_the_termly_audit(audit_server: str, page: object) -> None:
    from playwright.sync_api import expect

    base = audit_server
    _log_in(page, base)
    expect(page.get_by_role("heading", name="Termly audit")).to_be_visible()  # type: ignore[attr-defined]
    page.goto(f"{base}/audits")  # type: ignore[attr-defined]
    page.get_by_label("The whole school").check()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Start the audit").click()  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit scanning")  # type: ignore[attr-defined]
    expect(page.locator(".flash")).to_contain_text("90 devices to find")  # type: ignore[attr-defined]
    audit_url = page.url.removesuffix("/scan")  # type: ignore[attr-defined]

    for place, tags in TROLLEYS.items():
        _stand_in(page, place)
        for tag in tags:
            if tag in MISSING or tag == MISPLACED:
                continue
            assert f"{tag} verified in {place}" in _scan(page, tag)
    _stand_in(page, "Year 3 trolley")
    assert "misplaced: it lives in Year 6 trolley" in _scan(page, MISPLACED)
    assert "already scanned" in _scan(page, "OAK-IPAD-001").lower()  # twice: recorded once
    assert "not in your school's register" in _scan(page, UNKNOWN)
    # The condition checklist for a Chromebook with a cracked screen (P-AUDIT-2).
    _stand_in(page, "Year 6 trolley")
    _scan(page, DAMAGED)
    expect(page.locator("#audit-last")).to_have_text(DAMAGED)  # type: ignore[attr-defined]
    page.get_by_label("Screen intact").uncheck()  # type: ignore[attr-defined]
    page.get_by_label("What is wrong? (optional)").fill("Cracked across the corner")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save condition").click()  # type: ignore[attr-defined]
    expect(page.locator("#audit-feedback")).to_have_text(  # type: ignore[attr-defined]
        f"{DAMAGED}: damage noted (screen damaged)."
    )
    expect(page.locator("#audit-total")).to_have_text("87 / 90")  # type: ignore[attr-defined]
    expect(page.locator("#audit-places")).to_contain_text("27 / 30 — Year 6 trolley")  # type: ignore[attr-defined]

    # The report while it is open, then the sign-off.
    page.goto(audit_url)  # type: ignore[attr-defined]
    chart = page.get_by_role("img", name="Devices by audit result")  # type: ignore[attr-defined]
    expect(chart).to_be_visible()
    page.get_by_label("Note (optional)").fill("All three trolleys and both safes checked.")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign off the audit").click()  # type: ignore[attr-defined]
    expect(page.locator(".flash")).to_contain_text("signed off and locked")  # type: ignore[attr-defined]
    for heading in ("Missing (3)", "Misplaced (1)", "Damaged (1)", "Unknown labels (1)"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()  # type: ignore[attr-defined]
    missing = page.locator("section", has=page.get_by_role("heading", name="Missing (3)"))  # type: ignore[attr-defined]
    for tag in MISSING:
        expect(missing).to_contain_text(tag)
    expect(page.get_by_role("img", name="Devices found in each place")).to_be_visible()  # type: ignore[attr-defined]

    with page.expect_download() as download_info:  # type: ignore[attr-defined]
        page.get_by_role("link", name="Download CSV").click()  # type: ignore[attr-defined]
    download = download_info.value
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    results = {row["asset_tag"]: row["audit_result"] for row in rows}
    assert [t for t, r in results.items() if r == "missing"] == MISSING
    assert results[MISPLACED] == "misplaced" and results[UNKNOWN] == "unknown_label"
    assert next(r for r in rows if r["asset_tag"] == DAMAGED)["screen_intact"] == "no"

    # One action: loss reports for the missing, a repair for the damaged.
    page.get_by_role("button", name=re.compile("Raise loss reports and repairs")).click()  # type: ignore[attr-defined]
    expect(page.locator(".flash").first).to_contain_text(  # type: ignore[attr-defined]
        "3 loss reports raised, 1 device sent for repair."
    )
    expect(missing).to_contain_text("Loss report")
    page.goto(f"{base}/devices/{DAMAGED}")  # type: ignore[attr-defined]
    expect(page.locator("body")).to_contain_text("In repair")  # type: ignore[attr-defined]
    expect(page.locator("body")).to_contain_text("Termly audit")  # type: ignore[attr-defined]


def test_the_photo_check_and_a_spot_check_leave_their_evidence(
    audit_server: str, page: object
) -> None:
    from playwright.sync_api import expect

    base = audit_server
    _log_in(page, base)
    page.goto(f"{base}/photo-checks")  # type: ignore[attr-defined]
    expect(
        page.get_by_role("img", name=re.compile("Devices holding photos before and after"))
    ).to_be_visible()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Start this half term's photo check").click()  # type: ignore[attr-defined]
    expect(page.locator(".flash")).to_contain_text(
        re.compile(r"Photo check started: \d+ of \d+ devices hold photos")
    )  # type: ignore[attr-defined]
    check_url = page.url  # type: ignore[attr-defined]
    page.get_by_role("button", name="Wipe photos on these devices").click()  # type: ignore[attr-defined]
    expect(page.locator(".flash").first).to_be_visible()  # type: ignore[attr-defined]
    page.get_by_label("Note (optional)").fill("Checked at the end of the half term.")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Complete the check").click()  # type: ignore[attr-defined]
    expect(page.locator(".flash")).to_contain_text("It is kept as evidence")  # type: ignore[attr-defined]
    evidence = page.locator("dl.facts")  # type: ignore[attr-defined]
    expect(evidence).to_contain_text("Tom Price")
    expect(evidence).to_contain_text("Checked at the end of the half term.")
    page.goto(f"{base}/photo-checks")  # type: ignore[attr-defined]
    expect(page.locator(f'a[href="{check_url.removeprefix(base)}"]')).to_be_visible()  # type: ignore[attr-defined]

    page.goto(f"{base}/spot-checks")  # type: ignore[attr-defined]
    page.get_by_label("How many devices to check").fill("3")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Draw devices at random").click()  # type: ignore[attr-defined]
    expect(page.locator(".flash")).to_contain_text("3 devices drawn at random")  # type: ignore[attr-defined]
    expect(page.locator("dl.facts")).to_contain_text("Verified")  # type: ignore[attr-defined]
    tags = page.locator("tbody tr td:nth-child(2) a").all_inner_texts()  # type: ignore[attr-defined]
    assert len(tags) == 3
    for n, tag in enumerate(tags):
        found = "Yes" if n == 0 else "No"
        page.get_by_role("group", name=f"Photos found on {tag}?").get_by_label(found).check()  # type: ignore[attr-defined]
        page.get_by_role("group", name=f"Other personal data on {tag}?").get_by_label("No").check()  # type: ignore[attr-defined]
        page.get_by_role("button", name=f"Save {tag}").click()  # type: ignore[attr-defined]
        expect(page.locator(".flash")).to_contain_text(f"{tag}: result recorded.")  # type: ignore[attr-defined]
        if n == 0:
            expect(page.locator(".flash")).to_contain_text("has been told")  # type: ignore[attr-defined]
    expect(page.locator("dl.facts")).not_to_contain_text("Not yet")  # type: ignore[attr-defined]
    seed = page.locator("dd.seed").first.inner_text()  # type: ignore[attr-defined]
    assert seed.isdigit()
