"""How a file writes dates and money, decided from whole columns before any row is read."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from server.devices.services.parsing import (
    DateOrder,
    DecimalMark,
    money_mark,
    numeric_date_parts,
)

DATE_KEYS = ("purchase_date", "warranty")
ORDER_WORDS: dict[DateOrder, str] = {"dmy": "day first", "mdy": "month first"}
MARK_WORDS: dict[DecimalMark, str] = {
    ".": "a decimal point (1,329.00)",
    ",": "a decimal comma (1.329,00)",
}
SHOWN_ROWS = 5

Report = Callable[[int, str, str, str], None]
"""Called as report(row, column key, message, value) for a row that contradicts its column."""


def rows_text(rows: Sequence[int]) -> str:
    """'row 4', 'rows 2, 3', 'rows 2, 3, 4, 5, 6, …' as a person reads them."""
    shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS])
    more = ", …" if len(rows) > SHOWN_ROWS else ""
    return f"row {shown}" if len(rows) == 1 else f"rows {shown}{more}"


def without_time(value: str) -> str:
    """Excel sometimes writes a time after the date ('01/09/2021 00:00')."""
    return re.sub(r"\s+00:00(:00)?$", "", value.strip())


class Conventions:
    """Each date column's order and the cost column's decimal mark, for the whole file."""

    def __init__(self, default_decimal: DecimalMark) -> None:
        self.date_order: dict[str, DateOrder] = {}
        self.decimal: DecimalMark = default_decimal
        self.described: dict[str, str] = {}  # column key → words for the summary
        self.contradicted: set[tuple[int, str]] = set()  # (row, column key) already reported

    def decide(
        self,
        columns: dict[str, int],
        rows: Sequence[tuple[int, list[str]]],
        report: Report,
    ) -> None:
        """Read every date and cost once; rows that contradict their column are reported."""

        def noted(row: int, key: str, message: str, value: str) -> None:
            self.contradicted.add((row, key))
            report(row, key, message, value)

        decided: dict[str, DateOrder | None] = {}
        present: set[str] = set()
        for key in DATE_KEYS:
            if key in columns:
                decided[key] = self._date_column(key, columns[key], rows, noted, present)
        fallback: DateOrder = next((o for o in decided.values() if o is not None), "dmy")
        for key, order in decided.items():
            self.date_order[key] = order or fallback
            if key in present:
                words = "day-first" if self.date_order[key] == "dmy" else "month-first"
                self.described[key] = f"dates read {words}" + (
                    "" if order else " (no date in the column settles it)"
                )
        if "cost" in columns:
            self._cost_column(columns["cost"], rows, noted)

    def _date_column(
        self,
        key: str,
        index: int,
        rows: Sequence[tuple[int, list[str]]],
        report: Report,
        present: set[str],
    ) -> DateOrder | None:
        seen: dict[DateOrder, list[tuple[int, str]]] = {"dmy": [], "mdy": []}
        for number, cells in rows:
            value = without_time(cells[index]) if index < len(cells) else ""
            if value:
                present.add(key)
            parts = numeric_date_parts(value)
            if parts is None:
                continue
            first, second = parts
            if first > 12 >= second:
                seen["dmy"].append((number, value))
            elif second > 12 >= first:
                seen["mdy"].append((number, value))
        if seen["dmy"] and seen["mdy"]:
            # The fewer are the odd ones out; on a tie the UK's day first stands.
            odd: DateOrder = "mdy" if len(seen["mdy"]) <= len(seen["dmy"]) else "dmy"
            usual: DateOrder = "dmy" if odd == "mdy" else "mdy"
            others = rows_text([n for n, _ in seen[usual]])
            for number, value in seen[odd]:
                report(
                    number,
                    key,
                    f"This date is written {ORDER_WORDS[odd]}, but {others} of this column "
                    f"write the {ORDER_WORDS[usual]}, so Trolley cannot tell how to read the "
                    "others. Write every date in the column the same way.",
                    value,
                )
            return usual
        if seen["mdy"]:
            return "mdy"
        if seen["dmy"]:
            return "dmy"
        return None

    def _cost_column(
        self, index: int, rows: Sequence[tuple[int, list[str]]], report: Report
    ) -> None:
        seen: dict[DecimalMark, list[tuple[int, str]]] = {".": [], ",": []}
        any_value = False
        for number, cells in rows:
            value = cells[index].strip() if index < len(cells) else ""
            if not value:
                continue
            any_value = True
            mark = money_mark(value)
            if mark is not None:
                seen[mark].append((number, value))
        if not any_value:
            return
        if seen["."] and seen[","]:
            odd: DecimalMark = "," if len(seen[","]) <= len(seen["."]) else "."
            usual: DecimalMark = "." if odd == "," else ","
            others = rows_text([n for n, _ in seen[usual]])
            for number, value in seen[odd]:
                report(
                    number,
                    "cost",
                    f"This amount is written with {MARK_WORDS[odd]}, but {others} of this "
                    f"column use {MARK_WORDS[usual]}. Write every amount the same way.",
                    value,
                )
            self.decimal = usual
        elif seen[","]:
            self.decimal = ","
        elif seen["."]:
            self.decimal = "."
        self.described["cost"] = f"amounts read with {MARK_WORDS[self.decimal]}"
