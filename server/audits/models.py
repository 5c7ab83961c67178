"""Termly audits (every expected device starts missing), photo checks and GDPR spot checks."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import Location, Term, enum_column


class AuditStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AuditState(enum.StrEnum):
    """Where one expected device stands in an audit (the Frontline model)."""

    MISSING = "missing"
    VERIFIED = "verified"
    MISPLACED = "misplaced"
    FOUND = "found"

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS = {
    AuditState.MISSING: "Missing",
    AuditState.VERIFIED: "Verified",
    AuditState.MISPLACED: "Misplaced",
    AuditState.FOUND: "Found (was lost or stolen)",
}

# The condition checklist (P-AUDIT-2): the column, what "yes" means, and what "no" means.
CONDITION_CHECKS: dict[str, tuple[str, str]] = {
    "case_on": ("Case on", "no case"),
    "screen_intact": ("Screen intact", "screen damaged"),
    "charger": ("Charger present", "charger missing"),
    "label_readable": ("Label readable", "label unreadable"),
    "powers_on": ("Powers on", "does not power on"),
}


class Audit(Base):
    """One termly check of the whole school or of chosen places, signed off and then locked."""

    __tablename__ = "audits"
    __table_args__ = (
        Index("ix_audits_school_term", "school_id", "term_id"),
        # One audit open at a time per school, even when two people start one at once.
        Index(
            "uq_audits_open_school",
            "school_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    term_id: Mapped[int] = mapped_column(ForeignKey("terms.id"))
    whole_school: Mapped[bool] = mapped_column(Boolean, default=True)
    scope_location_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    status: Mapped[AuditStatus] = mapped_column(enum_column(AuditStatus), default=AuditStatus.OPEN)
    expected_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Closing is the computing lead's sign-off; nothing can be scanned into it afterwards.
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sign_off_note: Mapped[str | None] = mapped_column(String(1000))
    countersigned_at: Mapped[datetime | None]
    countersigned_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    countersign_note: Mapped[str | None] = mapped_column(String(1000))
    follow_ups_at: Mapped[datetime | None]
    follow_ups_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    previous_audit_id: Mapped[int | None] = mapped_column(ForeignKey("audits.id"))
    # The counts as they stood at sign-off, for lists and home pages.
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    term: Mapped[Term] = relationship()
    started_by: Mapped[User | None] = relationship(foreign_keys=[started_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    countersigned_by: Mapped[User | None] = relationship(foreign_keys=[countersigned_by_id])
    follow_ups_by: Mapped[User | None] = relationship(foreign_keys=[follow_ups_by_id])

    @property
    def is_open(self) -> bool:
        return self.status is AuditStatus.OPEN


class AuditItem(Base):
    """One device in an audit: expected (or scanned although not expected), and what was seen."""

    __tablename__ = "audit_items"
    __table_args__ = (
        UniqueConstraint("audit_id", "device_id"),
        Index("ix_audit_items_audit_place", "audit_id", "expected_location_id"),
        Index("ix_audit_items_device", "device_id"),
        # Each list in the report reads its first rows in tag order straight off an index:
        # by result, and the damaged, silent and photo-holding devices.
        Index("ix_audit_items_audit_state_tag", "audit_id", "state", "asset_tag"),
        Index("ix_audit_items_audit_damaged_tag", "audit_id", "damaged", "asset_tag"),
        Index("ix_audit_items_audit_silent_tag", "audit_id", "silent", "asset_tag"),
        Index("ix_audit_items_audit_photos_tag", "audit_id", "holding_photos", "asset_tag"),
        Index("ix_audit_items_audit_last_term_tag", "audit_id", "missing_last_term", "asset_tag"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # The tag as it was when the audit started: the report is in tag order.
    asset_tag: Mapped[str] = mapped_column(String(32))
    expected: Mapped[bool] = mapped_column(Boolean, default=True)
    # The device's home when the audit started: progress is counted per home.
    expected_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    state: Mapped[AuditState] = mapped_column(enum_column(AuditState), default=AuditState.MISSING)
    scanned_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    first_scanned_at: Mapped[datetime | None]
    scanned_at: Mapped[datetime | None]
    scanned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    scan_count: Mapped[int] = mapped_column(Integer, default=0)

    case_on: Mapped[bool | None] = mapped_column(Boolean)
    screen_intact: Mapped[bool | None] = mapped_column(Boolean)
    charger: Mapped[bool | None] = mapped_column(Boolean)
    label_readable: Mapped[bool | None] = mapped_column(Boolean)
    powers_on: Mapped[bool | None] = mapped_column(Boolean)
    damaged: Mapped[bool] = mapped_column(Boolean, default=False)
    condition_note: Mapped[str | None] = mapped_column(String(500))
    condition_at: Mapped[datetime | None]
    condition_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    # What the register and the device itself said at sign-off, so the report never shifts.
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_seen_at: Mapped[datetime | None]
    online: Mapped[bool | None] = mapped_column(Boolean)
    photo_count: Mapped[int | None] = mapped_column(Integer)
    photo_count_at: Mapped[datetime | None]
    last_scan_at: Mapped[datetime | None]
    last_scan_note: Mapped[str | None] = mapped_column(String(500))
    # Found, but not heard from for 30 days; found, and reporting photos (both at sign-off).
    silent: Mapped[bool | None] = mapped_column(Boolean)
    holding_photos: Mapped[bool | None] = mapped_column(Boolean)
    # Missing in the audit this one is compared with (set at sign-off; None: it was not).
    missing_last_term: Mapped[bool | None] = mapped_column(Boolean)

    # Follow-ups: the loss report raised for a missing device, the repair for a damaged one.
    loss_report_id: Mapped[int | None] = mapped_column(Integer)
    repair_raised_at: Mapped[datetime | None]

    audit: Mapped[Audit] = relationship()
    device: Mapped[Device] = relationship()
    expected_location: Mapped[Location | None] = relationship(foreign_keys=[expected_location_id])
    scanned_location: Mapped[Location | None] = relationship(foreign_keys=[scanned_location_id])
    scanned_by: Mapped[User | None] = relationship(foreign_keys=[scanned_by_id])

    @property
    def problems(self) -> list[str]:
        return [bad for key, (_ok, bad) in CONDITION_CHECKS.items() if getattr(self, key) is False]


class AuditUnknownTag(Base):
    """A label scanned in an audit that is not in the register, kept for follow-up."""

    __tablename__ = "audit_unknown_tags"
    __table_args__ = (UniqueConstraint("audit_id", "tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    audit_id: Mapped[int] = mapped_column(ForeignKey("audits.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(32))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    first_scanned_at: Mapped[datetime] = mapped_column(default=utcnow)
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow)
    scanned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    scan_count: Mapped[int] = mapped_column(Integer, default=1)

    location: Mapped[Location | None] = relationship()
    scanned_by: Mapped[User | None] = relationship()


class AuditReminder(Base):
    """A reminder that went out (each once per term and kind, however many workers run)."""

    __tablename__ = "audit_reminders"
    __table_args__ = (UniqueConstraint("school_id", "term_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    term_id: Mapped[int] = mapped_column(ForeignKey("terms.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class PhotoCheckStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETE = "complete"


class PhotoCheck(Base):
    """The half-termly check that photos are gone (P-PHOTO-2): evidence for governors."""

    __tablename__ = "photo_checks"
    __table_args__ = (
        Index("ix_photo_checks_school_term", "school_id", "term_id", "half"),
        Index(
            "uq_photo_checks_open_school",
            "school_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    term_id: Mapped[int] = mapped_column(ForeignKey("terms.id"))
    half: Mapped[int] = mapped_column(Integer)
    status: Mapped[PhotoCheckStatus] = mapped_column(
        enum_column(PhotoCheckStatus), default=PhotoCheckStatus.OPEN
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    devices_total: Mapped[int] = mapped_column(Integer, default=0)
    never_reported: Mapped[int] = mapped_column(Integer, default=0)
    # How many enrolled devices were asked for a fresh count when the check started.
    asked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    holding_before: Mapped[int] = mapped_column(Integer, default=0)
    photos_before: Mapped[int] = mapped_column(Integer, default=0)
    wipe_requested_at: Mapped[datetime | None]
    wipe_requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cleared: Mapped[int | None] = mapped_column(Integer)
    still_holding: Mapped[int | None] = mapped_column(Integer)
    unconfirmed: Mapped[int | None] = mapped_column(Integer)
    photos_after: Mapped[int | None] = mapped_column(Integer)
    # Devices whose result is a person's record of checking by hand, not the device's answer.
    checked_by_hand: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(1000))

    term: Mapped[Term] = relationship()
    started_by: Mapped[User | None] = relationship(foreign_keys=[started_by_id])
    wipe_requested_by: Mapped[User | None] = relationship(foreign_keys=[wipe_requested_by_id])
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id])


class PhotoCheckItem(Base):
    """A device in the check: what it last said before, its answer since, or a person's record."""

    __tablename__ = "photo_check_items"
    __table_args__ = (UniqueConstraint("check_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    check_id: Mapped[int] = mapped_column(ForeignKey("photo_checks.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # None: the device had never reported its photos when the check started.
    photos_before: Mapped[int | None] = mapped_column(Integer)
    reported_at: Mapped[datetime | None]
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The request for a fresh count and the wipe (commands live in their own domain, so no
    # foreign key across branches).
    inventory_command_id: Mapped[int | None] = mapped_column(Integer)
    command_id: Mapped[int | None] = mapped_column(Integer)
    # What the device itself answered after the check started.
    photos_after: Mapped[int | None] = mapped_column(Integer)
    after_at: Mapped[datetime | None]
    # A person's record of checking the device by hand: who, when, the photos they found left
    # (None: they could not count them) and what they saw.
    by_hand_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    hand_at: Mapped[datetime | None]
    hand_photos: Mapped[int | None] = mapped_column(Integer)
    hand_note: Mapped[str | None] = mapped_column(String(500))
    # When the class teacher was asked to check it (once per check).
    reminded_at: Mapped[datetime | None]

    device: Mapped[Device] = relationship()
    by_hand_by: Mapped[User | None] = relationship()


class SpotCheck(Base):
    """A random sample of devices for a GDPR spot check (P-PHOTO-3), reproducible from its seed."""

    __tablename__ = "spot_checks"
    __table_args__ = (Index("ix_spot_checks_school_drawn", "school_id", "drawn_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(BigInteger)
    sample_size: Mapped[int] = mapped_column(Integer)
    population_size: Mapped[int] = mapped_column(Integer)
    # The sorted device ids drawn from, so anyone can repeat the draw later.
    population: Mapped[list[int]] = mapped_column(JSON, default=list)
    population_sha256: Mapped[str] = mapped_column(String(64))
    drawn_at: Mapped[datetime] = mapped_column(default=utcnow)
    drawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None]

    drawn_by: Mapped[User | None] = relationship()


class SpotCheckItem(Base):
    """One sampled device and what the checker found on it."""

    __tablename__ = "spot_check_items"
    __table_args__ = (UniqueConstraint("spot_check_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    spot_check_id: Mapped[int] = mapped_column(ForeignKey("spot_checks.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    photos_found: Mapped[bool | None] = mapped_column(Boolean)
    other_personal_data: Mapped[bool | None] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(500))
    checked_at: Mapped[datetime | None]
    checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    notified_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    device: Mapped[Device] = relationship()
    checked_by: Mapped[User | None] = relationship(foreign_keys=[checked_by_id])
    notified_user: Mapped[User | None] = relationship(foreign_keys=[notified_user_id])

    @property
    def finding(self) -> bool:
        return bool(self.photos_found or self.other_personal_data)
