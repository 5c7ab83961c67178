"""API shapes for loss reports, the breach assessment and the 72-hour clock."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from server.commands.models import CommandStatus
from server.losses.models import Decision, LossKind, Outcome, PossibleLossSource, RiskLevel

# Emptiness is the service's to judge, so people get its plain messages; lengths are checked here.


class LossIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_tag: str = Field(min_length=1, max_length=32, description="The tag on the label")
    kind: LossKind
    last_seen_at: AwareDatetime = Field(description="When the device was last seen")
    last_seen_where: str = Field(max_length=200, description="Where it was last seen")
    circumstances: str = Field(max_length=4000, description="What happened, as far as is known")
    police_reference: str | None = Field(default=None, max_length=64)


class LossQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open_only: bool = False


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    personal_data: str = Field(max_length=4000, description="What personal data could be on it")
    risk: RiskLevel = Field(description="The headteacher's judgement of the risk to people")
    risk_notes: str = Field(max_length=4000, description="Why")


class AwarenessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aware_at: AwareDatetime = Field(description="When the school became aware of the loss")
    reason: str = Field(max_length=500)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_to_ico: bool
    justification: str = Field(max_length=4000)
    ico_reference: str | None = Field(default=None, max_length=64)


class IcoReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(max_length=64, description="The reference the ICO gave")
    reported_at: AwareDatetime | None = Field(default=None, description="Defaults to now")


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    reference: str | None = Field(
        default=None,
        max_length=100,
        description="Police crime reference (stolen) or insurance reference (written off)",
    )
    note: str | None = Field(default=None, max_length=2000)


class FactoryResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=400)


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dpo_email: str | None = Field(default=None, max_length=254)


class SettingsOut(BaseModel):
    dpo_email: str | None


class ClockOut(BaseModel):
    aware_at: datetime
    deadline: datetime
    stage: str = Field(description="running, 24h, 48h, overdue or stopped")
    running: bool
    overdue: bool
    remaining_seconds: int = Field(description="Negative once overdue")
    stopped_at: datetime | None
    met: bool | None = Field(description="Decided inside the 72 hours (null while running)")
    text: str


class LostModeOut(BaseModel):
    state: str = Field(
        description="none, not_possible, waiting_approval (not sent until a second person "
        "approves), pending, in_google (a Chromebook disabled in Google, not synced since), "
        "active, locked_only (the device could only lock, not enter lost "
        "mode), failed, turning_off, off, erased (not known: the device was erased after it "
        "confirmed lost mode)"
    )
    label: str
    command_id: int | None
    command_status: CommandStatus | None


class CommandRef(BaseModel):
    id: int
    type: str
    status: CommandStatus


class AttemptOut(BaseModel):
    at: datetime
    ok: bool
    error: str | None


class DeliveryOut(BaseModel):
    to: str
    subject: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    attempts: list[AttemptOut]


class FactsOut(BaseModel):
    photo_count: int | None
    photo_count_at: datetime | None
    photos: str
    last_check_in: datetime | None
    profile_name: str | None
    passcode: str
    encryption: str
    settings: str
    restrictions: list[str]
    not_enforced: list[str]
    lost_mode: str
    enrolled: bool


class AssessmentOut(BaseModel):
    personal_data: str | None
    risk: RiskLevel
    risk_notes: str | None
    assessed_at: datetime | None
    assessed_by: str | None
    facts: dict[str, Any]


class DecisionOut(BaseModel):
    decision: Decision
    justification: str | None
    decided_at: datetime | None
    decided_by: str | None
    ico_reference: str | None
    ico_reported_at: datetime | None


class OutcomeOut(BaseModel):
    outcome: Outcome
    reference: str | None
    note: str | None
    closed_at: datetime | None
    closed_by: str | None


class LossSummary(BaseModel):
    id: int
    asset_tag: str
    model: str
    kind: LossKind
    open: bool
    reported_at: datetime
    reported_by: str | None
    clock: ClockOut


class LossList(BaseModel):
    items: list[LossSummary]


class LossOut(LossSummary):
    last_seen_at: datetime
    last_seen_where: str
    circumstances: str
    police_reference: str | None
    lost_mode: LostModeOut
    deliveries: list[DeliveryOut]
    notes: list[str]
    facts: FactsOut | None = Field(description="Only for the headteacher")
    assessment: AssessmentOut | None
    decision: DecisionOut | None
    outcome: OutcomeOut | None


class StepOut(BaseModel):
    at: datetime
    what: str
    who: str | None
    kind: str


class IncidentRecord(BaseModel):
    loss: LossOut
    steps: list[StepOut]


class LogEntryOut(BaseModel):
    reported_on: date
    model: str
    kind: LossKind
    outcome: str
    ico: str
    on_time: str


class TermLogOut(BaseModel):
    term: str
    entries: list[LogEntryOut]


class LossLog(BaseModel):
    terms: list[TermLogOut]


class PossibleLossOut(BaseModel):
    """A device offered to the headteacher as possibly lost (P-LOSS-1)."""

    id: int
    asset_tag: str
    source: PossibleLossSource
    why: str
    raised_at: datetime
    last_seen_at: datetime | None
    last_seen_where: str
    circumstances: str


class PossibleLossList(BaseModel):
    items: list[PossibleLossOut]


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(max_length=500, description="Why the device is not lost, e.g. where it is")
