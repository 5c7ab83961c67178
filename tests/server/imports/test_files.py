"""The files schools really have: a title row, Excel workbooks, Mac Roman, Snipe-IT exports."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy.orm import Session

from server.devices.models import DeviceStatus, Platform
from server.errors import ValidationFailed
from server.imports.services import read_sheet
from server.schools.models import Location, School
from tests.server.imports.conftest import HEADINGS, device, ipad, make_csv, problems

Run = Callable[..., tuple[Any, Any]]

SNIPE_IT = [
    "Item Name",
    "Company",
    "Asset Tag",
    "Serial Number",
    "Model Name",
    "Manufacturer",
    "Category",
    "Status",
    "Location",
    "Supplier",
    "Purchase Date",
    "Purchase Cost",
    "Order Number",
    "Warranty Months",
    "Notes",
]


def test_a_title_row_above_the_headings_is_skipped(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """A school sheet often starts “Oakfield Primary – ICT register 2024”, then the headings."""
    body = make_csv([ipad("T-1", "DMPXK2Q1JF81"), ipad("T-2", "DMPXK2Q1JF82")])
    data = "Oakfield Primary – ICT asset register 2024,,,,,,,,\n,,,,,,,,\n".encode() + body
    plan, result = run_import(data)
    assert plan.ok, problems(plan)
    assert plan.header_row == 3 and plan.rows_read == 2 and result.created == 2
    assert [r.row for r in plan.rows] == [4, 5]


def test_the_heading_row_can_be_chosen(session: Session, school: School, run_import: Run) -> None:
    data = b"Asset,Serial,Device\nnotes about the sheet,,\nT-1,DMPXK2Q1JF81,Apple iPad\n"
    plan, _ = run_import(data, header_row=1, dry_run=True)
    assert plan.header_row == 1 and plan.rows_read == 2


def _workbook(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_an_excel_workbook_is_imported(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """Staff keep the register in Excel: real dates and numbers in cells are read as such."""
    data = _workbook(
        [
            ["ICT register"],
            HEADINGS,
            [
                "X-1",
                "DMPXK2Q1JF81",
                "Apple iPad (9th generation)",
                datetime(2021, 9, 1),
                1329,
                "Year 4 classroom",
                "XMA",
                date(2024, 9, 1),
                None,
            ],
            [
                "X-2",
                "DMPXK2Q1JF82",
                "Lenovo 300e Chromebook",
                "2/9/2021",
                329.5,
                "Year 4 classroom",
                "XMA",
                None,
                "Spare",
            ],
        ]
    )
    plan, result = run_import(data)
    assert plan.ok, problems(plan)
    assert plan.encoding == "Excel workbook" and result.created == 2
    first = device(session, school, "X-1")
    assert first.purchase_date == date(2021, 9, 1) and first.purchase_cost_pence == 132900
    assert first.warranty_until == date(2024, 9, 1)
    second = device(session, school, "X-2")
    assert second.purchase_cost_pence == 32950 and second.purchase_date == date(2021, 9, 2)
    assert second.platform is Platform.CHROMEOS and second.notes == "Spare"


def test_mac_roman_is_detected_and_named() -> None:
    """Snipe-IT's sample files are Mac Roman; the encoding assumed is said, with the row."""
    rows = [ipad("M-1", "DMPXK2Q1JF81"), ipad("M-2", "DMPXK2Q1JF82", Notes="Café – résumé")]
    sheet = read_sheet(make_csv(rows, encoding="mac_roman"))
    assert sheet.encoding == "Mac Roman"
    assert sheet.rows[1][1][8] == "Café – résumé"
    assert sheet.encoding_note == "not UTF-8 from row 1"  # the £ in “Cost (£)”


def test_a_file_that_cannot_be_read_names_the_encoding_and_the_row() -> None:
    data = make_csv([ipad("M-1", "DMPXK2Q1JF81")], encoding="cp1252") + b"M-2,\x01\x02,\x03\n"
    with pytest.raises(ValidationFailed) as caught:
        read_sheet(data)
    message = caught.value.message
    assert "not a spreadsheet saved as CSV" in message
    assert "row 3" in message and "Windows-1252" in message


def test_a_snipe_it_asset_export_imports_with_its_own_columns(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    rows = [
        [
            "iPad 01",
            "Oakfield",
            "SN-0001",
            "DMPXK2Q1JF81",
            "iPad (9th generation)",
            "Apple",
            "Tablets",
            "Ready to Deploy",
            "Year 4 classroom",
            "XMA",
            "4/5/16",
            "329.00",
            "PO1",
            "24",
            "Café",
        ],
        [
            "CB 02",
            "Oakfield",
            "SN-0002",
            "PF3ABCDE",
            "300e Chromebook Gen 3",
            "Lenovo",
            "Chromebooks",
            "Deployed",
            "Year 4 classroom",
            "XMA",
            "4/13/16",
            "265.00",
            "PO1",
            "36",
            "",
        ],
    ]
    data = make_csv(rows, SNIPE_IT, encoding="mac_roman")
    plan, _result = run_import(data)
    assert plan.ok, problems(plan)
    mapped = dict(zip(SNIPE_IT, plan.mapping, strict=True))
    assert mapped["Asset Tag"] == "asset_tag" and mapped["Model Name"] == "model"
    assert mapped["Manufacturer"] == "make" and mapped["Warranty Months"] == "warranty_months"
    assert mapped["Item Name"] is None and mapped["Order Number"] is None
    first = device(session, school, "SN-0001")
    assert first.purchase_date == date(2016, 4, 5) and first.warranty_until == date(2018, 4, 5)
    assert first.status is DeviceStatus.IN_STOCK and first.notes == "Café"
    second = device(session, school, "SN-0002")
    assert second.platform is Platform.CHROMEOS and second.status is DeviceStatus.IN_SERVICE
    assert second.warranty_until == date(2019, 4, 13)


def test_warnings_are_summarised_by_kind_with_errors_first(
    session: Session, school: School, run_import: Run
) -> None:
    headings = ["Asset", "Serial", "Make", "Model", "Cost"]
    rows = [[f"W-{i}", f"SERIAL{i:06d}", "Dell", "Latitude", "£100"] for i in range(30)]
    rows.append(["W-BAD", "SERIALBAD001", "Apple", "iPad", "lots"])
    plan, _ = run_import(make_csv(rows, headings), dry_run=True)
    (group,) = plan.warning_groups
    assert group.count == 30 and group.rows == [2, 3, 4, 5, 6]
    assert "Could not tell" in group.message
    lines = plan.report_lines()
    assert lines[0].startswith("Row 32, column E (Cost)")
    assert any(line.startswith("30 rows (2, 3, 4, 5, 6, …)") for line in lines[1:])
    assert len(lines) < 5
