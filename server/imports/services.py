"""The SBM's spreadsheet in and out of the register (P-REG-1).

Reading: the file's bytes are decoded (UTF-8 with or without a byte-order mark, UTF-16 from
Excel's "Unicode text", or Windows-1252 from Excel's plain "CSV"), anything that is not a CSV
file is refused, the columns are guessed from their headings (the person can change the guess),
and every row is checked against the register loaded once — never a query per row. Any problem
stops the whole import: it is written in one transaction or not at all. Re-importing the same
file matches devices by asset tag (or serial number) and changes only what differs.

Writing: the export has the same columns the import reads, so export → import changes nothing,
and no cell ever starts with a character a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.devices.models import Device, DeviceEvent, DeviceStatus, Platform
from server.devices.schemas import parse_money, parse_uk_date
from server.devices.services import DeviceFields, check_fields, normalise_serial
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.imports.models import ImportUpload
from server.schools.models import ALLOWED_PARENTS, Location, LocationKind, School
from server.schools.services import add_location, location_path, locations

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 5 * 1024 * 1024  # a 50,000-device register saved as CSV is about 8 MB less
MAX_ROWS = 50_000
UPLOAD_LIFETIME = timedelta(hours=6)
PROGRESS_EVERY = 1_000
CHUNK = 500  # rows per statement when writing or looking up in bulk

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total); stages are "checking" and "importing"."""


# --- columns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One thing a spreadsheet column can hold, and the headings schools give it."""

    key: str
    heading: str
    synonyms: tuple[str, ...]  # headings as normalise_heading() leaves them
    required: bool = False


def _column(key: str, heading: str, synonyms: str, required: bool = False) -> Column:
    return Column(key, heading, tuple(synonyms.split("|")), required)


# In export order (the import reads any order). Make/Model is only ever read.
COLUMNS: tuple[Column, ...] = (
    _column(
        "asset_tag",
        "Asset tag",
        "asset tag|asset no|asset number|asset|asset id|asset ref|asset reference|asset code|"
        "asset tag no|tag|tag no|tag number|inventory no|inventory number",
        required=True,
    ),
    _column("serial", "Serial number", "serial number|serial|serial no|s n|sn|serial num", True),
    _column("platform", "Platform", "platform|type|device type|kind"),
    _column("make", "Make", "make|manufacturer|brand", required=True),
    _column("model", "Model", "model|model name|device model", required=True),
    _column("make_model", "Make/Model", "make model|make and model|device|item"),
    _column("os_version", "Operating system", "operating system|os|os version"),
    _column("status", "Status", "status|state"),
    _column(
        "location",
        "Location",
        "location|room|where|lives in|home|place|kept in|stored in|trolley|base",
    ),
    _column("slot", "Slot", "slot|slot no|slot number|trolley slot|bay"),
    _column(
        "purchase_date",
        "Purchase date",
        "purchase date|date purchased|purchased|date of purchase|bought|date bought|purchase",
    ),
    _column(
        "cost",
        "Cost (£)",
        "cost|price|purchase price|purchase cost|cost gbp|unit cost|value",
    ),
    _column("supplier", "Supplier", "supplier|vendor|bought from|reseller"),
    _column(
        "warranty",
        "Warranty until",
        "warranty until|warranty|warranty expiry|warranty expires|warranty end|warranty ends|"
        "warranty end date|warranty expiry date",
    ),
    _column("notes", "Notes", "notes|note|comments|comment|remarks"),
)
BY_KEY = {c.key: c for c in COLUMNS}
EXPORT_KEYS = tuple(c.key for c in COLUMNS if c.key != "make_model")
# Headings that merely contain one of these words, when no heading matches exactly.
_LOOSE = (
    ("serial", "serial"),
    ("warrant", "warranty"),
    ("asset", "asset_tag"),
    ("cost", "cost"),
    ("price", "cost"),
    ("supplier", "supplier"),
    ("purchas", "purchase_date"),
    ("note", "notes"),
    ("comment", "notes"),
    ("room", "location"),
    ("location", "location"),
    ("model", "model"),
)
# Device attribute behind each column (make_model fills make and model).
ATTRS = {
    "asset_tag": "asset_tag",
    "serial": "serial",
    "platform": "platform",
    "make": "make",
    "model": "model",
    "os_version": "os_version",
    "status": "status",
    "location": "home_location_id",
    "slot": "home_slot",
    "purchase_date": "purchase_date",
    "cost": "purchase_cost_pence",
    "supplier": "supplier",
    "warranty": "warranty_until",
    "notes": "notes",
}
# check_fields reports by DeviceFields name; problems are shown against the file's column.
_CHECK_FIELD_KEYS = {attr: key for key, attr in ATTRS.items()}
MAX_TEXT = {"make": 64, "model": 120, "os_version": 64, "supplier": 120, "notes": 2000}

