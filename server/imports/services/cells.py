"""What one row's cells hold: tags, dates, costs, platforms and statuses, each checked."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import date
from typing import cast

from sqlalchemy.orm import Session

from server.devices.models import DeviceStatus, Platform
from server.devices.services import DeviceFields, check_fields
from server.devices.services.parsing import ImpossibleDate, parse_money, parse_uk_date
from server.imports.pages import Plan, Problem
from server.imports.services.columns import (
    _CHECK_FIELD_KEYS,
    ATTRS,
    FORMULA_START,
    FREE_TEXT,
    MAKERS,
    MAX_TEXT,
    PLATFORM_NAMES,
    column_letter,
    normalise_heading,
)
from server.imports.services.conventions import Conventions, without_time
from server.imports.services.shared import _Known


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


# Other asset systems' status labels (Snipe-IT's defaults) in the register's words.
STATUS_NAMES = {
    "ready to deploy": DeviceStatus.IN_STOCK,
    "pending": DeviceStatus.IN_STOCK,
    "deployable": DeviceStatus.IN_STOCK,
    "deployed": DeviceStatus.IN_SERVICE,
    "in use": DeviceStatus.IN_SERVICE,
    "out for repair": DeviceStatus.IN_REPAIR,
    "out for diagnostics": DeviceStatus.IN_REPAIR,
    "lost stolen": DeviceStatus.LOST,
}


def parse_status(text: str) -> DeviceStatus | None:
    words = normalise_heading(text)
    name = words.replace(" ", "_")
    return next((s for s in DeviceStatus if s.value == name), None) or STATUS_NAMES.get(words)


def add_months(start: date, months: int) -> date:
    """1 April 2016 + 24 months → 1 April 2018 (the last day of a shorter month if need be)."""
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    days = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, days))


class _RowReader:
    """One row's cells read into a device's facts; each problem is noted against its cell."""

    school_id: int
    plan: Plan
    columns: dict[str, int]
    conventions: Conventions

    def _problem(self, row: int, key: str | None, message: str, value: str | None = None) -> None:
        self.plan.problems.append(self._at(row, key, message, value))

    def _warn(
        self, row: int, key: str | None, message: str, value: str | None = None, kind: str = ""
    ) -> None:
        self.plan.warnings.append(self._at(row, key, message, value, kind))

    def _at(
        self, row: int, key: str | None, message: str, value: str | None, kind: str = ""
    ) -> Problem:
        index = self.columns.get(key) if key else None
        if index is None and key in ("make", "model"):
            index = self.columns.get("make_model")
        if index is None and key == "warranty":
            index = self.columns.get("warranty_months")
        if index is None:
            return Problem(row, None, None, message, value, kind)
        return Problem(row, column_letter(index), self.plan.headings[index], message, value, kind)

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
        purchase_date = self._date(number, "purchase_date", text, "a purchase date")
        fields = DeviceFields(
            asset_tag=tag,
            serial=serial,
            platform=self._platform(number, text, make, model, device),
            make=make,
            model=model,
            os_version=free["os_version"],
            purchase_date=purchase_date,
            purchase_cost_pence=self._money(number, text),
            supplier=free["supplier"],
            warranty_until=self._date(number, "warranty", text, "a warranty date")
            or self._warranty_months(number, text, purchase_date),
            notes=free["notes"],
            status=self._status(number, text, device),
        )
        if device is not None:
            for key, attr in ATTRS.items():
                # Platform is decided from the row itself (_platform), never copied.
                if key in self.columns or key in ("location", "slot", "status", "platform"):
                    continue
                if key in ("make", "model") and "make_model" in self.columns:
                    continue
                if key == "warranty" and "warranty_months" in self.columns:
                    continue
                setattr(fields, attr, getattr(device, attr))
        return fields

    def _warranty_months(
        self, number: int, text: Mapping[str, str], purchased: date | None
    ) -> date | None:
        """A warranty given in months (as Snipe-IT keeps it) runs from the purchase date."""
        value = text.get("warranty_months", "")
        if not value:
            return None
        if not value.isdigit() or int(value) > 240:
            self._problem(
                number, "warranty_months", "Write the warranty as months, such as 24.", value
            )
            return None
        if purchased is None:
            self._problem(
                number,
                "warranty_months",
                "A warranty in months needs the purchase date it runs from.",
                value,
            )
            return None
        return add_months(purchased, int(value))

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
        category = parse_platform(text["category"]) if text.get("category") else None
        guessed = category or guess_platform(make, model)
        if guessed is not None:
            return guessed
        if device is not None and (make, model) == (device.make, device.model):
            return device.platform  # the same device as before: what the register knew stands
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
                kind="status_kept",
            )
        return device.status

    def _date(self, number: int, key: str, text: Mapping[str, str], what: str) -> date | None:
        value = without_time(text.get(key, ""))
        if not value or (number, key) in self.conventions.contradicted:
            return None
        order = self.conventions.date_order.get(key, "dmy")
        try:
            return parse_uk_date(value, order)
        except ImpossibleDate as exc:
            self._problem(number, key, f"This is not a real date: {exc.reason}.", value)
        except ValueError:
            looks = _looks_like(value)
            if looks == "an amount of money":
                message = f"This looks like an amount of money, not {what}: are the columns in "
                message += "the right order?"
            else:
                message = "Write the date like 01/09/2021 or 1 Sept 2021."
            self._problem(number, key, message, value)
        return None

    def _money(self, number: int, text: Mapping[str, str]) -> int | None:
        value = text.get("cost", "")
        if not value or (number, "cost") in self.conventions.contradicted:
            return None
        try:
            return parse_money(value, self.conventions.decimal)
        except ValueError as exc:
            looks = _looks_like(value)
            if looks == "a date":
                message = "This looks like a date, not a cost: are the columns in the right order?"
            elif "would be read as" in str(exc):
                message = "This amount is ambiguous: " + str(exc).split(": ", 1)[1]
            else:
                message = "Write the cost like £329.00."
            self._problem(number, "cost", message, value)
            return None
