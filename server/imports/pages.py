"""What the import's preview page shows: the plan for each row and every problem found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SHOWN_ROWS = 5  # rows listed for each kind of note


@dataclass(frozen=True)
class Problem:
    """Something in one cell (or row) of the file, by row number and column."""

    row: int
    column: str | None  # the column letter, A, B, …
    heading: str | None  # the file's heading for that column
    message: str
    value: str | None = None
    kind: str = ""  # notes of one kind are summarised together (empty: by their message)

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
    shown: list[tuple[str, str, str]] = field(default_factory=list)  # (what, before, after)


@dataclass(frozen=True)
class RetagOffer:
    """A row whose new asset tag carries a device's serial: re-tag it only if the person says."""

    row: int
    asset_tag: str  # the file's new tag
    current_tag: str  # the register's tag for that serial


@dataclass(frozen=True)
class WarningGroup:
    """Notes of one kind, counted, with the first few rows they are on."""

    message: str
    heading: str | None
    column: str | None
    count: int
    rows: list[int]

    def __str__(self) -> str:
        where = f", column {self.column} ({self.heading})" if self.column else ""
        if self.count == 1:
            return f"Row {self.rows[0]}{where}: {self.message}"
        more = ", …" if self.count > len(self.rows) else ""
        listed = ", ".join(map(str, self.rows))
        return f"{self.count:,} rows ({listed}{more}){where}: {self.message}"


@dataclass
class Options:
    """What the person chose on the preview: columns, heading row, re-tags and new places."""

    mapping: list[str | None] | None = None
    create_locations: bool = False
    location_parent_id: int | None = None
    header_row: int | None = None  # None: Trolley finds the headings
    retag: list[str] = field(default_factory=list)  # new asset tags allowed to re-tag a device


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
    header_row: int = 1
    encoding_note: str | None = None
    conventions: dict[str, str] = field(default_factory=dict)  # heading → how it was read
    retag_offers: list[RetagOffer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems})

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def convention_summary(self) -> str:
        """'Purchase Date: dates read day-first; Cost: amounts read with a decimal point …'."""
        return "; ".join(f"{heading}: {words}" for heading, words in self.conventions.items())

    @property
    def warning_groups(self) -> list[WarningGroup]:
        """Notes summarised by kind and column, each with a count and its first few rows."""
        groups: dict[tuple[str, str | None], list[Problem]] = {}
        for note in self.warnings:
            groups.setdefault((note.kind or note.message, note.column), []).append(note)
        return [
            WarningGroup(
                notes[0].message,
                notes[0].heading,
                notes[0].column,
                len(notes),
                sorted({n.row for n in notes})[:SHOWN_ROWS],
            )
            for notes in groups.values()
        ]

    def report_lines(self) -> list[str]:
        """Every problem first, then the notes summarised by kind."""
        return [str(p) for p in self.problems] + [str(g) for g in self.warning_groups]

    @property
    def summary(self) -> dict[str, int]:
        return {
            "new": self.count("new"),
            "updated": self.count("update"),
            "unchanged": self.count("unchanged"),
        }