PLATFORM_NAMES = {
    "ipados": Platform.IPADOS,
    "ipad": Platform.IPADOS,
    "ipad os": Platform.IPADOS,
    "ios": Platform.IPADOS,
    "apple ipad": Platform.IPADOS,
    "chromeos": Platform.CHROMEOS,
    "chrome os": Platform.CHROMEOS,
    "chromebook": Platform.CHROMEOS,
    "chrome": Platform.CHROMEOS,
    "linux": Platform.LINUX,
    "linux kiosk": Platform.LINUX,
    "other": Platform.OTHER,
    "windows": Platform.OTHER,
    "laptop": Platform.OTHER,
}
PLATFORM_LABELS = {
    Platform.IPADOS: "iPad",
    Platform.CHROMEOS: "Chromebook",
    Platform.LINUX: "Linux",
    Platform.OTHER: "Other",
}
MAKERS = (
    "Apple",
    "Lenovo",
    "Acer",
    "HP",
    "Dell",
    "Asus",
    "Samsung",
    "Google",
    "Microsoft",
    "Toshiba",
    "Amazon",
    "Raspberry Pi",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FREE_TEXT = frozenset({"make", "model", "make_model", "os_version", "supplier", "notes"})


def normalise_heading(text: str) -> str:
    """'Cost (£)' → 'cost', 'S/N' → 's n', 'Asset No.' → 'asset no'."""
    return re.sub(r"[^a-z0-9]+", " ", text.casefold()).strip()


def guess_mapping(headings: Sequence[str]) -> list[str | None]:
    """Each column's field guessed from its heading; each field at most once, else None."""
    mapping: list[str | None] = [None] * len(headings)
    taken: set[str] = set()
    names = [normalise_heading(h) for h in headings]
    for index, name in enumerate(names):
        for column in COLUMNS:
            if column.key not in taken and name in column.synonyms:
                mapping[index] = column.key
                taken.add(column.key)
                break
    for index, name in enumerate(names):
        if mapping[index] is not None or not name:
            continue
        for word, key in _LOOSE:
            if word in name and key not in taken:
                mapping[index] = key
                taken.add(key)
                break
    return mapping


def column_letter(index: int) -> str:
    """0 → 'A', 25 → 'Z', 26 → 'AA', as a spreadsheet names its columns."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# --- reading the file ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """A CSV file read into headings and rows of text."""

    encoding: str
    headings: list[str]
    rows: list[tuple[int, list[str]]]  # (row number as the spreadsheet shows it, cells)


_SAVE_AS_CSV = (
    "In Excel choose File › Save As and pick “CSV UTF-8 (Comma delimited)”, then upload that file."
)


def _not_csv(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="not_csv")


def decode_text(data: bytes) -> tuple[str, str]:
    """The file's text and the name of its encoding; anything that is not text is refused."""
    if len(data) > MAX_FILE_BYTES:
        raise _not_csv(
            f"That file is {len(data) / 1_048_576:.1f} MB; the largest Trolley takes is "
            f"{MAX_FILE_BYTES // 1_048_576} MB. A register saved as CSV is far smaller: "
            "check it is the right file."
        )
    if not data.strip():
        raise _not_csv("That file is empty.")
    if data.startswith(b"PK\x03\x04"):
        raise _not_csv("That is an Excel workbook (.xlsx) or a zip file, not CSV. " + _SAVE_AS_CSV)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise _not_csv("That is an old Excel workbook (.xls), not CSV. " + _SAVE_AS_CSV)
    if data.startswith(b"%PDF"):
        raise _not_csv("That is a PDF, not a spreadsheet. " + _SAVE_AS_CSV)
    text: str | None = None
    encoding = ""
    if data.startswith(b"\xef\xbb\xbf"):
        text, encoding = _try(data, "utf-8-sig"), "UTF-8"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text, encoding = _try(data, "utf-16"), "UTF-16"
    elif b"\x00" not in data:
        text, encoding = _try(data, "utf-8"), "UTF-8"
        if text is None:
            # Excel's plain "CSV (Comma delimited)" writes Windows-1252: £ is the byte A3.
            text, encoding = _try(data, "cp1252"), "Windows-1252"
    if text is None or re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", text):
        raise _not_csv(
            "That file is not a spreadsheet saved as CSV: it holds characters that text never "
            "does. " + _SAVE_AS_CSV
        )
    return text, encoding


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def read_sheet(data: bytes) -> Sheet:
    """Decode and split a CSV file; the first row holds the headings."""
    text, encoding = decode_text(data)
    first_line = text.split("\n", 1)[0]
    # Excel uses ';' where a comma is the decimal point, and tabs for "Unicode text".
    delimiter = max(",;\t", key=first_line.count) if first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    headings: list[str] | None = None
    try:
        for number, cells in enumerate(reader, start=1):
            if headings is None:
                headings = [c.strip() for c in cells]
                continue
            if len(rows) >= MAX_ROWS:
                raise _not_csv(
                    f"That file has more than {MAX_ROWS:,} rows; split it into smaller files."
                )
            rows.append((number, cells))
    except csv.Error as exc:
        raise _not_csv(
            f"That file could not be read as CSV near row {reader.line_num}: a quote mark "
            "may be missing, or it is not a CSV file. " + _SAVE_AS_CSV
        ) from exc
    if not headings or not any(headings):
        raise _not_csv("The first row should hold the column headings, but it is empty.")
    if len(headings) == 1 and not any(guess_mapping(headings)):
        raise _not_csv(
            "That does not look like the register: the first row should hold column headings "
            "such as “Asset No.”, “Serial Number” and “Make/Model”, separated by commas."
        )
    return Sheet(encoding=encoding, headings=headings, rows=rows)


# --- checking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something in one cell (or row) of the file, by row number and column."""

    row: int
    column: str | None  # the column letter, A, B, …
    heading: str | None  # the file's heading for that column
    message: str
    value: str | None = None

    @property
    def where(self) -> str:
        """'Row 4, column C (Serial Number)', as the person finds it in their spreadsheet."""
        if self.column:
            return f"Row {self.row}, column {self.column} ({self.heading})"
        return f"Row {self.row}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.where,
            "row": self.row,
            "column": self.column,
            "heading": self.heading,
            "message": self.message,
            "value": self.value,
        }

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class PlannedRow:
    """What the import will do with one row."""

    row: int
    asset_tag: str
    action: Literal["new", "update", "unchanged"]
    device_id: int | None
    values: dict[str, Any]  # Device attributes: every one for a new device, the changes otherwise
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    new_place: str | None = None  # the name of a place this import creates for it


@dataclass
class Options:
    """What the person chose on the preview: the columns, and whether to add missing places."""

    mapping: list[str | None] | None = None
    create_locations: bool = False
    location_parent_id: int | None = None


@dataclass
class Plan:
    """Everything the import will do, and every problem that stops it."""

    filename: str
    encoding: str
    headings: list[str]
    mapping: list[str | None]
    options: Options
    rows: list[PlannedRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    missing_places: dict[str, list[int]] = field(default_factory=dict)
    places_parent: str | None = None  # where new places would go, in words
    places_parent_id: int | None = None
    samples: list[list[str]] = field(default_factory=list)  # the first few rows, for mapping
    rows_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems})

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def summary(self) -> dict[str, int]:
        return {
            "new": self.count("new"),
            "updated": self.count("update"),
            "unchanged": self.count("unchanged"),
        }


