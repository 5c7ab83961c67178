"""API shapes for licences and their reconciliation (P-REG-5)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from server.devices.schemas import Money, UKDate


class LicenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    app_name: str = Field(min_length=1, max_length=200)
    app_id: str = Field(
        min_length=1,
        max_length=255,
        description="Bundle id, Chrome extension id or package name, as devices report it",
    )
    seats: int = Field(ge=0, le=100_000)
    supplier: str | None = Field(default=None, max_length=120)
    expires_on: UKDate | None = None
    cost_pence: Money | None = Field(default=None, description="Pence, or text like £329.00")
    notes: str | None = Field(default=None, max_length=2000)


class LicencePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    app_name: str | None = Field(default=None, min_length=1, max_length=200)
    app_id: str | None = Field(default=None, min_length=1, max_length=255)
    seats: int | None = Field(default=None, ge=0, le=100_000)
    supplier: str | None = Field(default=None, max_length=120)
    expires_on: UKDate | None = None
    cost_pence: Money | None = None
    notes: str | None = Field(default=None, max_length=2000)


class LicenceOut(BaseModel):
    id: int
    app_name: str
    app_id: str
    seats: int
    installed: int = Field(description="Devices in the register that report the app installed")
    seats_free: int = Field(description="Negative when over-deployed")
    over_deployed: bool
    expires_on: date | None
    expired: bool
    expiring_soon: bool = Field(description="Ends within the next 60 days")
    supplier: str | None
    cost_pence: int | None
    notes: str | None


class InstallOut(BaseModel):
    asset_tag: str
    version: str | None
    first_seen: datetime
    last_seen: datetime


class LicenceDetail(LicenceOut):
    devices: list[InstallOut]


class UnlicensedOut(BaseModel):
    app_id: str
    name: str
    devices: int


class ReconciliationOut(BaseModel):
    devices_reporting: int = Field(description="Devices that have reported their apps")
    licences: list[LicenceOut]
    unlicensed_total: int
    unlicensed: list[UnlicensedOut] = Field(description="Most installed first (up to 200)")
