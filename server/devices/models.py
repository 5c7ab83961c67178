"""The asset register: devices and their timeline."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.schools.models import Location, enum_column


class Platform(enum.StrEnum):
    IPADOS = "ipados"
    CHROMEOS = "chromeos"
    LINUX = "linux"
    OTHER = "other"

    @property
    def label(self) -> str:
        return PLATFORM_LABELS[self]


PLATFORM_LABELS = {
    Platform.IPADOS: "iPad",
    Platform.CHROMEOS: "Chromebook",
    Platform.LINUX: "Linux kiosk",
    Platform.OTHER: "Other",
}


class DeviceStatus(enum.StrEnum):
    IN_STOCK = "in_stock"
    IN_SERVICE = "in_service"
    IN_REPAIR = "in_repair"
    LOST = "lost"
    STOLEN = "stolen"
    DISPOSED = "disposed"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class Latest(enum.Enum):
    """The device's latest erasure: what its reports are judged against unless told otherwise."""

    ERASE = "latest erase"


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("school_id", "asset_tag"),
        # Unique within a school only: a school must never learn, or be blocked by, what
        # another school has registered.
        UniqueConstraint("school_id", "serial"),
        UniqueConstraint("home_location_id", "home_slot"),
        # Each filter or sort key, then the asset tag: a page comes straight off the index in
        # order (bench/bench_register.py). The status index also carries what a text search
        # reads, so counting matches never touches the table.
        Index(
            "ix_devices_school_status_search",
            "school_id",
            "status",
            "asset_tag",
            "serial",
            "model",
            "holder_id",
        ),
        Index("ix_devices_school_home_tag", "school_id", "home_location_id", "asset_tag"),
        Index("ix_devices_school_current_tag", "school_id", "current_location_id", "asset_tag"),
        Index(
            "ix_devices_school_warranty_tag", "school_id", "warranty_until", "asset_tag", "status"
        ),
        Index("ix_devices_school_model_tag", "school_id", "model", "asset_tag"),
        Index("ix_devices_school_last_seen_tag", "school_id", "last_seen_at", "asset_tag"),
        Index("ix_devices_school_purchased_tag", "school_id", "purchase_date", "asset_tag"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    asset_tag: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str] = mapped_column(String(64))
    platform: Mapped[Platform] = mapped_column(enum_column(Platform))
    make: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(120))
    os_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[DeviceStatus] = mapped_column(
        enum_column(DeviceStatus), default=DeviceStatus.IN_STOCK
    )
    home_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    home_slot: Mapped[int | None] = mapped_column(Integer)
    current_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    purchase_date: Mapped[date | None]
    purchase_cost_pence: Mapped[int | None] = mapped_column(Integer)
    supplier: Mapped[str | None] = mapped_column(String(120))
    warranty_until: Mapped[date | None]
    notes: Mapped[str | None] = mapped_column(Text)
    last_seen_at: Mapped[datetime | None]
    photo_count: Mapped[int | None] = mapped_column(Integer)
    photo_count_at: Mapped[datetime | None]
    # When its storage was last erased (a reset the device confirmed, or a technician's
    # evidence): its passcode, encryption and settings reported before then describe a device
    # that no longer exists, so they read "not known" until it reports again.
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    home_location: Mapped[Location | None] = relationship(foreign_keys=[home_location_id])
    current_location: Mapped[Location | None] = relationship(foreign_keys=[current_location_id])
    holder: Mapped[User | None] = relationship()
    # What the device last said about its passcode and encryption (P-REG-7); None: never said.
    protection: Mapped[DeviceProtection | None] = relationship(viewonly=True)

    def erasure_counted(self, erased_at: datetime | Latest | None) -> datetime | None:
        """The erasure its reports are judged against: `erased_at`, or its latest."""
        return self.erased_at if erased_at is Latest.ERASE else erased_at

    def erased_since(
        self, reported_at: datetime | None, erased_at: datetime | Latest | None = Latest.ERASE
    ) -> bool:
        """Whether its storage was erased (at `erased_at`, else last) after `reported_at`."""
        erased = self.erasure_counted(erased_at)
        return erased is not None and reported_at is not None and reported_at <= erased

    @property
    def known_photo_count(self) -> int | None:
        """Its reported photo count, unless its storage was erased since (then not known)."""
        return None if self.erased_since(self.photo_count_at) else self.photo_count

    @property
    def reported_protection(self) -> DeviceProtection | None:
        """Its latest passcode and encryption report, unless it has been erased since."""
        row = self.protection
        return None if row is None or self.erased_since(row.reported_at) else row


class DeviceProtection(Base):
    """Whether a device says it needs a passcode to unlock and its storage is encrypted (P-REG-7).

    Only what the device's own latest report says: None is "not known", never a guess.
    """

    __tablename__ = "device_protections"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    passcode: Mapped[bool | None]
    storage_encrypted: Mapped[bool | None]
    passcode_detail: Mapped[str] = mapped_column(String(200), default="")
    encryption_detail: Mapped[str] = mapped_column(String(200), default="")
    reported_at: Mapped[datetime]


class DeviceNetwork(Base):
    """The network a device last said it was on, from its own report or Google's (P-REG-3).

    Two facts, each with its own time: the Wi-Fi and gateway any report names (`reported_at`;
    `network_since` is when the device first named them), and the public address only the
    server's own sight gives (a kiosk's HTTPS check-in, or Google), at `public_address_at`.
    `off_site` is None while the school lists no networks or the device said nothing to judge by.
    """

    __tablename__ = "device_networks"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    ssid: Mapped[str | None] = mapped_column(String(32))
    gateway: Mapped[str | None] = mapped_column(String(45))
    public_address: Mapped[str | None] = mapped_column(String(45))
    public_address_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(16))
    off_site: Mapped[bool | None]
    off_site_since: Mapped[datetime | None]
    reported_at: Mapped[datetime]
    network_since: Mapped[datetime]


# Timeline kinds that are a person with the device in hand (loans and audits scan it).
SCAN_KINDS = ("audit", "scan", "loan_out", "loan_return", "loan_transfer", "wrong_trolley")


class DeviceEvent(Base):
    """One line of a device's timeline: scans, moves, commands, reports, audits, loans."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_device_at", "device_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(500))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor: Mapped[User | None] = relationship()


class ChangeRequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class LocationChangeRequest(Base):
    """A proposed new home for a device; the SBM approves or declines it (P-REG-2)."""

    __tablename__ = "location_change_requests"
    __table_args__ = (Index("ix_location_change_requests_school_status", "school_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    from_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    to_location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"))
    to_slot: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[ChangeRequestStatus] = mapped_column(
        enum_column(ChangeRequestStatus), default=ChangeRequestStatus.PENDING
    )
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(500))

    device: Mapped[Device] = relationship()
    from_location: Mapped[Location | None] = relationship(foreign_keys=[from_location_id])
    to_location: Mapped[Location] = relationship(foreign_keys=[to_location_id])
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
