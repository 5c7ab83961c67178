"""Money and dates as school staff type them in forms and spreadsheets."""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Literal

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

DecimalMark = Literal[".", ","]
DateOrder = Literal["dmy", "mdy"]

_NOT_MONEY = "is not an amount of money like £1,329.00"
# Spaces (including the no-break spaces spreadsheets put between thousands), £ and GBP.
_MONEY_NOISE = re.compile(r"[\s\u00a0\u202f£]|GBP", re.IGNORECASE)
# One mark followed by exactly three digits: thousands in one convention, nothing in the other.
_THREE_AFTER_ONE_MARK = re.compile(r"(\d{1,3})([.,])(\d{3})")


def _money_text(text: str) -> str:
    return _MONEY_NOISE.sub("", text)


def _amount_pattern(decimal: DecimalMark) -> re.Pattern[str]:
    thousands = re.escape("," if decimal == "." else ".")
    return re.compile(
        rf"(\d{{1,9}}|\d{{1,3}}(?:{thousands}\d{{3}})+)(?:{re.escape(decimal)}(\d{{1,2}}))?"
    )


_AMOUNT: dict[DecimalMark, re.Pattern[str]] = {".": _amount_pattern("."), ",": _amount_pattern(",")}


def _read_money(cleaned: str, decimal: DecimalMark) -> int | None:
    """Pence if `cleaned` is a well-formed amount with `decimal` marking pence, else None."""
    match = _AMOUNT[decimal].fullmatch(cleaned)
    if match is None:
        return None
    pounds = int(re.sub(r"\D", "", match.group(1)))
    pence = int((match.group(2) or "0").ljust(2, "0"))
    return pounds * 100 + pence


def money_mark(text: str) -> DecimalMark | None:
    """The decimal mark an amount settles ('.' or ','), or None if it reads the same both ways."""
    cleaned = _money_text(text)
    if _THREE_AFTER_ONE_MARK.fullmatch(cleaned):
        return None  # '1.329' or '1,329': thousands in one convention, ambiguous in the other
    point, comma = _read_money(cleaned, "."), _read_money(cleaned, ",")
    if point is not None and comma is None:
        return "."
    if comma is not None and point is None:
        return ","
    return None


def parse_money(text: str, decimal: DecimalMark | None = None) -> int:
    """'£1,329.00', '1329', '1.329,00', '329,00' → pence, exactly (no floating point)."""
    # `decimal` is a file column's convention. Without one (a form field) either mark is read
    # where the amount settles it, and the UK's point decides an amount that does not.
    cleaned = _money_text(text)
    if not cleaned or not re.fullmatch(r"[\d.,]+", cleaned):
        raise ValueError(f"{text.strip()!r} {_NOT_MONEY}")
    three = _THREE_AFTER_ONE_MARK.fullmatch(cleaned)
    if three is not None:
        whole = int(three.group(1) + three.group(3)) * 100
        if three.group(2) != (decimal or "."):
            return whole  # the mark can only be separating thousands here
        small = int(three.group(1)) * 100 + round(int(three.group(3)) / 10)
        raise ValueError(
            f"{text.strip()!r} is not an amount of money Trolley can be sure of: it would be "
            f"read as {format_pounds(whole)}, but “{three.group(2)}” marks pence "
            f"here, so it may mean {format_pounds(small)}. Write {format_pounds(whole)} or "
            f"{format_pounds(small)}."
        )
    if decimal is not None:
        found = _read_money(cleaned, decimal)
        if found is not None:
            return found
        other: DecimalMark = "," if decimal == "." else "."
        elsewhere = _read_money(cleaned, other)
        if elsewhere is not None:
            raise ValueError(
                f"{text.strip()!r} is written with a decimal {_MARK_NAMES[other]}, but this "
                f"column uses a decimal {_MARK_NAMES[decimal]}: it would be read as "
                f"{format_pounds(elsewhere)}."
            )
        raise ValueError(f"{text.strip()!r} {_NOT_MONEY}")
    readings = {r for r in (_read_money(cleaned, "."), _read_money(cleaned, ",")) if r is not None}
    if len(readings) != 1:
        raise ValueError(f"{text.strip()!r} {_NOT_MONEY}")
    return readings.pop()


_MARK_NAMES = {".": "point", ",": "comma"}


def format_pounds(pence: int | None) -> str:
    """132900 → '£1,329.00', as every page, form and e-mail shows money; None → '—'."""
    if pence is None:
        return "—"
    pounds, rest = divmod(pence, 100)
    return f"£{pounds:,}.{rest:02d}"


class ImpossibleDate(ValueError):
    """A date written in a date's shape that names no day on the calendar."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r} is not a real date: {reason}")
        self.reason = reason


_NUMERIC_DATE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})")
_WORD_DATE = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[\s-]+([A-Za-z]+)\.?,?[\s-]+(\d{4}|\d{2})")


def numeric_date_parts(text: str) -> tuple[int, int] | None:
    """The two small numbers of a date like 4/5/16, in the order written, else None."""
    match = _NUMERIC_DATE.fullmatch(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _year(text: str) -> int:
    year = int(text)
    return year + 2000 if year < 100 else year


def _real_date(text: str, year: int, month: int, day: int) -> date:
    if not 1 <= month <= 12:
        raise ImpossibleDate(text, f"{month} is not a month (months run from 1 to 12)")
    if day == 0:
        raise ImpossibleDate(text, "there is no day 0 in a month")
    days = calendar.monthrange(year, month)[1]
    if day > days:
        raise ImpossibleDate(
            text, f"{calendar.month_name[month]} {year} has {days} days, not {day}"
        )
    return date(year, month, day)


def parse_uk_date(text: str, order: DateOrder = "dmy") -> date:
    """'01/09/2021', '1/9/21', '1 Sept 2021', '01-Sep-21', '2021-09-01' → a date."""
    # Day first, as in the UK, unless `order` says the file puts the month first (as American
    # software, Snipe-IT among it, does).
    value = text.strip()
    iso = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value)
    if iso:
        return _real_date(value, int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    numeric = _NUMERIC_DATE.fullmatch(value)
    if numeric:
        first, second = int(numeric.group(1)), int(numeric.group(2))
        day, month = (first, second) if order == "dmy" else (second, first)
        return _real_date(value, _year(numeric.group(3)), month, day)
    words = _WORD_DATE.fullmatch(value)
    if words and words.group(2).lower() in MONTHS:
        month = MONTHS[words.group(2).lower()]
        return _real_date(value, _year(words.group(3)), month, int(words.group(1)))
    raise ValueError(f"{value!r} is not a date like 01/09/2021 or 1 Sept 2021")
