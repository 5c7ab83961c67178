"""Reading the uploaded file: CSV in whatever encoding it was saved, or an Excel workbook."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from charset_normalizer import from_bytes
from openpyxl import load_workbook

from server.errors import ValidationFailed
from server.imports.services.columns import guess_mapping

MAX_FILE_BYTES = 5 * 1024 * 1024  # a 50,000-device register saved as CSV is about 8 MB less
MAX_ROWS = 50_000
HEADING_SEARCH_ROWS = 20  # a title, a date and a blank line above the headings are common
EXCEL = "Excel workbook"

# The encodings a spreadsheet program saves "CSV" in when it is not UTF-8, by the names staff
# see in its Save As box: Excel on Windows, Excel and Numbers on a Mac, and older Unix tools.
ENCODING_NAMES = {
    "cp1252": "Windows-1252",
    "mac_roman": "Mac Roman",
    "latin_1": "ISO-8859-1",
    "iso8859_15": "ISO-8859-15",
    "cp850": "DOS (code page 850)",
}


@dataclass(frozen=True)
class Sheet:
    """A spreadsheet read into headings and rows of text."""

    encoding: str
    headings: list[str]
    rows: list[tuple[int, list[str]]]  # (row number as the spreadsheet shows it, cells)
    header_row: int = 1
    decimal: str = "."  # the decimal mark the file's software would write, when nothing says
    encoding_note: str | None = None  # e.g. "not UTF-8 from row 57"


_SAVE_AS_CSV = (
    "In Excel choose File › Save As and pick “Excel Workbook (.xlsx)” or “CSV UTF-8 (Comma "
    "delimited)”, then upload that file."
)


def _not_csv(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="not_csv")


def _row_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _oddness(text: str) -> int:
    """Letters no word has: a capital after a small letter ('CafŽ'), a sign between letters."""
    odd = 0
    for found in _NON_ASCII.finditer(text):
        index, ch = found.start(), found.group()
        before = text[index - 1] if index else " "
        after = text[index + 1] if index + 1 < len(text) else " "
        if ch.isupper() and before.islower():
            odd += 1
        elif not ch.isalpha() and before.isalpha() and after.isalpha():
            odd += 1
    return odd


def _guess_single_byte(data: bytes) -> tuple[str, str]:
    """Decode bytes that are not UTF-8 with the single-byte encoding that reads most like text."""
    found = [
        m
        for m in from_bytes(data, cp_isolation=list(ENCODING_NAMES), preemptive_behaviour=False)
        if m.encoding in ENCODING_NAMES
    ]
    if not found:
        return data.decode("cp1252", errors="replace"), "cp1252"
    least = min(m.chaos for m in found)
    # A few accented letters cannot tell these encodings apart by chaos alone; words can.
    close = [(_oddness(str(m)), m.encoding != "cp1252", i, m) for i, m in enumerate(found)]
    best = min((c for c in close if c[3].chaos <= least + 0.05), key=lambda c: c[:3])[3]
    return str(best), best.encoding


def _decode(data: bytes) -> tuple[str, str, str | None]:
    """The file's text, the name of its encoding and where it stopped being UTF-8, if it did."""
    if data.startswith(b"\xef\xbb\xbf"):
        text = _try(data, "utf-8-sig")
        if text is not None:
            return text, "UTF-8", None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = _try(data, "utf-16")
        if text is None:
            raise _unreadable("UTF-16", None)
        return text, "UTF-16", None
    if b"\x00" in data:
        raise _unreadable(None, _row_of(data, data.index(b"\x00")))
    try:
        return data.decode("utf-8"), "UTF-8", None
    except UnicodeDecodeError as exc:
        first_bad = _row_of(data, exc.start)
    text, codec = _guess_single_byte(data)
    return text, ENCODING_NAMES.get(codec, codec), f"not UTF-8 from row {first_bad}"


def _unreadable(encoding: str | None, row: int | None) -> ValidationFailed:
    where = f" The first row it could not read is row {row}." if row else ""
    assumed = f" (read as {encoding})" if encoding else ""
    return _not_csv(
        f"That file is not a spreadsheet saved as CSV: it holds characters that text never "
        f"does{assumed}.{where} {_SAVE_AS_CSV}"
    )


def _text_of(data: bytes) -> tuple[str, str, str | None]:
    """The file's text, its encoding's name and any note on it; what is not text is refused."""
    _refuse_other_kinds(data)
    text, encoding, note = _decode(data)
    bad = re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", text)
    if bad:
        raise _unreadable(encoding, text.count("\n", 0, bad.start()) + 1)
    return text, encoding, note


