"""API shapes for staff personal devices: the register, photo use and reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.devices.schemas import UKDate


class EntryIn(BaseModel):
    """A member of staff's own device: their account, or a name for someone without one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner_id: int | None = Field(default=None, description="The member of staff's user id")
    owner_name: str | None = Field(default=None, max_length=120, description="If no account")
    make: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=120)
    serial: str = Field(min_length=1, max_length=64)
    notes: str | None = Field(default=None, max_length=2000)
    noted_on: UKDate | None = Field(default=None, description="Today if left out")


class EntryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner_id: int | None = None
    owner_name: str | None = Field(default=None, max_length=120)
    make: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=120)
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    notes: str | None = Field(default=None, max_length=2000)
    noted_on: UKDate | None = None


class RemoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500)
    removed_on: UKDate | None = Field(default=None, description="Today if left out")


class EntryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_removed: bool = False


class EntryOut(BaseModel):
    id: int
    owner: str
    owner_id: int | None
    make: str
    model: str
    serial: str
    notes: str | None
    noted_on: date
    removed_on: date | None
    removed_reason: str | None
    created_at: datetime


class EntryList(BaseModel):
    current: int
    removed: int
    items: list[EntryOut]


class AuthorisationIn(BaseModel):
    """P-PHOTO-4: the headteacher allows school photos on the device from one day to another."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    starts_on: UKDate
    ends_on: UKDate
    purpose: str | None = Field(default=None, max_length=500)


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=500)


class AuthorisationOut(BaseModel):
    id: int
    device_id: int
    starts_on: date
    ends_on: date
    last_day: date
    purpose: str | None
    granted_by: str | None
    granted_at: datetime
    withdrawn_on: date | None
    withdrawn_reason: str | None


class ConfirmIn(BaseModel):
    """The owner's word for one day: the photos were moved and deleted, or none were taken."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["moved_and_deleted", "not_used"]
    day: UKDate | None = Field(default=None, description="Today if left out")


class DayOut(BaseModel):
    day: date
    state: Literal["moved_and_deleted", "not_used", "not_confirmed"]
    confirmed_at: datetime | None
    late: bool
    owner_chased: bool
    head_chased: bool


class DayList(BaseModel):
    items: list[DayOut]


class ReportIn(BaseModel):
    """P-LOSS-4: the device was lost, stolen or passed to a new owner."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["lost", "stolen", "new_owner"]
    happened_on: UKDate
    details: str = Field(min_length=1, max_length=4000)


class ReportOut(BaseModel):
    id: int
    device_id: int
    kind: str
    happened_on: date
    reported_at: datetime
