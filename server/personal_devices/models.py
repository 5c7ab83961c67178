"""Staff members' own devices (P-REG-6), photo use on them (P-PHOTO-4), their losses (P-LOSS-4)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.schools.models import enum_column


class PersonalDevice(Base):
    """A member of staff's own phone or tablet: owner, make and model, serial."""

    __tablename__ = "personal_devices"
    __table_args__ = (Index("ix_personal_devices_school_id_removed_on", "school_id", "removed_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    # A member of staff with an account, or a free-text name for someone without one.
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    owner_name: Mapped[str | None] = mapped_column(String(120))
    make: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(120))
    serial: Mapped[str] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    noted_on: Mapped[date]
    removed_on: Mapped[date | None]
    removed_reason: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])

    @property
    def owner_label(self) -> str:
        if self.owner is not None:
            return self.owner.name
        return self.owner_name or "Unknown"

    @property
    def is_current(self) -> bool:
        return self.removed_on is None


class PhotoAuthorisation(Base):
    """The headteacher's permission to take school photos on a member of staff's own device."""

    __tablename__ = "personal_photo_authorisations"
    __table_args__ = (
        Index("ix_personal_photo_authorisations_school_id_ends_on", "school_id", "ends_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(
        ForeignKey("personal_devices.id", ondelete="CASCADE"), index=True
    )
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    purpose: Mapped[str | None] = mapped_column(String(500))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The school's date of withdrawal: photos taken that day still need confirming.
    withdrawn_on: Mapped[date | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    withdrawn_reason: Mapped[str | None] = mapped_column(String(500))

    device: Mapped[PersonalDevice] = relationship()
    granted_by: Mapped[User | None] = relationship(foreign_keys=[granted_by_id])
    withdrawn_by: Mapped[User | None] = relationship(foreign_keys=[withdrawn_by_id])

    @property
    def last_day(self) -> date:
        """The last day photos may be taken: the end date, or the day it was withdrawn."""
        if self.withdrawn_on is not None and self.withdrawn_on < self.ends_on:
            return self.withdrawn_on
        return self.ends_on

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.last_day


class PhotoDayState(enum.StrEnum):
    MOVED_AND_DELETED = "moved_and_deleted"
    NOT_USED = "not_used"
    NOT_CONFIRMED = "not_confirmed"

    @property
    def label(self) -> str:
        return PHOTO_DAY_LABELS[self]


PHOTO_DAY_LABELS = {
    PhotoDayState.MOVED_AND_DELETED: "Photos moved to school storage and deleted",
    PhotoDayState.NOT_USED: "No school photos taken",
    PhotoDayState.NOT_CONFIRMED: "Not confirmed",
}


class PhotoDay(Base):
    """One authorised school day: the owner's confirmation, or the record that none came."""

    __tablename__ = "personal_photo_days"
    __table_args__ = (UniqueConstraint("device_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    authorisation_id: Mapped[int] = mapped_column(
        ForeignKey("personal_photo_authorisations.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int] = mapped_column(ForeignKey("personal_devices.id", ondelete="CASCADE"))
    day: Mapped[date]
    state: Mapped[PhotoDayState] = mapped_column(enum_column(PhotoDayState))
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    confirmed_at: Mapped[datetime | None]
    owner_chased_at: Mapped[datetime | None]
    head_chased_at: Mapped[datetime | None]

    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])


class ReportKind(enum.StrEnum):
    LOST = "lost"
    STOLEN = "stolen"
    NEW_OWNER = "new_owner"

    @property
    def label(self) -> str:
        return REPORT_LABELS[self]


REPORT_LABELS = {
    ReportKind.LOST: "Lost",
    ReportKind.STOLEN: "Stolen",
    ReportKind.NEW_OWNER: "Passed to a new owner",
}


class PersonalDeviceReport(Base):
    """A staff device's loss, theft or change of owner, as reported to the school (P-LOSS-4)."""

    __tablename__ = "personal_device_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("personal_devices.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ReportKind] = mapped_column(enum_column(ReportKind))
    happened_on: Mapped[date]
    details: Mapped[str] = mapped_column(Text)
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)

    device: Mapped[PersonalDevice] = relationship()
    reported_by: Mapped[User | None] = relationship(foreign_keys=[reported_by_id])