class _RulesOnly:
    """Lets check_fields apply its per-field rules without its per-row queries.

    The import answers the register-wide questions (duplicate tags and serials, places, slots,
    capacity) for every row at once from data loaded once, so check_fields' own look-ups are
    answered "nothing found" here.
    """

    def scalar(self, _statement: object) -> None:
        return None


_RULES_ONLY = cast(Session, _RulesOnly())


def _unescape(value: str) -> str:
    """Undo the export's protection: a quote before a formula character is not part of the text."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value


_DIGIT = re.compile(r"\d")


def _looks_like(value: str) -> str | None:
    """'a date' or 'an amount of money' when a cell clearly holds one."""
    if not _DIGIT.search(value):
        return None  # dates and money always have digits; most names and models do not
    if re.search(r"[/.-]|[A-Za-z]{3}", value):
        try:
            parse_uk_date(value)
            return "a date"
        except ValueError:
            pass
    if "£" in value or re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2}", value.strip()):
        try:
            parse_money(value)
            return "an amount of money"
        except ValueError:
            pass
    return None


def _split_make_model(text: str) -> tuple[str, str]:
    """'Apple iPad (9th generation)' → ('Apple', 'iPad (9th generation)')."""
    folded = text.casefold()
    for maker in MAKERS:
        if folded.startswith(maker.casefold() + " "):
            return maker, text[len(maker) :].strip()
    if "ipad" in folded:
        return "Apple", text
    first, _, rest = text.partition(" ")
    return first, rest.strip()


def guess_platform(make: str, model: str) -> Platform | None:
    """An iPad or a Chromebook can be told from its make and model."""
    both = f"{make} {model}".casefold()
    if "ipad" in both:
        return Platform.IPADOS
    if "chromebook" in both or "chromebox" in both:
        return Platform.CHROMEOS
    return None


def parse_platform(text: str) -> Platform | None:
    return PLATFORM_NAMES.get(normalise_heading(text).replace(" ", "")) or PLATFORM_NAMES.get(
        normalise_heading(text)
    )


def parse_status(text: str) -> DeviceStatus | None:
    name = normalise_heading(text).replace(" ", "_")
    return next((s for s in DeviceStatus if s.value == name), None)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class Places:
    """The school's places, found by name or by path ('Main building › Year 4 trolley')."""

    def __init__(self, places: Sequence[Location]) -> None:
        self.by_id = {p.id: p for p in places}
        self.paths = {p.id: [_norm(part) for part in location_path(p).split("›")] for p in places}
        self._cache: dict[str, tuple[Location | None, str | None]] = {}

    def find(self, text: str) -> tuple[Location | None, str | None]:
        """(the place, None), (None, why not) if ambiguous, or (None, None) if unknown."""
        key = _norm(text)
        if key not in self._cache:
            self._cache[key] = self._find(text)
        return self._cache[key]

    def _find(self, text: str) -> tuple[Location | None, str | None]:
        parts = [_norm(p) for p in re.split(r"[›>]", text) if p.strip()]
        if not parts:
            return None, None
        matches = [pid for pid, path in self.paths.items() if path[-len(parts) :] == parts]
        if len(matches) == 1:
            return self.by_id[matches[0]], None
        if len(matches) > 1:
            options = "; ".join(sorted(location_path(self.by_id[m]) for m in matches))
            return None, f"More than one place is called that ({options}): write the full path."
        return None, None


@dataclass(frozen=True)
class _Known:
    """A device as the register holds it now, loaded once for the whole file."""

    id: int
    asset_tag: str
    serial: str
    platform: Platform
    make: str
    model: str
    os_version: str | None
    status: DeviceStatus
    home_location_id: int | None
    home_slot: int | None
    purchase_date: date | None
    purchase_cost_pence: int | None
    supplier: str | None
    warranty_until: date | None
    notes: str | None


_KNOWN_COLUMNS = [getattr(Device, f) for f in _Known.__dataclass_fields__]


