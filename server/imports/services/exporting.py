"""The register downloaded as a CSV or Excel file in the columns the import reads."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device, DeviceStatus
from server.errors import ValidationFailed
from server.imports.services.columns import BY_KEY, EXPORT_KEYS, FORMULA_START, PLATFORM_LABELS
from server.imports.services.places import Places
from server.imports.services.shared import _KNOWN_COLUMNS, _Known
from server.schools.models import School
from server.schools.services import location_path, locations

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def safe_cell(text: str) -> str:
    """A cell no spreadsheet will run: formula characters first get a quote (OWASP)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def export_values(session: Session, school_id: int) -> list[dict[str, Any]]:
    """The live register (not disposed devices), one dict of typed values per device."""
    places = Places(locations(session, school_id))
    paths = {pid: location_path(p) for pid, p in places.by_id.items()}
    rows = session.execute(
        select(*_KNOWN_COLUMNS)
        .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
        .order_by(Device.asset_tag)
    ).all()
    out = []
    for row in rows:
        device = _Known(*row)
        out.append(
            {
                "asset_tag": device.asset_tag,
                "serial": device.serial,
                "platform": PLATFORM_LABELS[device.platform],
                "make": device.make,
                "model": device.model,
                "os_version": device.os_version,
                "status": device.status.label,
                "location": paths.get(device.home_location_id) if device.home_location_id else None,
                "slot": device.home_slot,
                "purchase_date": device.purchase_date,
                "cost": Decimal(device.purchase_cost_pence) / 100
                if device.purchase_cost_pence is not None
                else None,
                "supplier": device.supplier,
                "warranty": device.warranty_until,
                "notes": device.notes,
            }
        )
    return out


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return safe_cell(str(value))


def export_csv(values: Iterable[Mapping[str, Any]]) -> bytes:
    """CSV with a byte-order mark, so Excel reads £ and › correctly."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([BY_KEY[k].heading for k in EXPORT_KEYS])
    for row in values:
        writer.writerow([_as_text(row[k]) for k in EXPORT_KEYS])
    return buffer.getvalue().encode("utf-8-sig")


def export_xlsx(values: Iterable[Mapping[str, Any]], school_name: str) -> bytes:
    """An Excel workbook: real dates and money, text never starting like a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Register")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    headings = []
    for key in EXPORT_KEYS:
        cell = WriteOnlyCell(sheet, value=BY_KEY[key].heading)
        cell.font = bold
        headings.append(cell)
    sheet.append(headings)
    for row in values:
        cells = []
        for key in EXPORT_KEYS:
            value = row[key]
            if isinstance(value, str):
                value = safe_cell(value)
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, date):
                cell.number_format = "DD/MM/YYYY"
            elif isinstance(value, Decimal):
                cell.number_format = '"£"#,##0.00'
            cells.append(cell)
        sheet.append(cells)
    book.properties.title = f"{school_name} device register"[:255]
    book.properties.creator = "Trolley"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    media_type: str
    devices: int


def export_register(session: Session, school_id: int, fmt: str) -> ExportFile:
    """The live register as a CSV or XLSX file, in the columns the import reads."""
    values = export_values(session, school_id)
    if fmt == "csv":
        return ExportFile(export_csv(values), MEDIA_TYPES["csv"], len(values))
    if fmt == "xlsx":
        school = session.get_one(School, school_id)
        return ExportFile(export_xlsx(values, school.name), MEDIA_TYPES["xlsx"], len(values))
    raise ValidationFailed("Export as csv or xlsx.")


def export_filename(school_slug: str, fmt: str, today: date | None = None) -> str:
    return f"{school_slug}-devices-{(today or date.today()).isoformat()}.{fmt}"
