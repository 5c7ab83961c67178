"""API shapes for disposal batches and erasure evidence (P-DISPOSE-1)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from server.devices.models import DeviceStatus
from server.devices.schemas import UKDate
from server.disposals.models import DisposalStatus, ErasureMethod, ErasureSource, WipeMethod


class BatchIn(BaseModel):
    """A batch's details; any may wait until they are known, all are needed to complete it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    collection_date: UKDate | None = Field(default=None, description="When the agency collects")
    agency_name: str | None = Field(default=None, max_length=200)
    waste_transfer_note: str | None = Field(
        default=None, max_length=64, description="WEEE waste transfer note number"
    )
    erasure_certificate: str | None = Field(
        default=None, max_length=64, description="Data-erasure certificate number"
    )
    notes: str | None = Field(default=None, max_length=2000)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    asset_tag: str = Field(min_length=1, max_length=32)
    wipe_method: WipeMethod
    certificate_line: str | None = Field(
        default=None, max_length=64, description="This device's line on the certificate"
    )
    erasure_method: ErasureMethod | None = Field(
        default=None,
        description="Only when no erasure is on record: what was done (with the evidence)",
    )
    erasure_evidence: str | None = Field(
        default=None,
        max_length=400,
        description="What shows the storage is erased, e.g. 'screen and storage destroyed'",
    )


class ItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    wipe_method: WipeMethod | None = None
    certificate_line: str | None = Field(default=None, max_length=64)


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    method: ErasureMethod
    evidence: str = Field(min_length=1, max_length=400)


class ErasureOut(BaseModel):
    method: ErasureMethod
    source: ErasureSource
    confirmed_at: datetime
    evidence: str | None
    recorded_by: str | None
    summary: str


class ItemOut(BaseModel):
    asset_tag: str
    serial: str
    make: str
    model: str
    status: DeviceStatus
    wipe_method: WipeMethod
    certificate_line: str | None
    erasure_evidence: str
    added_by: str | None
    added_at: datetime


class BatchSummaryOut(BaseModel):
    id: int
    reference: str
    status: DisposalStatus
    collection_date: date | None
    agency_name: str | None
    device_count: int
    created_at: datetime
    completed_at: datetime | None


class BatchList(BaseModel):
    items: list[BatchSummaryOut]


class Discarded(BaseModel):
    id: int
    devices_kept: list[str] = Field(description="Devices that were in it; still in the register")


class Problem(BaseModel):
    field: str
    message: str


class BatchOut(BaseModel):
    id: int
    reference: str
    status: DisposalStatus
    collection_date: date | None
    agency_name: str | None
    waste_transfer_note: str | None
    erasure_certificate: str | None
    notes: str | None
    created_by: str | None
    created_at: datetime
    completed_by: str | None
    completed_at: datetime | None
    devices: list[ItemOut]
    problems: list[Problem] = Field(
        description="What still stops a draft from being completed (empty when it can be)"
    )


class DeviceDisposal(BaseModel):
    """Whether a device can be disposed of, why not, and the evidence on record."""

    asset_tag: str
    status: DeviceStatus
    can_join_batch: bool
    refusal: str | None
    disposal_id: int | None
    disposal_reference: str | None
    erasures: list[ErasureOut]
