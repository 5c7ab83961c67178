"""The spreadsheet's columns: what each can hold, and the headings schools give them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum

from server.devices.models import Platform
from server.devices.services.parsing import format_pounds


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
    # Read only, as Snipe-IT and other asset systems export them.
    _column(
        "warranty_months",
        "Warranty (months)",
        "warranty months|warranty length|warranty length months|warranty lenghts months|"
        "warranty period|warranty period months|warranty term",
    ),
    _column("category", "Category", "category|asset category|device category"),
)
BY_KEY = {c.key: c for c in COLUMNS}
READ_ONLY = frozenset({"make_model", "warranty_months", "category"})
EXPORT_KEYS = tuple(c.key for c in COLUMNS if c.key not in READ_ONLY)
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
# Device attribute behind each column (make_model fills make and model; warranty_months fills
# warranty_until from the purchase date; category only hints at the platform).
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
# What the preview calls each device attribute when it shows a change.
CHANGE_LABELS = {attr: BY_KEY[key].heading.removesuffix(" (£)") for key, attr in ATTRS.items()}
CHANGE_LABELS["home_location_id"] = "Lives in"
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
    "chromebooks": Platform.CHROMEOS,
    "ipads": Platform.IPADOS,
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


def describe_value(attr: str, value: object) -> str:
    """A device attribute's value as a person reads it: '—', '01/09/2021', '£1,329.00'."""
    if value is None or value == "":
        return "—"
    if attr == "purchase_cost_pence" and isinstance(value, int):
        return format_pounds(value)
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, Platform):
        return PLATFORM_LABELS[value]
    if isinstance(value, Enum):
        return str(getattr(value, "label", value.value))
    return str(value)


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


IGNORE = ("ignore", "none", "nothing", "-")


def field_named(name: str) -> str | None:
    """'Serial', 'serial number', 'S/N' or 'serial' → 'serial'; 'ignore' → None."""
    wanted = normalise_heading(name)
    if wanted in IGNORE or name.strip() in IGNORE:
        return None
    for column in COLUMNS:
        if wanted in (column.key.replace("_", " "), normalise_heading(column.heading)):
            return column.key
    for column in COLUMNS:
        if wanted in column.synonyms:
            return column.key
    choices = ", ".join(c.heading for c in COLUMNS)
    raise ValueError(f"“{name}” is not something Trolley keeps; choose one of: {choices}.")


def apply_column_map(
    headings: Sequence[str], pairs: Sequence[str], start: Sequence[str | None] | None = None
) -> list[str | None]:
    """Trolley's guess (or `start`) with 'Field=Heading' choices laid over it."""
    mapping = list(start) if start is not None else guess_mapping(headings)
    names = [normalise_heading(h) for h in headings]
    for pair in pairs:
        field, sep, heading = pair.partition("=")
        if not sep or not heading.strip():
            raise ValueError(
                f"“{pair}” should be written Field=Heading, e.g. Serial=Serial Number."
            )
        key = field_named(field)
        matches = [i for i, n in enumerate(names) if n == normalise_heading(heading)]
        if not matches:
            raise ValueError(
                f"The file has no column headed “{heading.strip()}”; its headings are: "
                + ", ".join(f"“{h}”" for h in headings if h)
                + "."
            )
        if key is not None:
            mapping = [None if m == key else m for m in mapping]
        mapping[matches[0]] = key
    return mapping


def column_letter(index: int) -> str:
    """0 → 'A', 25 → 'Z', 26 → 'AA', as a spreadsheet names its columns."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
