"""What the governors' report shows: each term's figures, each with what it is based on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from server.schools.models import Term
from server.schools.services.clock import day_text

NOT_KNOWN = "not known"


@dataclass(frozen=True)
class Period:
    """The dates a report covers: a term and the holiday after it, up to the next term."""

    term: Term
    first_day: date
    last_day: date
    starts: datetime  # UTC, inclusive
    ends: datetime  # UTC, exclusive

    @property
    def text(self) -> str:
        return f"{day_text(self.first_day)} to {day_text(self.last_day)}"


@dataclass(frozen=True)
class Line:
    """One labelled figure; `value` None is "not known", never a guess."""

    label: str
    value: int | None

    @property
    def text(self) -> str:
        return NOT_KNOWN if self.value is None else str(self.value)


@dataclass(frozen=True)
class RegisterFigures:
    """Devices in the register now: by kind, by status, and how many joined in the period."""

    total: int
    by_platform: list[Line]
    by_status: list[Line]
    added: int
    basis: str


@dataclass(frozen=True)
class LossCase:
    """One loss reported in the period: what became of it and who decided about the ICO."""

    case: int
    kind: str
    reported_on: str
    decision: str
    decided_by: str
    decided_on: str
    outcome: str


@dataclass(frozen=True)
class LossFigures:
    reported: int
    lost: int
    stolen: int
    found: int
    written_off: int
    confirmed_stolen: int
    still_open: int
    ico_reported: int
    cases: list[LossCase]
    basis: str


@dataclass(frozen=True)
class AuditLine:
    """One audit of the term: how much of what was expected was found, and who signed it off."""

    scope: str
    state: str
    expected: int
    found: int
    missing: int
    signed_off_by: str
    signed_off_on: str
    countersigned_by: str

    @property
    def found_percent(self) -> int | None:
        return round(self.found * 100 / self.expected) if self.expected else None

    @property
    def percent_text(self) -> str:
        pct = self.found_percent
        return "nothing expected" if pct is None else f"{pct}%"


@dataclass(frozen=True)
class AuditFigures:
    audits: list[AuditLine]
    whole_school_signed_off: bool
    basis: str


@dataclass(frozen=True)
class HalfTermCheck:
    """The half-termly photo check (P-PHOTO-2): done or not, and what it found."""

    label: str
    done: bool
    devices: int | None
    cleared: int | None
    still_holding: int | None
    unconfirmed: int | None
    by_hand: int | None
    completed_by: str
    completed_on: str


@dataclass(frozen=True)
class PhotoFigures:
    """Photo wipes at return, half-termly checks and spot checks (P-PHOTO-1..3)."""

    returns: int
    by_device: int
    by_device_within_hour: int
    by_hand: int
    by_hand_people: list[Line]
    not_known: int
    halves: list[HalfTermCheck]
    spot_checks: int
    spot_devices_checked: int
    spot_findings: int
    basis: str


@dataclass(frozen=True)
class ResetFigures:
    """Factory resets asked for in the period and what the devices said."""

    asked: int
    confirmed: int
    waiting: int
    not_done: int
    basis: str


@dataclass(frozen=True)
class SettingLine:
    """One profile setting across the devices that should enforce it, as they reported it."""

    label: str
    applied: int
    not_applied: int
    not_known: int

    @property
    def devices(self) -> int:
        return self.applied + self.not_applied + self.not_known


@dataclass(frozen=True)
class ComplianceFigures:
    settings: list[SettingLine]
    devices_with_profile: int
    protection: list[Line]
    basis: str


@dataclass(frozen=True)
class GovernorsReport:
    """The termly report for governors: no pupil's data, staff named only for their decisions."""

    school_name: str
    period: Period
    generated_at: str
    register: RegisterFigures
    losses: LossFigures
    audits: AuditFigures
    photos: PhotoFigures
    resets: ResetFigures
    compliance: ComplianceFigures
    terms: list[Term] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Governors' report: {self.period.term.name}"
