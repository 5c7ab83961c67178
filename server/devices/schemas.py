"""API shapes for the register."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from server.devices.models import DeviceStatus, Platform
from server.devices.services.parsing import parse_money, parse_uk_date


class DeviceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        default=None, max_length=100, description="Asset tag, serial, model or holder"
    )
    status: DeviceStatus | None = None
    platform: Platform | None = None
    home_location_id: int | None = None
    current_location_id: int | None = None
    warranty_within_days: int | None = Field(default=None, ge=0, le=3650)
    protection: Literal["gaps"] | None = Field(
        default=None,
        description="`gaps`: devices whose own reports say their passcode or encryption is off, "
        "or say nothing (P-REG-7)",
    )
    include_disposed: bool = False
    sort: Literal[
        "asset_tag", "serial", "model", "status", "warranty", "last_seen", "purchased"
    ] = "asset_tag"
    descending: bool = False
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=500)


class PlaceOut(BaseModel):
    id: int
    name: str
    kind: str


class DeviceOut(BaseModel):
    asset_tag: str
    serial: str
    platform: Platform
    make: str
    model: str
    os_version: str | None
    status: DeviceStatus
    home_location: PlaceOut | None
    home_slot: int | None
    current_location: PlaceOut | None
    holder: str | None
    purchase_date: date | None
    purchase_cost_pence: int | None
    supplier: str | None
    warranty_until: date | None
    last_seen_at: datetime | None
    photo_count: int | None = Field(
        default=None,
        description="Photos on it, as the device last counted them; null: never reported, or "
        "erased since (not known)",
    )
    photo_count_at: datetime | None = Field(
        default=None, description="When the device counted them; null with a null count"
    )
    passcode: bool | None = Field(
        default=None, description="Whether the device reports a passcode; null: not known"
    )
    storage_encrypted: bool | None = Field(
        default=None, description="Whether the device reports encrypted storage; null: not known"
    )
    protection_reported_at: datetime | None = None
    erased_at: datetime | None = Field(
        default=None,
        description="When its storage was last erased (confirmed by the device or recorded by a "
        "technician); a photo count, passcode and encryption reported before then read null",
    )


class DeviceList(BaseModel):
    items: list[DeviceOut]
    total: int = Field(description="Matching devices; a lower bound when total_exact is false")
    total_exact: bool = Field(
        description="False when more than 10,000 match (counting stops there to stay fast)"
    )
    page: int
    per_page: int


class EventOut(BaseModel):
    at: datetime
    kind: str
    summary: str
    actor: str | None


class DeviceDetail(DeviceOut):
    timeline: list[EventOut]


# --- values as school staff type them -----------------------------------------------------

Money = Annotated[int, BeforeValidator(lambda v: parse_money(v) if isinstance(v, str) else v)]
UKDate = Annotated[date, BeforeValidator(lambda v: parse_uk_date(v) if isinstance(v, str) else v)]


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    asset_tag: str = Field(min_length=1, max_length=32)
    serial: str = Field(min_length=1, max_length=64)
    platform: Platform
    make: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=120)
    os_version: str | None = Field(default=None, max_length=64)
    purchase_date: UKDate | None = None
    purchase_cost_pence: Money | None = Field(
        default=None, description="Pence, or text like £329.00"
    )
    supplier: str | None = Field(default=None, max_length=120)
    warranty_until: UKDate | None = None
    home_location_id: int | None = None
    home_slot: int | None = Field(default=None, ge=1, le=200)
    notes: str | None = Field(default=None, max_length=2000)
    status: DeviceStatus = DeviceStatus.IN_SERVICE


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    asset_tag: str | None = Field(default=None, min_length=1, max_length=32)
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    platform: Platform | None = None
    make: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=120)
    os_version: str | None = Field(default=None, max_length=64)
    purchase_date: UKDate | None = None
    purchase_cost_pence: Money | None = None
    supplier: str | None = Field(default=None, max_length=120)
    warranty_until: UKDate | None = None
    notes: str | None = Field(default=None, max_length=2000)


class Issue(BaseModel):
    field: str
    message: str


class DeviceSaved(BaseModel):
    device: DeviceOut
    warnings: list[Issue]


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: DeviceStatus
    reason: str = Field(min_length=1, max_length=500)


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    location_id: int
    slot: int | None = Field(default=None, ge=1, le=200)
    reason: str = Field(min_length=1, max_length=500)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    approve: bool
    reason: str = Field(default="", max_length=500)


class MoveOut(BaseModel):
    id: int
    asset_tag: str
    from_location: str | None
    to_location: str
    to_slot: int | None
    reason: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None


class MoveList(BaseModel):
    items: list[MoveOut]
