"""API shapes for leaver cases (a secret handed over never appears in a response)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from server.commands.models import CommandStatus
from server.leavers.models import CaseStatus, HandoverRoute, ItemKind, ResetSource, Signer

# Emptiness is the service's to judge, so people get its plain messages; lengths are checked here.


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    leaver_id: int | None = Field(
        default=None, description="The leaver's account; leave out for someone without one"
    )
    leaver_name: str = Field(default="", max_length=120, description="Without an account only")
    leaver_email: str = Field(default="", max_length=254, description="Without an account only")
    last_day: date
    line_manager_id: int
    technician_id: int
    asset_tags: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Devices to add by hand, beyond what the register says they hold",
    )


class CaseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None


class CredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passcode: str = Field(default="", max_length=500, description="The screen passcode or PIN")
    account_email: str = Field(default="", max_length=254, description="Apple ID or Google account")
    account_password: str = Field(default="", max_length=500)


class MeetingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(
        description="On the last day; a time without a zone is the school's local time"
    )
    minutes: int = Field(default=30, description="10 to 240")
    place: str = Field(max_length=200)


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=600, description="A scanned label URL or a typed asset tag")


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evidence: str = Field(
        max_length=2000, description="e.g. 'Activation Lock removed, device re-enrolled'"
    )


class AddDeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_tag: str = Field(max_length=32)


class PersonOut(BaseModel):
    id: int
    name: str


class SignatureOut(BaseModel):
    part: Signer
    name: str | None
    signed_at: datetime | None


class MeetingOut(BaseModel):
    starts_at: datetime
    ends_at: datetime
    place: str
    sequence: int


class ItemOut(BaseModel):
    id: int
    kind: ItemKind
    asset_tag: str | None
    description: str
    source: str
    route: HandoverRoute | None
    handed_over: bool
    credentials_at: datetime | None
    returned_at: datetime | None
    reset_state: str
    reset_at: datetime | None
    reset_source: ResetSource | None
    reset_evidence: str | None
    command_id: int | None
    command_status: CommandStatus | None
    removed_at: datetime | None
    done: bool
    next_step: str


class CaseSummary(BaseModel):
    id: int
    leaver_name: str
    last_day: date
    status: CaseStatus
    opened_at: datetime
    closed_at: datetime | None


class CaseOut(CaseSummary):
    leaver_id: int | None
    leaver_email: str
    line_manager: PersonOut | None
    technician: PersonOut | None
    opened_by: str | None
    ready_at: datetime | None
    close_note: str | None
    overdue: bool
    open_items: int
    meeting: MeetingOut | None
    signatures: list[SignatureOut]
    items: list[ItemOut]
    link: str | None = Field(
        default=None, description="The leaver's personal link: only in the answer that made it"
    )


class CaseList(BaseModel):
    cases: list[CaseSummary]


class EventOut(BaseModel):
    at: datetime
    who: str
    what: str


class RecordOut(BaseModel):
    case: CaseOut
    events: list[EventOut]


class ResetOut(BaseModel):
    command_id: int
    status: CommandStatus
    case: CaseOut


class LinkOut(BaseModel):
    url: str
    expires_at: datetime
