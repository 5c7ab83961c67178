"""What the profile pages show: version history, assignments, why a profile applies, compliance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from device_profiles import Change
from device_profiles.descriptions import LABELS, describe_change
from server.profiles.models import ProfileAssignment, ProfileVersion, TargetType


@dataclass(frozen=True)
class HistoryEntry:
    """A version with what changed since the one before it."""

    version: ProfileVersion
    changes: list[Change]
    first: bool

    @property
    def summary(self) -> list[str]:
        if self.first:
            return ["First version"]
        return [describe_change(c) for c in self.changes] or ["Only comments or layout changed"]


@dataclass(frozen=True)
class AssignmentRow:
    """An assignment with its profile's name and its target in words."""

    assignment: ProfileAssignment
    profile_name: str
    target: str


@dataclass(frozen=True)
class Resolution:
    """The profile version that applies to a device, why in plain words, and every level checked."""

    profile_version: ProfileVersion | None
    reason: str
    chain: list[str]
    source: tuple[TargetType, int] | None = None

    @property
    def profile_name(self) -> str | None:
        return self.profile_version.profile.name if self.profile_version else None


# Compliance is what each device reported setting by setting: echoing a profile's hash is not
# enough (P-PROFILE-1).
COMPLIANCE_STATES = (
    "compliant",
    "partial",
    "unconfirmed",
    "pending",
    "drifting",
    "never_reported",
    "erased",
    "unassigned",
)
COMPLIANCE_LABELS = {
    "compliant": "Enforces every setting",
    "partial": "Not every setting enforced",
    "unconfirmed": "Applied, settings not known",
    "pending": "Waiting for the device",
    "drifting": "Drifting",
    "never_reported": "Never reported",
    "erased": "Erased, not reported since",
    "unassigned": "No profile",
}


class ComplianceRow(NamedTuple):
    """One device's desired against applied profile, and the state that makes."""

    device_id: int
    asset_tag: str
    profile_name: str | None
    version: int | None
    desired_sha256: str | None
    applied_sha256: str | None
    published_at: datetime | None
    reported_at: datetime | None
    state: str
    settings_reported: int | None = None  # settings the device reported for the desired document
    settings_not_enforced: int | None = None
    settings_at: datetime | None = None

    @property
    def label(self) -> str:
        return COMPLIANCE_LABELS[self.state]


# Each profile setting in the school's words, from the one description of the language.
SETTING_LABELS = dict(LABELS)
APPLIED_STATES = ("enforced", "not_supported", "failed", "not_known")
APPLIED_LABELS = {
    "enforced": "Enforced",
    "not_supported": "Cannot do it",
    "failed": "Failed",
    "not_known": "Not known",
}


@dataclass(frozen=True)
class AppliedSettingRow:
    """One setting the device should enforce, and what the device last said about it."""

    setting: str
    wanted: str  # the profile's value, in words
    state: str  # one of APPLIED_STATES
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None

    @property
    def label(self) -> str:
        return SETTING_LABELS.get(self.setting, self.setting)

    @property
    def state_label(self) -> str:
        return APPLIED_LABELS[self.state]


@dataclass(frozen=True)
class AppliedView:
    """A device's profile as the device reported it: each setting, and when it said so."""

    profile_name: str | None
    version: int | None
    applied: bool  # the device reported applying the profile it should have
    rows: list[AppliedSettingRow]
    reported_at: datetime | None
    note: str = ""

    @property
    def enforced(self) -> list[AppliedSettingRow]:
        return [row for row in self.rows if row.state == "enforced"]

    @property
    def not_enforced(self) -> list[AppliedSettingRow]:
        return [row for row in self.rows if row.state != "enforced"]


@dataclass(frozen=True)
class PlatformGap:
    """What one kind of device cannot do of a profile, and how many of them get it."""

    platform: str  # the register's platform value
    label: str
    devices: int
    settings: list[tuple[str, str, str]]  # (setting, its words, why not)


@dataclass(frozen=True)
class PlaceDevice:
    """A device living in a trolley: its profile state and protection, as it reported them."""

    asset_tag: str
    state: str
    not_enforced: list[str]
    passcode: bool | None
    storage_encrypted: bool | None
    reported_at: datetime | None

    @property
    def label(self) -> str:
        return COMPLIANCE_LABELS[self.state]


@dataclass(frozen=True)
class HomeSummary:
    """The computing lead's home card: devices in each compliance state, requests waiting."""

    counts: dict[str, int]
    waiting: int
    total: int


@dataclass(frozen=True)
class DevicePanel:
    """The device page's panel: which profile applies and why, and whether it is applied."""

    resolution: Resolution
    compliance: ComplianceRow | None
    can_manage: bool
    applied: AppliedView | None = None


@dataclass(frozen=True)
class ReportedSummary:
    """Figures for those who read reports: profiles and protection as devices report them."""

    compliance: dict[str, int]
    protection: dict[str, int]
    total: int
