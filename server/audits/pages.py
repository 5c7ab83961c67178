"""What the audit pages show: terms, progress, the report's lists, the home card and pictures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from server.audits.models import Audit, AuditState, PhotoCheck
from server.commands.models import CommandStatus
from server.devices.models import DeviceStatus
from server.schools.models import Term
from server.schools.services.clock import day_text, plural


@dataclass(frozen=True)
class HalfTerm:
    term: Term
    half: int
    starts_on: date
    ends_on: date

    @property
    def label(self) -> str:
        return f"{self.term.name}, {'first' if self.half == 1 else 'second'} half"

    @property
    def short(self) -> str:
        season = self.term.name.split(" ")[0]
        return f"{season[:3]} {self.half}"


@dataclass(frozen=True)
class TermAudit:
    """Where one term's audit stands."""

    term: Term
    due_on: date
    state: str  # done | in_progress | overdue | due_soon | not_due | missed
    done: Audit | None
    open: Audit | None
    today: date

    @property
    def days_left(self) -> int:
        return (self.due_on - self.today).days

    @property
    def text(self) -> str:
        due = day_text(self.due_on)
        if self.state == "done" and self.done is not None and self.done.closed_at:
            return f"Done: signed off on {day_text(self.done.closed_at.date())}."
        if self.state == "overdue":
            return f"Overdue: the {self.term.name} audit was due by {due}."
        if self.state == "in_progress":
            return f"Under way: due by {due}."
        if self.state == "due_soon":
            left = self.days_left
            return f"Due by {due} ({'today' if left == 0 else plural(left, 'day') + ' left'})."
        if self.state == "missed":
            return f"Not done: the {self.term.name} audit was due by {due}."
        return f"Due by {due}."


@dataclass(frozen=True)
class PlaceProgress:
    """How far the audit has got in one place: '24 / 30 — Year 4 trolley'."""

    location_id: int | None
    name: str
    found: int
    expected: int

    @property
    def text(self) -> str:
        return f"{self.found} / {self.expected} — {self.name}"

    @property
    def done(self) -> bool:
        return self.found >= self.expected


@dataclass(frozen=True)
class RecentScan:
    tag: str
    state: AuditState
    place: str | None
    by: str | None
    at: datetime


@dataclass(frozen=True)
class Progress:
    audit: Audit
    places: list[PlaceProgress]
    found: int
    expected: int
    not_expected: int
    unknown: int
    recent: list[RecentScan]

    @property
    def percent(self) -> int:
        return int(self.found * 100 / self.expected) if self.expected else 100


@dataclass(frozen=True)
class Totals:
    expected: int = 0
    verified: int = 0
    misplaced: int = 0
    found: int = 0
    missing: int = 0
    damaged: int = 0
    condition_checked: int = 0
    not_expected: int = 0
    unknown: int = 0
    where_is_it: int = 0
    silent: int = 0
    photos: int = 0

    @property
    def scanned(self) -> int:
        return self.verified + self.misplaced + self.found

    @property
    def percent(self) -> int:
        return int(self.scanned * 100 / self.expected) if self.expected else 100


@dataclass(frozen=True)
class PlaceRow:
    location_id: int | None
    name: str
    expected: int
    verified: int
    misplaced: int
    found: int
    missing: int
    damaged: int

    @property
    def scanned(self) -> int:
        return self.verified + self.misplaced + self.found

    @property
    def text(self) -> str:
        return f"{self.scanned} / {self.expected} — {self.name}"


@dataclass(frozen=True)
class Line:
    """One device in one of the report's lists."""

    asset_tag: str
    model: str
    status: DeviceStatus
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
    last_scan_note: str | None
    problems: list[str]
    condition_note: str | None
    loss_report_id: int | None
    repair_raised_at: datetime | None


@dataclass(frozen=True)
class Listing:
    lines: list[Line]
    total: int

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.lines))


@dataclass(frozen=True)
class UnknownLine:
    tag: str
    place: str | None
    first_scanned_at: datetime
    scanned_at: datetime
    scanned_by: str | None
    scan_count: int


@dataclass(frozen=True)
class Report:
    audit: Audit
    live: bool
    generated_at: datetime
    totals: Totals
    places: list[PlaceRow]
    missing: Listing
    misplaced: Listing
    found: Listing
    damaged: Listing
    not_expected: Listing
    where_is_it: Listing
    silent: Listing
    photos: Listing
    unknown: list[UnknownLine]
    previous: Audit | None
    newly_missing: Listing
    recovered: Listing


@dataclass(frozen=True)
class HomeCard:
    today: date
    current: TermAudit | None
    overdue: TermAudit | None
    running: Audit | None
    found: int
    expected: int
    last_closed: Audit | None
    awaiting_countersign: Audit | None
    half: HalfTerm | None
    photo_check_done: PhotoCheck | None
    photo_check_open: PhotoCheck | None


@dataclass(frozen=True)
class RegisterPicture:
    """Devices in the register by status, overall and in the places with the most devices."""

    statuses: list[tuple[DeviceStatus, int]]
    places: list[tuple[str, list[int], int]]  # name, a count per status in STATUS_ORDER, total
    more_places: int


STATUS_ORDER = (
    DeviceStatus.IN_SERVICE,
    DeviceStatus.IN_STOCK,
    DeviceStatus.IN_REPAIR,
    DeviceStatus.LOST,
    DeviceStatus.STOLEN,
)


@dataclass(frozen=True)
class HoldingLine:
    asset_tag: str
    model: str
    lives_in: str | None
    photo_count: int
    reported_at: datetime | None
    age: str
    enrolled: bool


@dataclass(frozen=True)
class PhotoPicture:
    """Devices in the register by what they last said about photos."""

    total: int
    clear: int
    holding: int
    never_reported: int
    erased: int  # erased since they last counted their photos, and not reported since
    lines: list[HoldingLine]


@dataclass(frozen=True)
class CheckLine:
    """One device in a photo check: before, its answer since, and any record by hand."""

    asset_tag: str
    model: str
    photos_before: int | None
    reported_at: datetime | None
    enrolled: bool
    asked: bool
    command_status: CommandStatus | None
    photos_after: int | None
    after_at: datetime | None
    by_hand_by: str | None
    hand_at: datetime | None = None
    hand_photos: int | None = None
    hand_note: str | None = None

    @property
    def by_hand(self) -> bool:
        """The person's record is the result: made, and no newer answer from the device."""
        return self.hand_at is not None and (self.after_at is None or self.hand_at >= self.after_at)

    @property
    def result(self) -> int | None:
        return self.hand_photos if self.by_hand else self.photos_after

    @property
    def outcome(self) -> str:
        """cleared, holding or unconfirmed: what the check may say about the device."""
        if self.result is None:
            return "unconfirmed"
        return "cleared" if self.result == 0 else "holding"

    @property
    def needs_hand(self) -> bool:
        """Silent or still holding photos, and nobody has recorded checking it by hand."""
        return self.hand_at is None and (self.photos_after is None or self.photos_after > 0)


@dataclass(frozen=True)
class HalfTermCompliance:
    half: HalfTerm
    check: PhotoCheck | None

    @property
    def checked(self) -> bool:
        return self.check is not None