def _notify(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None and (done == total or done % PROGRESS_EVERY == 0):
        progress(stage, done, total)


def check_mapping(mapping: Sequence[str | None], headings: Sequence[str]) -> list[str]:
    """Why a chosen set of columns cannot work, in plain words (empty if it can)."""
    reasons = []
    if len(mapping) != len(headings):
        return [f"Choose what each of the {len(headings)} columns holds."]
    unknown = [m for m in mapping if m is not None and m not in BY_KEY]
    if unknown:
        reasons.append(f"Unknown column choice: {', '.join(map(str, unknown))}.")
    for key, times in Counter(m for m in mapping if m).items():
        if times > 1 and key in BY_KEY:
            reasons.append(f"“{BY_KEY[key].heading}” is chosen for {times} columns; choose one.")
    chosen = set(mapping)
    for key in ("asset_tag", "serial"):
        if key not in chosen:
            reasons.append(f"No column holds the {BY_KEY[key].heading.lower()}: choose one.")
    for key in ("make", "model"):
        if key not in chosen and "make_model" not in chosen:
            reasons.append(
                f"No column holds the {key}: choose “{BY_KEY[key].heading}” or “Make/Model”."
            )
    return reasons


def plan_import(
    session: Session,
    school_id: int,
    sheet: Sheet,
    *,
    actor: User | None,
    options: Options,
    filename: str,
    progress: Progress | None = None,
) -> Plan:
    """Check every row against the rules and the register; decide new, update or unchanged."""
    mapping = options.mapping if options.mapping is not None else guess_mapping(sheet.headings)
    plan = Plan(
        filename=filename,
        encoding=sheet.encoding,
        headings=sheet.headings,
        mapping=list(mapping),
        options=options,
        samples=[cells for _, cells in sheet.rows[:3]],
    )
    reasons = check_mapping(mapping, sheet.headings)
    if reasons:
        plan.problems.extend(Problem(1, None, None, reason) for reason in reasons)
        return plan
    _Checker(session, school_id, plan, actor).run(sheet.rows, progress)
    return plan


class _Checker:
    """One pass over the rows with the register loaded once (no query per row)."""

    def __init__(self, session: Session, school_id: int, plan: Plan, actor: User | None) -> None:
        self.session = session
        self.school_id = school_id
        self.plan = plan
        self.actor = actor
        self.columns = {key: i for i, key in enumerate(plan.mapping) if key is not None}
        known = [
            _Known(*row)
            for row in session.execute(
                select(*_KNOWN_COLUMNS).where(Device.school_id == school_id)
            ).all()
        ]
        self.by_tag = {d.asset_tag: d for d in known}
        self.by_serial = {d.serial: d for d in known}
        self.by_id = {d.id: d for d in known}
        self.slots = {
            (d.home_location_id, d.home_slot): d.id for d in known if d.home_slot is not None
        }
        self.homes: Counter[int] = Counter(
            d.home_location_id
            for d in known
            if d.home_location_id is not None and d.status is not DeviceStatus.DISPOSED
        )
        self.places = Places(locations(session, school_id))
        self.seen_tags: dict[str, int] = {}
        self.seen_serials: dict[str, int] = {}
        self.seen_devices: dict[int, int] = {}
        self.seen_slots: dict[tuple[int, int], int] = {}
        self.new_names: dict[str, str] = {}
        self.arrivals: dict[int, list[int]] = {}  # place id → rows moving a device in
        self.departures: Counter[int] = Counter()
        self.may_move = actor is None or actor.role is Role.SBM

    # -- helpers

    def _problem(self, row: int, key: str | None, message: str, value: str | None = None) -> None:
        self.plan.problems.append(self._at(row, key, message, value))

    def _warn(self, row: int, key: str | None, message: str, value: str | None = None) -> None:
        self.plan.warnings.append(self._at(row, key, message, value))

    def _at(self, row: int, key: str | None, message: str, value: str | None) -> Problem:
        index = self.columns.get(key) if key else None
        if index is None and key in ("make", "model"):
            index = self.columns.get("make_model")
        if index is None:
            return Problem(row, None, None, message, value)
        return Problem(row, column_letter(index), self.plan.headings[index], message, value)

    # -- the pass

    def run(self, rows: Sequence[tuple[int, list[str]]], progress: Progress | None) -> None:
        total = len(rows)
        width = len(self.plan.headings)
        other_schools = self._serials_elsewhere(rows)
        planned: list[PlannedRow] = []
        for done, (number, cells) in enumerate(rows, start=1):
            _notify(progress, "checking", done, total)
            if not any(c.strip() for c in cells):
                continue  # blank rows between blocks of devices are common
            self.plan.rows_read += 1
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                self._problem(
                    number,
                    None,
                    f"This row has {len(cells)} cells but there are {width} headings: a comma "
                    "inside a cell may have split it. Put that cell in quotes, or save the file "
                    "from Excel as CSV.",
                )
                continue
            result = self._row(number, cells, other_schools)
            if result is not None:
                planned.append(result)
        self._check_capacity()
        bad = set(self.plan.bad_rows)
        self.plan.rows = [r for r in planned if r.row not in bad]

    def _serials_elsewhere(self, rows: Sequence[tuple[int, list[str]]]) -> set[str]:
        """Serials in the file that another school has registered (serials are unique)."""
        index = self.columns["serial"]
        wanted = {
            normalise_serial(_unescape(cells[index]))
            for _, cells in rows
            if index < len(cells) and cells[index].strip()
        } - set(self.by_serial)
        found: set[str] = set()
        ordered = sorted(wanted)
        for start in range(0, len(ordered), CHUNK):
            found.update(
                self.session.scalars(
                    select(Device.serial).where(
                        Device.serial.in_(ordered[start : start + CHUNK]),
                        Device.school_id != self.school_id,
                    )
                ).all()
            )
        return found

    def _cells(self, number: int, cells: list[str]) -> tuple[dict[str, str], set[str]]:
        """The mapped cells as text, and the columns whose formula was refused."""
        values: dict[str, str] = {}
        refused: set[str] = set()
        for key, index in self.columns.items():
            value = _unescape((cells[index] if index < len(cells) else "").strip())
            values[key] = value if key == "notes" else value.strip()
            if not value.startswith(("=", "+", "@")):
                continue
            if key in FREE_TEXT:
                self._warn(
                    number,
                    key,
                    "This starts like a spreadsheet formula; Trolley keeps it as plain text and "
                    "never runs it.",
                    value,
                )
            else:
                # A value is needed here, and a formula's result is not in the file.
                self._problem(
                    number,
                    key,
                    "This cell holds a spreadsheet formula, not a value. Trolley never runs "
                    "formulas: type the value itself.",
                    value,
                )
                values[key] = ""
                refused.add(key)
        return values, refused

    def _row(self, number: int, cells: list[str], other_schools: set[str]) -> PlannedRow | None:
        """Check one row; its plan if it has no problems, else None (its problems recorded)."""
        before = len(self.plan.problems)
        text, refused = self._cells(number, cells)
        tag = text.get("asset_tag", "")
        serial = normalise_serial(text.get("serial", ""))
        make, model = text.get("make", ""), text.get("model", "")
        if text.get("make_model"):
            split_make, split_model = _split_make_model(text["make_model"])
            make, model = make or split_make, model or split_model
        for key, value, what in (
            ("asset_tag", tag, "an asset tag"),
            ("serial", text.get("serial", ""), "a serial number"),
            ("make", make, "a make"),
            ("model", model, "a model"),
        ):
            looks = _looks_like(value) if value else None
            if looks:
                self._problem(
                    number,
                    key,
                    f"This looks like {looks}, not {what}: are the columns in the right order?",
                    value,
                )
            elif not value and key not in refused:
                self._problem(
                    number,
                    key,
                    f"The {BY_KEY[key].heading.lower()} is empty; every device needs one.",
                )
        device = self._match(number, tag, serial, other_schools)
        fields = self._fields(number, text, tag, serial, make, model, device)
        home_id, slot, new_place = self._home(number, text, device)
        planned = self._decide(number, fields, device, home_id, slot, new_place)
        if planned.action != "unchanged":
            # A row that changes nothing writes nothing, so only rows that write are re-judged.
            self._rules(number, fields, before)
        if len(self.plan.problems) > before:
            return None
        if home_id is not None and home_id != (device.home_location_id if device else None):
            self.arrivals.setdefault(home_id, []).append(number)
            if device is not None and device.home_location_id is not None:
                self.departures[device.home_location_id] += 1
        return planned

    def _match(self, number: int, tag: str, serial: str, other_schools: set[str]) -> _Known | None:
        """The register's device for this row (by tag, else serial), and duplicate checks."""
        device = self.by_tag.get(tag) if tag else None
        by_serial = self.by_serial.get(serial) if serial else None
        if device is None:
            device = by_serial
        elif by_serial is not None and by_serial.id != device.id:
            self._problem(
                number,
                "serial",
                f"Serial number {serial} belongs to {by_serial.asset_tag} in the register, "
                f"not to {tag}.",
                serial,
            )
        if serial in other_schools:
            self._problem(
                number, "serial", f"Serial number {serial} is already registered in Trolley."
            )
        if tag and tag in self.seen_tags:
            self._problem(
                number,
                "asset_tag",
                f"Asset tag {tag} is also on row {self.seen_tags[tag]} of this file.",
                tag,
            )
        elif tag:
            self.seen_tags[tag] = number
        if serial and serial in self.seen_serials:
            self._problem(
                number,
                "serial",
                f"Serial number {serial} is also on row {self.seen_serials[serial]} of this file.",
                serial,
            )
        elif serial:
            self.seen_serials[serial] = number
        if device is None:
            return None
        if device.id in self.seen_devices:
            self._problem(
                number,
                None,
                f"This is the same device ({device.asset_tag}) as row "
                f"{self.seen_devices[device.id]}.",
            )
        else:
            self.seen_devices[device.id] = number
        if device.status is DeviceStatus.DISPOSED:
            self._problem(
                number,
                "asset_tag",
                f"{device.asset_tag} has been disposed of; an import cannot change it.",
                tag,
            )
        return device

    def _fields(
        self,
        number: int,
        text: Mapping[str, str],
        tag: str,
        serial: str,
        make: str,
        model: str,
        device: _Known | None,
    ) -> DeviceFields:
        """The row's facts, typed; columns the file lacks keep the register's values."""
        free: dict[str, str | None] = {}
        for key, value in (
            ("make", make),
            ("model", model),
            *((k, text.get(k, "")) for k in ("os_version", "supplier", "notes")),
        ):
            if len(value) > MAX_TEXT[key]:
                self._problem(number, key, f"This is longer than {MAX_TEXT[key]} characters.")
            free[key] = value or None
        fields = DeviceFields(
            asset_tag=tag,
            serial=serial,
            platform=self._platform(number, text, make, model, device),
            make=make,
            model=model,
            os_version=free["os_version"],
            purchase_date=self._date(number, "purchase_date", text, "a purchase date"),
            purchase_cost_pence=self._money(number, text),
            supplier=free["supplier"],
            warranty_until=self._date(number, "warranty", text, "a warranty date"),
            notes=free["notes"],
            status=self._status(number, text, device),
        )
        if device is not None:
            for key, attr in ATTRS.items():
                if key in self.columns or key in ("location", "slot", "status"):
                    continue
                if key in ("make", "model") and "make_model" in self.columns:
                    continue
                setattr(fields, attr, getattr(device, attr))
        return fields

    def _rules(self, number: int, fields: DeviceFields, before: int) -> None:
        """check_fields' own rules; a column already reported in this row is not reported twice."""
        reported = {(p.row, p.column) for p in self.plan.problems[before:] if p.column}
        check = check_fields(_RULES_ONLY, self.school_id, fields)
        for issue in check.errors:
            key = _CHECK_FIELD_KEYS.get(issue["field"], issue["field"])
            problem = self._at(number, key, issue["message"], None)
            if (problem.row, problem.column) not in reported:
                self.plan.problems.append(problem)
        for issue in check.warnings:
            key = _CHECK_FIELD_KEYS.get(issue["field"], issue["field"])
            note = self._at(number, key, issue["message"], getattr(fields, issue["field"], None))
            if (note.row, note.column) not in reported:
                self.plan.warnings.append(note)

    def _platform(
        self, number: int, text: Mapping[str, str], make: str, model: str, device: _Known | None
    ) -> Platform:
        value = text.get("platform", "")
        if value:
            platform = parse_platform(value)
            if platform is not None:
                return platform
            looks = _looks_like(value)
            self._problem(
                number,
                "platform",
                f"This looks like {looks}, not a platform: are the columns in the right order?"
                if looks
                else "Write iPad, Chromebook, Linux or Other.",
                value,
            )
            return Platform.OTHER
        guessed = guess_platform(make, model)
        if guessed is not None:
            return guessed
        if device is not None:
            return device.platform
        if make and model:
            self._warn(
                number,
                "platform",
                "Could not tell from the make and model whether this is an iPad or a "
                "Chromebook; it is recorded as “Other”.",
            )
        return Platform.OTHER

    def _status(self, number: int, text: Mapping[str, str], device: _Known | None) -> DeviceStatus:
        value = text.get("status", "")
        if not value:
            return device.status if device is not None else DeviceStatus.IN_SERVICE
        status = parse_status(value)
        if status is None:
            self._problem(
                number,
                "status",
                "Write one of: " + ", ".join(s.label for s in DeviceStatus) + ".",
                value,
            )
            return DeviceStatus.IN_SERVICE
        if device is None:
            if status is DeviceStatus.DISPOSED:
                self._problem(
                    number, "status", "A disposed device cannot be added to the register.", value
                )
            return status
        if status is not device.status:
            self._warn(
                number,
                "status",
                f"An import does not change a device's status ({device.status.label.lower()}); "
                "change it on the device page so the reason is recorded.",
                value,
            )
        return device.status

    def _date(self, number: int, key: str, text: Mapping[str, str], what: str) -> date | None:
        value = text.get(key, "")
        if not value:
            return None
        # Excel sometimes writes a time after the date ("01/09/2021 00:00").
        value = re.sub(r"\s+00:00(:00)?$", "", value)
        try:
            return parse_uk_date(value)
        except ValueError as exc:
            looks = _looks_like(value)
            if looks == "an amount of money":
                message = f"This looks like an amount of money, not {what}: are the columns in "
                message += "the right order?"
            elif "real date" in str(exc):
                message = "This is not a real date."
            else:
                message = "Write the date like 01/09/2021 or 1 Sept 2021."
            self._problem(number, key, message, value)
            return None

    def _money(self, number: int, text: Mapping[str, str]) -> int | None:
        value = text.get("cost", "")
        if not value:
            return None
        try:
            return parse_money(value)
        except ValueError:
            looks = _looks_like(value)
            self._problem(
                number,
                "cost",
                f"This looks like {looks}, not a cost: are the columns in the right order?"
                if looks
                else "Write the cost like £329.00.",
                value,
            )
            return None

    def _home(
        self, number: int, text: Mapping[str, str], device: _Known | None
    ) -> tuple[int | None, int | None, str | None]:
        """(home place id, slot, name of a place to create) for this row."""
        current = device.home_location_id if device is not None else None
        current_slot = device.home_slot if device is not None else None
        value = text.get("location", "")
        home_id, new_place = current, None
        if value:
            place, why = self.places.find(value)
            if why:
                self._problem(number, "location", why, value)
                return current, current_slot, None
            if place is not None:
                home_id = place.id
            elif re.search(r"[›>]", value):
                self._problem(
                    number, "location", "There is no place at that path in Places.", value
                )
                return current, current_slot, None
            else:
                # One new place per name, however its spelling varies in case and spaces.
                new_place = self.new_names.setdefault(_norm(value), " ".join(value.split()))
                home_id = None
                self.plan.missing_places.setdefault(new_place, []).append(number)
        moved = new_place is not None or home_id != current
        if "slot" in self.columns:
            slot_text = text.get("slot", "")
            slot = None
            if slot_text:
                if not slot_text.isdigit() or not 1 <= int(slot_text) <= 200:
                    self._problem(number, "slot", "Write the slot as a number from 1.", slot_text)
                    return home_id, None, new_place
                slot = int(slot_text)
        else:
            slot = None if moved else current_slot
        if moved and device is not None and not self.may_move:
            self._problem(
                number,
                "location",
                f"{device.asset_tag} lives somewhere else in the register. Only the school "
                "business manager changes where devices live: use “Move” on the device page.",
                value,
            )
        if slot is not None:
            self._check_slot(number, home_id, slot, device, new_place)
        return home_id, slot, new_place

    def _check_slot(
        self, number: int, home_id: int | None, slot: int, device: _Known | None, new: str | None
    ) -> None:
        place = self.places.by_id.get(home_id) if home_id is not None else None
        if place is None or place.capacity is None:
            name = place.name if place is not None else (new or "a device with no home")
            self._problem(number, "slot", f"{name} has no numbered slots.", str(slot))
            return
        if slot > place.capacity:
            self._problem(
                number,
                "slot",
                f"Slots in {place.name} run from 1 to {place.capacity}.",
                str(slot),
            )
            return
        holder = self.slots.get((place.id, slot))
        if holder is not None and (device is None or holder != device.id):
            self._problem(
                number,
                "slot",
                f"Slot {slot} in {place.name} is {self.by_id[holder].asset_tag}'s; free it first.",
                str(slot),
            )
        elif (place.id, slot) in self.seen_slots:
            self._problem(
                number,
                "slot",
                f"Slot {slot} in {place.name} is also given on row "
                f"{self.seen_slots[(place.id, slot)]}.",
                str(slot),
            )
        else:
            self.seen_slots[(place.id, slot)] = number

    def _check_capacity(self) -> None:
        for place_id, rows in self.arrivals.items():
            place = self.places.by_id[place_id]
            if place.capacity is None:
                continue
            room = place.capacity - self.homes[place_id] + self.departures[place_id]
            for number in rows[max(room, 0) :]:
                self._problem(
                    number,
                    "location",
                    f"{place.name} holds {place.capacity} devices and this file would put more "
                    "there.",
                )

    def _decide(
        self,
        number: int,
        fields: DeviceFields,
        device: _Known | None,
        home_id: int | None,
        slot: int | None,
        new_place: str | None,
    ) -> PlannedRow:
        values = {name: getattr(fields, name) for name in DeviceFields.__dataclass_fields__}
        values["home_location_id"], values["home_slot"] = home_id, slot
        if device is None:
            values["current_location_id"] = home_id
            return PlannedRow(number, fields.asset_tag, "new", None, values, new_place=new_place)
        changes = {
            name: (getattr(device, name), value)
            for name, value in values.items()
            if name != "status" and getattr(device, name) != value
        }
        if new_place is not None:
            changes["home_location_id"] = (device.home_location_id, None)
        return PlannedRow(
            number,
            fields.asset_tag,
            "update" if changes else "unchanged",
            device.id,
            {name: values[name] for name in changes},
            changes,
            new_place=new_place,
        )


# --- where new places go -------------------------------------------------------------------


def _resolve_parent(session: Session, school_id: int, plan: Plan) -> None:
    """Decide (and describe) where places named in the file but missing would be added."""
    if not plan.missing_places:
        return
    places = locations(session, school_id)
    allowed = ALLOWED_PARENTS[LocationKind.ROOM]
    chosen = plan.options.location_parent_id
    if chosen is not None:
        parent = next((p for p in places if p.id == chosen), None)
        if parent is None or parent.kind not in allowed:
            plan.problems.append(
                Problem(1, None, None, "New rooms can only go in a site or a building.")
            )
            return
    else:
        buildings = [p for p in places if p.kind is LocationKind.BUILDING]
        sites = [p for p in places if p.kind is LocationKind.SITE]
        parent = buildings[0] if len(buildings) == 1 else None
        parent = parent or (sites[0] if len(sites) == 1 and not buildings else None)
        if parent is None and (buildings or sites):
            plan.places_parent = None
            if plan.options.create_locations:
                plan.problems.append(
                    Problem(1, None, None, "Choose the site or building the new rooms go in.")
                )
            return
    if parent is None:
        plan.places_parent = "a new site named after the school"
    else:
        plan.places_parent_id = parent.id
        plan.places_parent = location_path(parent)


def _missing_place_problems(plan: Plan) -> None:
    if plan.options.create_locations:
        return
    where = f" (as a room in {plan.places_parent})" if plan.places_parent else ""
    for name, rows in plan.missing_places.items():
        for number in rows:
            column = plan.mapping.index("location")
            plan.problems.append(
                Problem(
                    number,
                    column_letter(column),
                    plan.headings[column],
                    f"“{name}” is not in Places yet. Choose “Add missing places” to add it"
                    f"{where}, or correct the name.",
                    name,
                )
            )
    bad = set(plan.bad_rows)
    plan.rows = [r for r in plan.rows if r.row not in bad]


def preview(
    session: Session,
    school_id: int,
    data: bytes,
    *,
    actor: User | None,
    options: Options | None = None,
    filename: str = "import.csv",
    progress: Progress | None = None,
) -> Plan:
    """Read and check a file without changing anything."""
    options = options or Options()
    if options.create_locations and actor is not None:
        if not has_permission(actor.role, Permission.LOCATIONS_WRITE):
            raise Forbidden("Your role cannot add places; ask the school business manager.")
    sheet = read_sheet(data)
    plan = plan_import(
        session,
        school_id,
        sheet,
        actor=actor,
        options=options,
        filename=filename,
        progress=progress,
    )
    _resolve_parent(session, school_id, plan)
    _missing_place_problems(plan)
    plan.problems.sort(key=lambda p: (p.row, p.column or ""))
    plan.warnings.sort(key=lambda p: (p.row, p.column or ""))
    return plan


# --- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What an import changed."""

    created: int
    updated: int
    unchanged: int
    places_created: list[str]


def _plain(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Platform | DeviceStatus):
        return value.value
    return value


def apply_plan(
    session: Session,
    school_id: int,
    plan: Plan,
    *,
    actor: User | None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write a checked plan in bulk (joins the caller's transaction; the caller commits)."""
    if not plan.ok:
        raise ValidationFailed(
            f"Nothing was imported: {len(plan.bad_rows)} row(s) have problems.",
            details=[p.as_dict() for p in plan.problems],
        )
    actor_id = actor.id if actor else None
    created_places = _create_places(session, school_id, plan, actor)
    now = utcnow()
    source = plan.filename[:120]
    new_rows = [r for r in plan.rows if r.action == "new"]
    changed_rows = [r for r in plan.rows if r.action == "update"]
    total = len(new_rows) + len(changed_rows)
    done = 0
    events: list[dict[str, Any]] = []
    for start in range(0, len(new_rows), CHUNK):
        chunk = new_rows[start : start + CHUNK]
        for row in chunk:
            if row.new_place is not None:
                place_id = created_places[_norm(row.new_place)]
                row.values["home_location_id"] = row.values["current_location_id"] = place_id
        # RETURNING the tag with the id: batched, whatever order the database returns rows in.
        ids = session.execute(
            insert(Device).returning(Device.id, Device.asset_tag),
            [{"school_id": school_id, **r.values} for r in chunk],
        ).all()
        for device_id, _tag in ids:
            events.append(
                {
                    "school_id": school_id,
                    "device_id": device_id,
                    "at": now,
                    "kind": "created",
                    "summary": f"Added to the register from {source}",
                    "actor_id": actor_id,
                    "details": {"import": source},
                }
            )
        done += len(chunk)
        _notify(progress, "importing", done, total)
    # One UPDATE statement per set of changed columns, executed for many devices at once.
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in changed_rows:
        if row.new_place is not None:
            place_id = created_places[_norm(row.new_place)]
            row.values["home_location_id"] = place_id
            row.changes["home_location_id"] = (row.changes["home_location_id"][0], place_id)
        by_columns.setdefault(tuple(sorted(row.values)), []).append(
            {"id": row.device_id, "updated_at": now, **row.values}
        )
        summary = "Details changed by import: " + ", ".join(
            name.replace("_", " ") for name in row.changes
        )
        events.append(
            {
                "school_id": school_id,
                "device_id": row.device_id,
                "at": now,
                "kind": "moved" if "home_location_id" in row.changes else "edited",
                "summary": summary[:500],
                "actor_id": actor_id,
                "details": {
                    "import": source,
                    "changes": {k: [_plain(a), _plain(b)] for k, (a, b) in row.changes.items()},
                },
            }
        )
    for params in by_columns.values():
        for start in range(0, len(params), CHUNK):
            session.execute(update(Device), params[start : start + CHUNK])
            done += len(params[start : start + CHUNK])
            _notify(progress, "importing", done, total)
    for start in range(0, len(events), CHUNK):
        session.execute(insert(DeviceEvent), events[start : start + CHUNK])
    result = ImportResult(
        created=len(new_rows),
        updated=len(changed_rows),
        unchanged=plan.count("unchanged"),
        places_created=sorted(p.name for p in _places_by_id(session, created_places)),
    )
    if result.created or result.updated or result.places_created:
        record(
            session,
            actor=actor,
            action="devices.imported",
            school_id=school_id,
            target_type="import",
            target_id=source,
            details={
                "new": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "places_created": result.places_created,
            },
        )
    log.info(
        "import of %s into school %s: %s new, %s updated, %s unchanged",
        source,
        school_id,
        result.created,
        result.updated,
        result.unchanged,
    )
    return result


def _places_by_id(session: Session, created: Mapping[str, int]) -> list[Location]:
    return [session.get_one(Location, place_id) for place_id in set(created.values())]


def _create_places(
    session: Session, school_id: int, plan: Plan, actor: User | None
) -> dict[str, int]:
    """Add the rooms the file names but Places lacks; returns their ids by normalised name."""
    if not plan.missing_places:
        return {}
    parent = session.get(Location, plan.places_parent_id) if plan.places_parent_id else None
    if parent is None:
        school = session.get_one(School, school_id)
        parent = add_location(
            session, actor=actor, school_id=school_id, kind=LocationKind.SITE, name=school.name
        )
    made = {}
    for name in plan.missing_places:
        room = add_location(
            session,
            actor=actor,
            school_id=school_id,
            kind=LocationKind.ROOM,
            name=name[:120],
            parent=parent,
        )
        made[_norm(name)] = room.id
    return made


def import_file(
    session: Session,
    school_id: int,
    data: bytes,
    *,
    actor: User | None,
    options: Options | None = None,
    filename: str = "import.csv",
    dry_run: bool = False,
    progress: Progress | None = None,
) -> tuple[Plan, ImportResult | None]:
    """Check a file and, if every row is good and this is not a dry run, import it and commit."""
    plan = preview(
        session,
        school_id,
        data,
        actor=actor,
        options=options,
        filename=filename,
        progress=progress,
    )
    if not plan.ok or dry_run:
        session.rollback()
        return plan, None
    return plan, _write(session, school_id, plan, actor, progress)


def _write(
    session: Session,
    school_id: int,
    plan: Plan,
    actor: User | None,
    progress: Progress | None,
    after: Callable[[], None] | None = None,
) -> ImportResult:
    """Apply a plan and commit, or roll everything back: nothing is ever half-imported."""
    try:
        result = apply_plan(session, school_id, plan, actor=actor, progress=progress)
        if after is not None:
            after()
        session.commit()
    except IntegrityError as exc:
        # Someone changed the register between the check and the write (another import).
        session.rollback()
        log.warning("import of %s refused by the database: %s", plan.filename, exc.orig)
        raise Conflict(
            "The register changed while this file was being imported, so nothing was "
            "imported. Check the file again."
        ) from exc
    except BaseException:
        session.rollback()
        raise
    return result


# --- uploads kept between preview and import ----------------------------------------------


def _safe_filename(name: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    return (base or "upload.csv")[:255]


def start_upload(
    session: Session, actor: User, *, filename: str, data: bytes, now: datetime | None = None
) -> ImportUpload:
    """Keep an uploaded file (already checked to be CSV) for its preview and import."""
    read_sheet(data)
    now = now or utcnow()
    upload = ImportUpload(
        id=secrets.token_urlsafe(24),
        school_id=actor.school_id,
        user_id=actor.id,
        filename=_safe_filename(filename),
        content=data,
        mapping=None,
        create_locations=False,
        location_parent_id=None,
        created_at=now,
        expires_at=now + UPLOAD_LIFETIME,
    )
    session.add(upload)
    session.commit()
    return upload


def get_upload(
    session: Session, actor: User, upload_id: str, *, now: datetime | None = None
) -> ImportUpload:
    """An upload of this person's, in their school, that has not expired."""
    upload = session.scalar(
        select(ImportUpload).where(
            ImportUpload.id == upload_id,
            ImportUpload.school_id == actor.school_id,
            ImportUpload.user_id == actor.id,
        )
    )
    if upload is None or upload.expires_at <= (now or utcnow()):
        raise NotFound(
            "That upload is not here: uploads are kept for "
            f"{UPLOAD_LIFETIME.seconds // 3600} hours. Upload the file again."
        )
    return upload


def options_of(upload: ImportUpload) -> Options:
    return Options(
        mapping=list(upload.mapping) if upload.mapping is not None else None,
        create_locations=upload.create_locations,
        location_parent_id=upload.location_parent_id,
    )


def choose_options(
    session: Session,
    actor: User,
    upload: ImportUpload,
    *,
    mapping: Sequence[str | None] | None = None,
    create_locations: bool | None = None,
    location_parent_id: int | None = None,
) -> ImportUpload:
    """Save the person's choice of columns and whether to add missing places."""
    if upload.committed_at is not None:
        raise Conflict("This file has already been imported.")
    if mapping is not None:
        headings = read_sheet(upload.content).headings
        cleaned = [m or None for m in mapping]
        if len(cleaned) != len(headings) or any(m is not None and m not in BY_KEY for m in cleaned):
            # Other mistakes (a field chosen twice, none for the serial) show on the preview.
            raise ValidationFailed(check_mapping(cleaned, headings)[0])
        upload.mapping = cleaned
    if create_locations is not None:
        if create_locations and not has_permission(actor.role, Permission.LOCATIONS_WRITE):
            raise Forbidden("Your role cannot add places; ask the school business manager.")
        upload.create_locations = create_locations
    if location_parent_id is not None:
        parent = session.scalar(
            select(Location).where(
                Location.id == location_parent_id, Location.school_id == actor.school_id
            )
        )
        if parent is None or parent.kind not in ALLOWED_PARENTS[LocationKind.ROOM]:
            raise ValidationFailed("New rooms can only go in a site or a building of your school.")
        upload.location_parent_id = parent.id
    session.commit()
    return upload


def preview_upload(
    session: Session, actor: User, upload: ImportUpload, progress: Progress | None = None
) -> Plan:
    """Check a kept upload against the register as it is now; changes nothing."""
    return preview(
        session,
        actor.school_id,
        upload.content,
        actor=actor,
        options=options_of(upload),
        filename=upload.filename,
        progress=progress,
    )


def commit_upload(
    session: Session, actor: User, upload: ImportUpload, progress: Progress | None = None
) -> tuple[Plan, ImportResult]:
    """Import a kept upload, all or nothing, re-checked at this moment; commits once."""
    if upload.committed_at is not None:
        raise Conflict("This file has already been imported.")
    plan = preview_upload(session, actor, upload, progress)
    if not plan.ok:
        raise ValidationFailed(
            f"Nothing was imported: {len(plan.bad_rows)} row(s) have problems. Correct them in "
            "your spreadsheet and upload it again.",
            details=[p.as_dict() for p in plan.problems],
        )

    def done() -> None:
        upload.committed_at = utcnow()
        upload.content = b""  # the register holds it now; nothing to keep

    return plan, _write(session, actor.school_id, plan, actor, progress, after=done)


def purge_expired_uploads(session: Session, now: datetime) -> int:
    """Delete uploads past their time; safe to run twice."""
    removed = session.execute(delete(ImportUpload).where(ImportUpload.expires_at <= now))
    session.commit()
    count = int(getattr(removed, "rowcount", 0) or 0)
    if count:
        log.info("removed %s expired import uploads", count)
    return count


# --- export --------------------------------------------------------------------------------

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
