"""Exporting the register: the import's own columns, round trips, and no runnable cells."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook
from sqlalchemy.orm import Session

from server.devices.models import Device, DeviceStatus, Platform
from server.imports import services
from server.schools.models import Location, School
from tests.server.imports.conftest import counts

Run = Callable[..., tuple[Any, Any]]
EXPORT_HEADINGS = [
    "Asset tag",
    "Serial number",
    "Platform",
    "Make",
    "Model",
    "Operating system",
    "Status",
    "Location",
    "Slot",
    "Purchase date",
    "Cost (£)",
    "Supplier",
    "Warranty until",
    "Notes",
]
FORMULA = '=HYPERLINK("http://evil.example","Click me")'


def _register(make_device: Callable[..., Device], places: dict[str, Location]) -> None:
    make_device(
        asset_tag="OAK-IPAD-001",
        serial="DMPXK2Q1JF8J",
        home=places["trolley"],
        home_slot=1,
        purchase_date=date(2021, 9, 1),
        purchase_cost_pence=32900,
        supplier="XMA",
        warranty_until=date(2024, 9, 1),
        os_version="iPadOS 18.1",
        notes=FORMULA,
    )
    make_device(
        asset_tag="OAK-CB-001",
        serial="PF3ABCDE",
        platform=Platform.CHROMEOS,
        make="Lenovo",
        model="300e Chromebook Gen 3",
        home=places["safe"],
        status=DeviceStatus.IN_REPAIR,
        supplier="-discount",
    )
    make_device(asset_tag="OAK-OLD", serial="GONE00000001", status=DeviceStatus.DISPOSED)


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # so Excel reads £ and › correctly
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_export_has_the_import_columns_and_no_formulas(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
) -> None:
    """P-REG-1: the register is exportable; no cell starts with a character Excel would run."""
    _register(make_device, places)
    exported = services.export_register(session, school.id, "csv")
    rows = _csv_rows(exported.content)
    assert rows[0] == EXPORT_HEADINGS and exported.devices == 2 == len(rows) - 1
    chromebook, ipad = rows[1], rows[2]  # sorted by asset tag; the disposed one is left out
    assert ipad == [
        "OAK-IPAD-001",
        "DMPXK2Q1JF8J",
        "iPad",
        "Apple",
        "iPad (10th generation)",
        "iPadOS 18.1",
        "In service",
        "Main site › Main building › Year 4 classroom › Year 4 trolley",
        "1",
        "01/09/2021",
        "329.00",
        "XMA",
        "01/09/2024",
        "'" + FORMULA,
    ]
    assert chromebook[2] == "Chromebook" and chromebook[6] == "In repair"
    assert chromebook[11] == "'-discount"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_csv_export_then_import_changes_nothing(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    """P-REG-1: export → import round-trips with no changes (formula text included)."""
    _register(make_device, places)
    before = counts(session, school)
    exported = services.export_register(session, school.id, "csv")
    plan, _result = run_import(exported.content)
    assert plan.ok, [str(p) for p in plan.problems]
    assert plan.summary == {"new": 0, "updated": 0, "unchanged": 2}
    assert counts(session, school) == before
    # and the round trip is a fixed point
    assert services.export_register(session, school.id, "csv").content == exported.content


def test_xlsx_export_reads_back_with_typed_cells_and_no_formulas(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
) -> None:
    """P-REG-1: the Excel copy has the same columns, real dates and money, and no formulas."""
    _register(make_device, places)
    exported = services.export_register(session, school.id, "xlsx")
    assert exported.media_type.startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(exported.content))
    sheet = book["Register"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == EXPORT_HEADINGS and len(rows) == 3
    ipad = dict(zip(EXPORT_HEADINGS, rows[2], strict=True))
    assert ipad["Purchase date"] == datetime(2021, 9, 1)
    assert ipad["Cost (£)"] == 329 and ipad["Slot"] == 1
    assert ipad["Notes"] == "'" + FORMULA
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f", cell.coordinate
    cost = sheet.cell(row=3, column=EXPORT_HEADINGS.index("Cost (£)") + 1)
    assert "£" in cost.number_format and Decimal(str(cost.value)) == Decimal("329")
    # the CSV and the workbook hold the same text, cell for cell
    as_csv = _csv_rows(services.export_register(session, school.id, "csv").content)
    for csv_row, xlsx_row in zip(as_csv[1:], rows[1:], strict=True):
        assert csv_row == [
            _as_csv(heading, value)
            for heading, value in zip(EXPORT_HEADINGS, xlsx_row, strict=True)
        ]


def _as_csv(heading: str, value: object) -> str:
    """A workbook cell as the CSV export writes it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    if heading == "Cost (£)":
        return f"{Decimal(str(value)):.2f}"
    return str(value)


def test_export_is_scoped_to_the_school(
    session: Session,
    school: School,
    other_school: School,
    make_device: Callable[..., Device],
) -> None:
    make_device(asset_tag="OURS-1")
    make_device(in_school=other_school, asset_tag="THEIRS-1")
    text = services.export_register(session, school.id, "csv").content.decode("utf-8-sig")
    assert "OURS-1" in text and "THEIRS-1" not in text
