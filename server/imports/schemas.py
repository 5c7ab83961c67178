"""API shapes for importing and exporting the register."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FieldKey = Literal[
    "asset_tag",
    "serial",
    "platform",
    "make",
    "model",
    "make_model",
    "os_version",
    "status",
    "location",
    "slot",
    "purchase_date",
    "cost",
    "supplier",
    "warranty",
    "notes",
    "warranty_months",
    "category",
]


class ImportOptionsIn(BaseModel):
    """The columns (one entry per column, null = ignore it) and what to do with new places."""

    model_config = ConfigDict(extra="forbid")

    mapping: list[FieldKey | None] | None = Field(
        default=None,
        max_length=200,
        description="What each column holds, in order; null ignores a column. Omit to keep "
        "Trolley's guess from the headings.",
    )
    create_locations: bool | None = Field(
        default=None, description="Add places the file names but Places lacks, as rooms"
    )
    location_parent_id: int | None = Field(
        default=None, description="The site or building new rooms go in"
    )
    header_row: int | None = Field(
        default=None, ge=1, le=10_000, description="The row holding the headings (1 = the first)"
    )
    retag: list[str] | None = Field(
        default=None,
        max_length=50_000,
        description="New asset tags whose row may re-tag the device that has its serial number",
    )


class ImportIn(ImportOptionsIn):
    """A CSV file as text (`csv`), or a CSV or .xlsx file as base64 bytes (`csv_base64`)."""

    filename: str = Field(default="upload.csv", min_length=1, max_length=255)
    csv: str | None = Field(
        default=None, max_length=6_000_000, description="The CSV file's text, headings first"
    )
    csv_base64: str | None = Field(
        default=None,
        max_length=7_000_000,
        description="The file's bytes, base64-encoded: CSV in any encoding, or an Excel .xlsx",
    )

    @model_validator(mode="after")
    def _one_file(self) -> ImportIn:
        if (self.csv is None) == (self.csv_base64 is None):
            raise ValueError("send the file as exactly one of 'csv' or 'csv_base64'")
        return self


class ProblemOut(BaseModel):
    row: int = Field(description="Row number as the spreadsheet shows it (headings are row 1)")
    column: str | None = Field(description="Column letter, A, B, …")
    heading: str | None
    message: str
    value: str | None


class ColumnOut(BaseModel):
    column: str
    heading: str
    holds: FieldKey | None
    samples: list[str]


class ChangeOut(BaseModel):
    what: str
    before: str
    after: str


class PlannedOut(BaseModel):
    row: int
    asset_tag: str
    action: Literal["new", "update", "unchanged"]
    changes: list[str]
    shown: list[ChangeOut] = Field(description="Each changed field, before → after")


class RetagOut(BaseModel):
    row: int
    asset_tag: str = Field(description="The file's new asset tag")
    current_tag: str = Field(description="The register's tag for the row's serial number")


class NoteOut(BaseModel):
    message: str
    column: str | None
    heading: str | None
    count: int
    rows: list[int] = Field(description="The first few rows")


class MissingPlaceOut(BaseModel):
    name: str
    rows: list[int]


class ImportPreviewOut(BaseModel):
    id: str
    filename: str
    encoding: str
    encoding_note: str | None = Field(description="Where the file stopped being UTF-8, if it did")
    header_row: int
    conventions: dict[str, str] = Field(description="How each date and money column was read")
    expires_at: datetime
    rows: int
    new: int
    updated: int
    unchanged: int
    ok: bool = Field(description="True when every row is good and the file can be imported")
    problems: list[ProblemOut]
    warnings: list[ProblemOut]
    notes: list[NoteOut] = Field(description="The warnings summarised by kind")
    retag_offers: list[RetagOut]
    columns: list[ColumnOut]
    missing_places: list[MissingPlaceOut]
    places_parent: str | None = Field(description="Where missing places would be added")
    create_locations: bool
    planned: list[PlannedOut] = Field(description="New and changed devices (up to 1,000)")


class ImportResultOut(BaseModel):
    id: str
    new: int
    updated: int
    unchanged: int
    places_created: list[str]


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "xlsx"] = "csv"


class ExportOut(BaseModel):
    filename: str
    media_type: str
    devices: int
    content_base64: str
