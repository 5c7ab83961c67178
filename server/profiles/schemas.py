"""API shapes for profiles, assignments, compliance and filter exceptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from server.profiles.models import ExceptionStatus, TargetType

Target = Literal["apple", "chrome", "chromeos", "kiosk"]
YAML_MAX = 200_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProfileCreateIn(Strict):
    name: str = Field(min_length=1, max_length=120)
    yaml_text: str | None = Field(
        default=None, max_length=YAML_MAX, description="Leave out to start from `start_from`"
    )
    start_from: str | None = Field(
        default=None, max_length=64, description="A built-in profile id, e.g. ks2-ipad; or blank"
    )
    note: str = Field(default="", max_length=500)


class VersionIn(Strict):
    yaml_text: str = Field(min_length=1, max_length=YAML_MAX)
    note: str = Field(default="", max_length=500)


class ValidateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml_text: str = Field(max_length=YAML_MAX)


class ProfileErrorOut(BaseModel):
    file: str | None
    line: int | None
    key_path: str | None
    message: str
    allowed: list[str]
    suggestion: str | None


class WarningOut(BaseModel):
    setting: str
    message: str
    kind: str


class PreviewOut(BaseModel):
    target: str
    label: str
    filename: str
    media_type: str
    content: str
    warnings: list[WarningOut]


class ValidateOut(BaseModel):
    valid: bool
    errors: list[ProfileErrorOut]
    warnings: dict[str, list[WarningOut]]
    previews: list[PreviewOut]


class VersionOut(BaseModel):
    number: int
    sha256: str
    note: str
    created_by: str | None
    created_at: datetime
    changes: list[str]


class VersionSaved(BaseModel):
    created: bool = Field(description="False when the text was unchanged (no new version)")
    version: VersionOut


class AssignmentOut(BaseModel):
    id: int
    profile_id: int
    profile_name: str
    target_type: TargetType
    target_id: int
    target: str
    created_at: datetime


class AssignmentList(BaseModel):
    items: list[AssignmentOut]


class ProfileSummary(BaseModel):
    id: int
    slug: str
    name: str
    archived: bool
    created_at: datetime


class ProfileList(BaseModel):
    items: list[ProfileSummary]
    library: dict[str, str] = Field(description="Built-in starting points: id → name")


class ProfileDetail(ProfileSummary):
    yaml_text: str
    versions: list[VersionOut]
    assignments: list[AssignmentOut]


class ExportQuery(Strict):
    target: Target
    version: int | None = Field(default=None, ge=1, le=1_000_000)
    org_unit_id: str | None = Field(default=None, max_length=200)
    signed: bool = False


class ExportOut(BaseModel):
    filename: str
    media_type: str
    encoding: Literal["utf-8", "base64"]
    content: str
    signed: bool
    warnings: list[WarningOut]


class AssignmentIn(Strict):
    profile_id: int
    target_type: TargetType
    target_id: int | None = Field(default=None, description="Not needed for the school")
    asset_tag: str | None = Field(
        default=None, max_length=32, description="For a device, instead of target_id"
    )


class AppliedSettingOut(BaseModel):
    setting: str
    wanted: str = Field(description="What the profile asks, in words")
    state: Literal["enforced", "not_supported", "failed", "not_known"] = Field(
        description="What the device reported; not_known when it has not said"
    )
    detail: str
    evidence: dict[str, Any]
    since: datetime | None


class ResolutionOut(BaseModel):
    asset_tag: str
    profile_id: int | None
    profile_name: str | None
    version: int | None
    reason: str
    chain: list[str]
    desired_sha256: str | None
    applied_sha256: str | None
    state: str | None
    settings: list[AppliedSettingOut] = Field(
        description="Each setting of the profile as the device reported it (P-PROFILE-1)"
    )
    settings_reported_at: datetime | None


class ComplianceQuery(Strict):
    state: (
        Literal[
            "compliant",
            "partial",
            "unconfirmed",
            "pending",
            "drifting",
            "never_reported",
            "erased",
            "unassigned",
        ]
        | None
    ) = None


class ComplianceRowOut(BaseModel):
    asset_tag: str
    profile_name: str | None
    version: int | None
    desired_sha256: str | None
    applied_sha256: str | None
    published_at: datetime | None
    reported_at: datetime | None
    state: str
    settings_reported: int | None = Field(
        description="Settings of the desired profile the device reported on"
    )
    settings_not_enforced: int | None
    settings_at: datetime | None


class ComplianceOut(BaseModel):
    counts: dict[str, int]
    items: list[ComplianceRowOut]


class ExceptionIn(Strict):
    urls: list[str] = Field(min_length=1, max_length=20)
    reason: str = Field(min_length=10, max_length=1000)
    class_label: str = Field(min_length=1, max_length=64)
    target_type: Literal["location", "group", "device"]
    target_id: int | None = None
    asset_tag: str | None = Field(default=None, max_length=32)
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class ExceptionQuery(Strict):
    status: ExceptionStatus | None = None


class UnblockQuery(Strict):
    urls: str = Field(default="", max_length=5_000, description="Addresses, one per line")


class UnblockOut(BaseModel):
    typed: str
    address: str | None = Field(description="What is asked for; null when it cannot be used")
    reach: str = Field(examples=["youtube.com/watch and every page under it"])
    problem: str | None


class UnblockList(BaseModel):
    items: list[UnblockOut]


class DecisionIn(Strict):
    note: str = Field(default="", max_length=500)


class ExceptionOut(BaseModel):
    id: int
    urls: list[str]
    reason: str
    class_label: str
    target_type: TargetType
    target_id: int
    target: str
    starts_at: datetime
    ends_at: datetime
    status: ExceptionStatus
    requester: str
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    created_at: datetime


class ExceptionList(BaseModel):
    items: list[ExceptionOut]


class GroupIn(Strict):
    name: str = Field(min_length=1, max_length=120)


class GroupMembersIn(Strict):
    asset_tags: list[str] = Field(min_length=1, max_length=500)


class GroupOut(BaseModel):
    id: int
    name: str
    devices: int


class GroupList(BaseModel):
    items: list[GroupOut]
