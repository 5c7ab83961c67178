"""API shapes for the staff personal devices register (P-REG-6)."""

from __future__ import annotations

from datetime import date, datetime

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