def decode_text(data: bytes) -> tuple[str, str]:
    """The file's text and the name of its encoding; anything that is not text is refused."""
    text, encoding, _note = _text_of(data)
    return text, encoding


def _refuse_other_kinds(data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise _not_csv(
            f"That file is {len(data) / 1_048_576:.1f} MB; the largest Trolley takes is "
            f"{MAX_FILE_BYTES // 1_048_576} MB. A register saved as CSV is far smaller: "
            "check it is the right file."
        )
    if not data.strip():
        raise _not_csv("That file is empty.")
    if data.startswith(b"PK\x03\x04"):
        raise _not_csv("That is a zip file, not an Excel workbook (.xlsx) or CSV. " + _SAVE_AS_CSV)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise _not_csv("That is an old Excel workbook (.xls), not CSV or .xlsx. " + _SAVE_AS_CSV)
    if data.startswith(b"%PDF"):
        raise _not_csv("That is a PDF, not a spreadsheet. " + _SAVE_AS_CSV)


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _is_workbook(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV of it would hold; dates and numbers unambiguous."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Spreadsheets store money as binary fractions: 329.5 is written back as 329.50.
        number = Decimal(repr(value))
        return str(number.quantize(Decimal("0.01"))) if number % 1 else str(int(number))
    return str(value)


def _workbook_rows(data: bytes) -> list[list[str]]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise _not_csv(
            "That Excel workbook could not be opened: it may be damaged or protected with a "
            "password. Open it in Excel, save a copy, and upload that."
        ) from exc
    try:
        sheet = book.active or book.worksheets[0]
        rows: list[list[str]] = []
        for values in sheet.iter_rows(values_only=True):
            if len(rows) > MAX_ROWS + HEADING_SEARCH_ROWS:
                break
            rows.append([_cell_text(v) for v in values])
        return rows
    finally:
        book.close()


def _csv_rows(text: str) -> tuple[list[list[str]], str]:
    sample = text.split("\n", HEADING_SEARCH_ROWS)[:HEADING_SEARCH_ROWS]
    # Excel uses ';' where a comma is the decimal point, and tabs for "Unicode text".
    counts = {d: sum(line.count(d) for line in sample) for d in ",;\t"}
    delimiter = max(",;\t", key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        for cells in reader:
            if len(rows) > MAX_ROWS + HEADING_SEARCH_ROWS:
                break
            rows.append(cells)
    except csv.Error as exc:
        raise _not_csv(
            f"That file could not be read as CSV near row {reader.line_num}: a quote mark "
            "may be missing, or it is not a CSV file. " + _SAVE_AS_CSV
        ) from exc
    return rows, delimiter


def find_header_row(rows: list[list[str]]) -> int:
    """The 1-based row that holds the headings: the one naming most known columns near the top."""
    best, best_count = 0, 1
    for index, cells in enumerate(rows[:HEADING_SEARCH_ROWS]):
        known = sum(1 for key in guess_mapping([c.strip() for c in cells]) if key is not None)
        if known > best_count:
            best, best_count = index, known
    if best_count > 1:
        return best + 1
    first = next((i for i, cells in enumerate(rows) if any(c.strip() for c in cells)), 0)
    return first + 1


def read_sheet(data: bytes, header_row: int | None = None) -> Sheet:
    """Decode and split a CSV file or read a workbook's first sheet; find its headings."""
    encoding_note = None
    if _is_workbook(data):
        if len(data) > MAX_FILE_BYTES:
            _refuse_other_kinds(data)
        rows, encoding, decimal = _workbook_rows(data), EXCEL, "."
    else:
        text, encoding, encoding_note = _text_of(data)
        rows, delimiter = _csv_rows(text)
        decimal = "," if delimiter == ";" else "."
    if header_row is not None and not 1 <= header_row <= max(len(rows), 1):
        raise ValidationFailed(f"The file has {len(rows)} rows; choose a heading row among them.")
    number = header_row or find_header_row(rows)
    headings = [c.strip() for c in rows[number - 1]] if rows else []
    body = [(n, cells) for n, cells in enumerate(rows[number:], start=number + 1)]
    if len(body) > MAX_ROWS:
        raise _not_csv(f"That file has more than {MAX_ROWS:,} rows; split it into smaller files.")
    if not headings or not any(headings):
        raise _not_csv("The first row should hold the column headings, but it is empty.")
    if len(headings) == 1 and not any(guess_mapping(headings)):
        raise _not_csv(
            "That does not look like the register: the first row should hold column headings "
            "such as “Asset No.”, “Serial Number” and “Make/Model”, separated by commas."
        )
    return Sheet(
        encoding=encoding,
        headings=headings,
        rows=body,
        header_row=number,
        decimal=decimal,
        encoding_note=encoding_note,
    )
