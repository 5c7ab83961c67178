"""API shapes for audits, photo checks and spot checks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.audits.models import AuditState, AuditStatus, PhotoCheckStatus
from server.commands.models import CommandStatus
from server.devices.models import DeviceStatus

# Emptiness and ranges are the service's to judge, so people get its plain messages; ids are
# bounded here so a number no database row can have is refused before any query.
DbId = Annotated[int, Field(ge=1, le=2_147_483_647)]


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term_id: DbId | None = Field(default=None, description="Defaults to the term under way")
    location_ids: list[DbId] = Field(
        default_factory=list,
        max_length=500,
        description="Places to audit (with the places inside them); empty means the whole school",
    )


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=512, description="A typed asset tag or a scanned label URL")
    location_id: DbId = Field(description="Where the person scanning is")


class ConditionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_on: bool | None = None
    screen_intact: bool | None = None
    charger: bool | None = None
    label_readable: bool | None = None
    powers_on: bool | None = None
    note: str | None = Field(default=None, max_length=500)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=1000)


class TermAuditOut(BaseModel):
    term_id: int
    term: str
    starts_on: date
    ends_on: date
    due_on: date
    state: Literal["done", "in_progress", "overdue", "due_soon", "not_due", "missed"]
    text: str
    audit_id: int | None


class TermAuditList(BaseModel):
    items: list[TermAuditOut]


class AuditOut(BaseModel):
    id: int
    term: str
    whole_school: bool
    location_ids: list[int]
    status: AuditStatus
    expected_count: int
    started_at: datetime
    closed_at: datetime | None
    signed_off_by: str | None
    sign_off_note: str | None
    countersigned_at: datetime | None
    countersigned_by: str | None
    follow_ups_at: datetime | None
    summary: dict[str, int]


class AuditList(BaseModel):
    items: list[AuditOut]


class PlaceProgressOut(BaseModel):
    location_id: int | None
    name: str
    found: int
    expected: int
    text: str


class RecentScanOut(BaseModel):
    asset_tag: str
    state: AuditState
    place: str | None
    by: str | None
    at: datetime


class ProgressOut(BaseModel):
    audit_id: int
    status: AuditStatus
    found: int
    expected: int
    percent: int
    not_expected: int
    unknown: int
    places: list[PlaceProgressOut]
    recent: list[RecentScanOut]


class ScanOut(BaseModel):
    outcome: Literal["verified", "misplaced", "found", "unknown"]
    message: str
    tone: Literal["ok", "info", "warn"]
    asset_tag: str
    model: str | None
    location: str
    expected: bool
    repeat: bool
    place: PlaceProgressOut | None
    found: int
    total: int


class ConditionOut(BaseModel):
    asset_tag: str
    case_on: bool | None
    screen_intact: bool | None
    charger: bool | None
    label_readable: bool | None
    powers_on: bool | None
    damaged: bool
    problems: list[str]
    note: str | None


class TotalsOut(BaseModel):
    expected: int
    verified: int
    misplaced: int
    found: int
    missing: int
    damaged: int
    condition_checked: int
    not_expected: int
    unknown: int
    where_is_it: int
    silent: int
    photos: int


class PlaceRowOut(BaseModel):
    location_id: int | None
    name: str
    expected: int
    verified: int
    misplaced: int
    found: int
    missing: int
    damaged: int


class LineOut(BaseModel):
    asset_tag: str
    model: str
    register_status: DeviceStatus
    state: AuditState
    expected: bool
    lives_in: str | None
    found_in: str | None
    scanned_at: datetime | None
    scanned_by: str | None
    holder: str | None
    last_seen_at: datetime | None
    online: bool
    photo_count: int | None
    photo_count_at: datetime | None
    last_scan_at: datetime | None
    last_scan: str | None
    problems: list[str]
    condition_note: str | None
    loss_report_id: int | None
    repair_raised_at: datetime | None


class ListingOut(BaseModel):
    total: int
    items: list[LineOut]


class UnknownOut(BaseModel):
    tag: str
    place: str | None
    first_scanned_at: datetime
    scanned_at: datetime
    scanned_by: str | None
    scan_count: int


class ReportOut(BaseModel):
    audit: AuditOut
    live: bool = Field(description="True while the audit is open: the numbers can still change")
    generated_at: datetime
    totals: TotalsOut
    places: list[PlaceRowOut]
    missing: ListingOut
    misplaced: ListingOut
    found: ListingOut
    damaged: ListingOut
    not_expected: ListingOut
    where_is_it: ListingOut = Field(description="Missing, but the device was online recently")
    silent: ListingOut = Field(description="Found, but silent for 30 days or more")
    photos: ListingOut = Field(description="Found, and the device reports photos on it")
    unknown: list[UnknownOut]
    previous_audit_id: int | None
    newly_missing: ListingOut
    recovered: ListingOut


class CsvOut(BaseModel):
    filename: str
    content_type: str
    csv: str


class FollowUpOut(BaseModel):
    asset_tag: str
    loss_report_id: int


class SkippedOut(BaseModel):
    asset_tag: str
    reason: str


class FollowUpsOut(BaseModel):
    message: str
    losses: list[FollowUpOut]
    already_reported: list[FollowUpOut]
    repairs: list[str]
    skipped: list[SkippedOut]


class HoldingOut(BaseModel):
    asset_tag: str
    model: str
    lives_in: str | None
    photo_count: int
    reported_at: datetime | None
    age: str
    enrolled: bool


class HalfTermOut(BaseModel):
    term: str
    half: int
    label: str
    starts_on: date
    ends_on: date
    check_id: int | None
    holding_before: int | None
    cleared: int | None
    still_holding: int | None
    unconfirmed: int | None


class PhotoCheckOut(BaseModel):
    id: int
    half_term: str
    status: PhotoCheckStatus
    started_at: datetime
    started_by: str | None
    devices_total: int
    never_reported: int = Field(
        description="Devices whose photo count was not known at the start: never reported, or "
        "erased since"
    )
    asked: int = Field(description="Enrolled devices asked for a fresh count at the start")
    holding_before: int
    photos_before: int
    wipe_requested_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    cleared: int | None
    still_holding: int | None
    unconfirmed: int | None
    checked_by_hand: int | None = Field(
        description="Results that are a person's record of checking by hand"
    )
    photos_after: int | None
    note: str | None


class PhotoCheckLineOut(BaseModel):
    asset_tag: str
    model: str
    photos_before: int | None = Field(description="None: it had never reported its photos")
    reported_at: datetime | None
    enrolled: bool
    asked: bool = Field(description="Asked for a fresh count when the check started")
    wipe: CommandStatus | None
    photos_after: int | None = Field(description="The device's own answer since the start")
    after_at: datetime | None
    wiped_by_hand_by: str | None = Field(description="Who recorded checking it by hand")
    hand_at: datetime | None
    hand_photos: int | None = Field(description="Photos left, as that person counted them")
    hand_note: str | None = Field(description="What that person saw")
    outcome: Literal["cleared", "holding", "unconfirmed"]
    needs_hand: bool = Field(description="Silent or holding photos, and nobody has checked it")


class PhotoCheckDetail(PhotoCheckOut):
    devices: list[PhotoCheckLineOut]


class PhotoOverview(BaseModel):
    devices: int
    clear: int
    holding: int
    never_reported: int
    erased: int = Field(
        description="Erased since they last counted their photos, and not reported since: their "
        "count is not known"
    )
    holding_now: list[HoldingOut]
    half_terms: list[HalfTermOut]
    checks: list[PhotoCheckOut]


class WipeOut(BaseModel):
    message: str
    sent: int
    needs_approval: bool
    wipe_by_hand: list[str]


class ByHandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    photos_left: int | None = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Photos still on the device afterwards; null if they could not be counted",
    )
    saw: str = Field(default="", max_length=500, description="What the person saw")


class SpotCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(description="How many devices to draw (1 to 100)")
    seed: int | None = Field(
        default=None, description="Repeat a draw with its recorded seed; leave out for a new one"
    )


class SpotResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    photos_found: bool
    other_personal_data: bool
    note: str = Field(default="", max_length=500)


class SpotItemOut(BaseModel):
    position: int
    asset_tag: str
    model: str
    photos_found: bool | None
    other_personal_data: bool | None
    note: str | None
    checked_at: datetime | None
    checked_by: str | None
    told: str | None


class SpotCheckOut(BaseModel):
    id: int
    seed: str = Field(description="The seed as text (it can exceed JavaScript's safe integers)")
    sample_size: int
    population_size: int
    population_sha256: str
    drawn_at: datetime
    drawn_by: str | None
    completed_at: datetime | None
    draw_verified: bool = Field(description="Repeating the draw from the seed gives these devices")
    devices: list[SpotItemOut]


class SpotCheckList(BaseModel):
    items: list[SpotCheckOut]
