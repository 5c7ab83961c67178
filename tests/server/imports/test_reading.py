"""Reading the SBM's file: encodings, files that are not CSV, and guessing the columns."""

from __future__ import annotations

import io
import os

import pytest
from openpyxl import Workbook

from server.errors import ValidationFailed
from server.imports.services import column_letter, guess_mapping, read_sheet, reading, safe_cell
from tests.server.imports.conftest import HEADINGS, ipad, make_csv


def _refused(data: bytes) -> str:
    with pytest.raises(ValidationFailed) as caught:
        read_sheet(data)
    assert caught.value.code == "not_csv"
    return caught.value.message


def test_utf8_with_and_without_a_byte_order_mark() -> None:
    plain = make_csv([ipad("A-1", "DMPXK2Q1JF8J")])
    for data in (plain, b"\xef\xbb\xbf" + plain):
        sheet = read_sheet(data)
        assert sheet.encoding == "UTF-8"
        assert sheet.headings == HEADINGS  # no BOM left on the first heading
        assert sheet.rows[0] == (2, ipad("A-1", "DMPXK2Q1JF8J"))


def test_windows_1252_pound_sign_from_excel() -> None:
    """Excel's plain "CSV (Comma delimited)" writes £ as the single byte A3."""
    data = make_csv([ipad("A-1", "DMPXK2Q1JF8J", **{"Cost (£)": "£329.00"})], encoding="cp1252")
    assert b"\xa3329.00" in data
    sheet = read_sheet(data)
    assert sheet.encoding == "Windows-1252"
    assert sheet.headings[4] == "Cost (£)" and sheet.rows[0][1][4] == "£329.00"


def test_utf16_tab_separated_unicode_text_from_excel() -> None:
    data = make_csv([ipad("A-1", "DMPXK2Q1JF8J")], encoding="utf-16", delimiter="\t")
    sheet = read_sheet(data)
    assert sheet.encoding == "UTF-16" and sheet.headings == HEADINGS
    assert sheet.rows[0][1][0] == "A-1"


def test_semicolon_separated_files_are_read() -> None:
    sheet = read_sheet(make_csv([ipad("A-1", "S1")], delimiter=";"))
    assert sheet.headings == HEADINGS and sheet.rows[0][1][1] == "S1"


def test_an_excel_workbook_is_read_and_a_plain_zip_is_refused() -> None:
    book = Workbook()
    book.active.append(HEADINGS)
    buffer = io.BytesIO()
    book.save(buffer)
    sheet = read_sheet(buffer.getvalue())
    assert sheet.encoding == "Excel workbook" and sheet.headings == HEADINGS
    message = _refused(b"PK\x03\x04" + bytes(100))
    assert "zip file" in message and "CSV UTF-8" in message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "old Excel workbook"),
        (b"%PDF-1.7\n" + bytes(100), "PDF"),
        (b"", "empty"),
        (b"   \r\n  ", "empty"),
        (b"Asset,Serial\x00\x01\x02,Model\n", "not a spreadsheet saved as CSV"),
    ],
)
def test_files_that_are_not_csv(data: bytes, words: str) -> None:
    assert words in _refused(data)


def test_binary_junk_is_refused() -> None:
    junk = bytes(range(256)) * 400  # every byte value, as any binary file has
    assert "not a spreadsheet saved as CSV" in _refused(junk)
    assert "not a spreadsheet saved as CSV" in _refused(os.urandom(200_000))


def test_ten_megabytes_of_junk_is_refused_by_size() -> None:
    message = _refused(b"x" * (10 * 1024 * 1024))
    assert "10.0 MB" in message and "5 MB" in message


def test_one_column_of_text_that_is_not_a_register() -> None:
    assert "column headings" in _refused(b"hello world\nthis is a letter\n")


def test_a_broken_quote_names_the_row() -> None:
    data = b'Asset No.,Serial Number\nA-1,"S1\n' + b"x" * 200_000
    assert "could not be read as CSV" in _refused(data)


def test_too_many_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "MAX_ROWS", 3)
    data = make_csv([ipad(f"A-{i}", f"S{i}") for i in range(4)])
    assert "more than 3 rows" in _refused(data)


@pytest.mark.parametrize(
    ("heading", "key"),
    [
        ("Asset No.", "asset_tag"),
        ("Asset Tag", "asset_tag"),
        ("Serial Number", "serial"),
        ("S/N", "serial"),
        ("Make/Model", "make_model"),
        ("Make", "make"),
        ("Model", "model"),
        ("Purchase Date", "purchase_date"),
        ("Date Purchased", "purchase_date"),
        ("Cost (£)", "cost"),
        ("Price", "cost"),
        ("Room", "location"),
        ("Location", "location"),
        ("Supplier", "supplier"),
        ("Warranty", "warranty"),
        ("Warranty Expiry", "warranty"),
        ("Platform", "platform"),
        ("Type", "platform"),
        ("Notes", "notes"),
        ("Serial no. (from box)", "serial"),
        ("Favourite colour", None),
    ],
)
def test_columns_are_guessed_from_school_headings(heading: str, key: str | None) -> None:
    """P-REG-1: the SBM's own headings are recognised without renaming anything."""
    assert guess_mapping([heading]) == [key]


def test_each_field_is_guessed_once() -> None:
    assert guess_mapping(["Serial Number", "S/N", "Asset"]) == ["serial", None, "asset_tag"]


def test_column_letters_match_the_spreadsheet() -> None:
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_export_cells_are_never_formulas(start: str) -> None:
    """OWASP CSV injection: a cell starting with a formula character is quoted."""
    assert safe_cell(f"{start}HYPERLINK(1)") == f"'{start}HYPERLINK(1)"
    assert safe_cell("iPad 9") == "iPad 9"
