"""Disposal batches through an authorised agency, and the erasure evidence they rest on."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import enum_column


class WipeMethod(enum.StrEnum):
    """What the agency does to the storage (P-DISPOSE-1)."""

    FORENSIC_WIPE = "forensic_wipe"
    PHYSICAL_DESTRUCTION = "physical_destruction"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class ErasureMethod(enum.StrEnum):
    """What the school did before the device could join a batch."""

    FACTORY_RESET = "factory_reset"
    DESTROYED = "destroyed"

    @property
    def label(self) -> str:
        return {"factory_reset": "Factory reset", "destroyed": "Screen and storage destroyed"}[
            self.value
        ]


class ErasureSource(enum.StrEnum):
    """Who vouches for an erasure: the device itself, or a person with evidence."""

    DEVICE_ACKNOWLEDGEMENT = "device_acknowledgement"
    TECHNICIAN_EVIDENCE = "technician_evidence"

    @property
    def label(self) -> str:
        return {
            "device_acknowledgement": "device acknowledgement",
            "technician_evidence": "technician with evidence",
        }[self.value]


class DisposalStatus(enum.StrEnum):
    DRAFT = "draft"
    COMPLETED = "completed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class DeviceErasure(Base):
    """A confirmed factory reset or destruction of one device's storage."""

    __tablename__ = "device_erasures"
    __table_args__ = (
        Index("ix_device_erasures_device_id_confirmed_at", "device_id", "confirmed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    method: Mapped[ErasureMethod] = mapped_column(enum_column(ErasureMethod))
    source: Mapped[ErasureSource] = mapped_column(enum_column(ErasureSource))
    confirmed_at: Mapped[datetime]
    evidence: Mapped[str | None] = mapped_column(String(500))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    device: Mapped[Device] = relationship()
    recorded_by: Mapped[User | None] = relationship()


class Disposal(Base):
    """One collection by an authorised agency: a draft until the SBM completes it."""

    __tablename__ = "disposals"
    __table_args__ = (Index("ix_disposals_school_id_status", "school_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    status: Mapped[DisposalStatus] = mapped_column(
        enum_column(DisposalStatus), default=DisposalStatus.DRAFT
    )
    collection_date: Mapped[date | None]
    agency_name: Mapped[str | None] = mapped_column(String(200))
    waste_transfer_note: Mapped[str | None] = mapped_column(String(64))
    erasure_certificate: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None]

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id])
    items: Mapped[list[DisposalItem]] = relationship(
        back_populates="disposal", cascade="all, delete-orphan", order_by="DisposalItem.id"
    )

    @property
    def reference(self) -> str:
        return f"DSP-{self.id:05d}"

    @property
    def is_draft(self) -> bool:
        return self.status is DisposalStatus.DRAFT


class DisposalItem(Base):
    """One device in a batch; a device is disposed of once, so it is in at most one batch."""

    __tablename__ = "disposal_items"
    __table_args__ = (UniqueConstraint("device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    disposal_id: Mapped[int] = mapped_column(
        ForeignKey("disposals.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    wipe_method: Mapped[WipeMethod] = mapped_column(enum_column(WipeMethod))
    certificate_line: Mapped[str | None] = mapped_column(String(64))
    erasure_evidence: Mapped[str] = mapped_column(String(500))
    erasure_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_erasures.id", ondelete="SET NULL")
    )
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    disposal: Mapped[Disposal] = relationship(back_populates="items")
    device: Mapped[Device] = relationship()
    erasure: Mapped[DeviceErasure | None] = relationship()
    added_by: Mapped[User | None] = relationship()
