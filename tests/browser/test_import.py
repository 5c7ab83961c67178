"""In a real browser the SBM imports a spreadsheet with errors, fixes it, and prints its labels."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import log_in
from tests.server.labels.support import pdf_qr_texts

pytestmark = pytest.mark.browser
HEADINGS = ["Asset No.", "Serial Number", "Make/Model", "Purchase Date", "Cost (£)", "Room"]
TAGS = ["BRW-001", "BRW-002", "BRW-003"]


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(HEADINGS)
    writer.writerows(rows)
    return buffer.getvalue().encode("cp1252")  # as Excel's plain "CSV" saves a £


def _file(data: bytes) -> dict[str, object]:
    return {"name": "register.csv", "mimeType": "text/csv", "buffer": data}


def test_sbm_imports_a_spreadsheet_with_errors_then_prints_its_labels(
    browser: object, live_server: str, tmp_path: Path
) -> None:
    """P-REG-1, P-REG-3: every bad row is shown; the fixed file imports; the labels scan."""
    from playwright.sync_api import expect

    context = browser.new_context(accept_downloads=True)  # type: ignore[attr-defined]
    page = context.new_page()
    log_in(page, live_server, "sbm@oakfield.example")
    page.get_by_role("link", name="Import devices from a spreadsheet").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import devices from a spreadsheet")

    bad = _csv(
        [
            [
                "BRW-001",
                "DMPXK2Q1BR01",
                "Apple iPad (9th generation)",
                "01/09/2021",
                "£329.00",
                "Year 4 classroom",
            ],
            [
                "BRW-002",
                "DMPXK2Q1BR02",
                "Apple iPad (9th generation)",
                "1 Sept 2021",
                "01/09/2021",
                "Year 4 classroom",
            ],
            [
                "BRW-002",
                "DMPXK2Q1BR03",
                "Apple iPad (9th generation)",
                "01/09/2021",
                "£329.00",
                "Year 5 classroom",
            ],
            [
                "BRW-004",
                "",
                "Apple iPad (9th generation)",
                "31/02/2021",
                "£329.00",
                "Year 4 classroom",
            ],
        ]
    )
    page.get_by_label("Your spreadsheet (Excel .xlsx or CSV)").set_input_files(files=[_file(bad)])
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check register.csv")
    expect(page.get_by_role("heading", name="3 rows with problems")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Nothing will be imported")
    problems = page.locator("#problem-list tbody tr")
    rows = [problems.nth(i).locator("td").first.inner_text() for i in range(problems.count())]
    assert sorted(set(rows)) == ["3", "4", "5"]
    table = page.locator("#problem-list").inner_text()
    assert "This looks like a date, not a cost" in table
    assert "Asset tag BRW-002 is also on row 3" in table
    assert "“Year 5 classroom” is not in Places yet" in table
    assert "The serial number is empty" in table
    assert "This is not a real date: February 2021 has 28 days, not 31." in table
    expect(page.get_by_role("button", name=re.compile(r"^Import \d"))).to_have_count(0)

    fixed = _csv(
        [
            [
                "BRW-001",
                "DMPXK2Q1BR01",
                "Apple iPad (9th generation)",
                "01/09/2021",
                "£329.00",
                "Year 4 classroom",
            ],
            [
                "BRW-002",
                "DMPXK2Q1BR02",
                "Apple iPad (9th generation)",
                "1 Sept 2021",
                "£329.00",
                "Year 4 classroom",
            ],
            [
                "BRW-003",
                "DMPXK2Q1BR03",
                "Apple iPad (9th generation)",
                "01/09/2021",
                "£329.00",
                "Year 5 classroom",
            ],
        ]
    )
    page.get_by_label("Upload the corrected file").set_input_files(files=[_file(fixed)])
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", name="1 row with problems")).to_be_visible()
    page.get_by_label("Add missing places to Places (as rooms)").check()
    page.get_by_role("button", name="Check again").click()
    expect(page.get_by_text("Every row is good.")).to_be_visible()
    page.get_by_role("button", name="Import 3 devices").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Imported register.csv: 3 new, 0 updated, 0 unchanged. Added to Places: Year 5 classroom."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Devices")

    page.goto(f"{live_server}/labels")
    base = re.search(r"Labels point at (\S+)\. If", page.locator("main").inner_text())
    assert base is not None
    page.get_by_label("Asset tags").fill("\n".join(TAGS))
    page.get_by_label("Label sheet").select_option("L7160")
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Download PDF").click()
    pdf = Path(downloaded.value.path()).read_bytes()
    (urls,) = pdf_qr_texts(pdf)
    assert urls == [f"{base.group(1)}/d/{tag}" for tag in TAGS]
    for url, tag in zip(urls, TAGS, strict=True):
        # The printed address is the configured one; this test's server listens elsewhere.
        page.goto(live_server + urlsplit(url).path)
        expect(page.get_by_role("heading", level=1)).to_contain_text(tag)
    expect(page.get_by_role("link", name="Year 5 classroom").first).to_be_visible()
    context.close()
