"""API shapes for locations and terms."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from server.devices.models import DeviceStatus
from server.schools.models import LocationKind


class LocationOut(BaseModel):
    id: int
    name: str
    kind: LocationKind
    parent_id: int | None
    path: str
    capacity: int | None
    code: str | None = None
    devices_home: int
    devices_here: int


class LocationList(BaseModel):
    items: list[LocationOut]


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: LocationKind
    name: str = Field(min_length=1, max_length=120)
    parent_id: int | None = Field(default=None, description="Where it sits; none for a site")
    capacity: int | None = Field(
        default=None, ge=1, le=200, description="Slots; trolleys, safes and cupboards only"
    )
    code: str | None = Field(default=None, max_length=32)


class LocationPatch(BaseModel):
    """Send only what changes; `parent_id: null` moves a site to the top level."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=120)
    parent_id: int | None = None
    capacity: int | None = Field(default=None, ge=1, le=200)
    code: str | None = Field(default=None, max_length=32)


class SlotOut(BaseModel):
    number: int
    asset_tag: str | None


class PlacedDevice(BaseModel):
    asset_tag: str
    model: str
    status: DeviceStatus
    home_location_id: int | None
    home_slot: int | None
    current_location_id: int | None
    holder: str | None


class LocationDetail(LocationOut):
    children: list[LocationOut]
    slots: list[SlotOut]
    free_slots: list[int]
    living_here: list[PlacedDevice]
    here_now: list[PlacedDevice]


class Deleted(BaseModel):
    deleted: bool
    id: int


class TermOut(BaseModel):
    id: int
    name: str
    starts_on: date
    half_term_starts_on: date
    half_term_ends_on: date
    ends_on: date


class TermList(BaseModel):
    items: list[TermOut]


class TermPatch(BaseModel):
    """Send only the dates that change (YYYY-MM-DD)."""

    model_config = ConfigDict(extra="forbid")

    starts_on: date | None = None
    half_term_starts_on: date | None = None
    half_term_ends_on: date | None = None
    ends_on: date | None = None
