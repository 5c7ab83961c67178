"""Loans: devices scanned out of a trolley for a lesson (or home) and scanned back in."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from server.auth.models import User
from server.commands.models import Command
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import Location, enum_column


class LoanKind(enum.StrEnum):
    LESSON = "lesson"
    HOME = "home"


class HomeApproval(enum.StrEnum):
    """A home loan waits for the SBM or headteacher (P-TROLLEY-2's one exception)."""

    REQUESTED = "requested"
    APPROVED = "approved"
    DECLINED = "declined"

    @property
    def label(self) -> str:
        return {"requested": "Waiting for approval", "approved": "Approved"}.get(
            self.value, "Declined"
        )


class ItemState(enum.StrEnum):
    OUT = "out"
    RETURNED = "returned"
    TRANSFERRED = "transferred"


class ConditionFlag(enum.StrEnum):
    """Quick condition flags at return (P-AUDIT-2)."""

    CASE_MISSING = "case_missing"
    SCREEN_CRACKED = "screen_cracked"
    NOT_CHARGING = "not_charging"
    OTHER = "other"

    @property
    def label(self) -> str:
        return CONDITION_LABELS[self]


CONDITION_LABELS = {
    ConditionFlag.CASE_MISSING: "Case missing",
    ConditionFlag.SCREEN_CRACKED: "Screen cracked",
    ConditionFlag.NOT_CHARGING: "Not charging",
    ConditionFlag.OTHER: "Other problem",
}


class ScanAction(enum.StrEnum):
    OUT = "out"
    IN = "in"
    TRANSFER = "transfer"
    BATCH = "batch"


class DamageStatus(enum.StrEnum):
    OPEN = "open"
    IN_REPAIR = "in_repair"
    RESOLVED = "resolved"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class LessonPeriod(Base):
    """One lesson of the school day; a loan is due at the end of the current lesson."""

    __tablename__ = "lesson_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    starts: Mapped[time]
    ends: Mapped[time]
    # 0 = Monday … 4 = Friday; None means every school day.
    weekday: Mapped[int | None] = mapped_column(Integer)


class LoanSettings(Base):
    """When the school day ends (P-TROLLEY-2) and how long loan history is kept (P-SEC-3)."""

    __tablename__ = "loan_settings"

    school_id: Mapped[int] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True
    )
    day_ends: Mapped[time]
    # P-SEC-3: months loans, scans and their timeline entries are kept; None = the default.
    history_months: Mapped[int | None]
    # P-PHOTO-1: devices still out when a lesson ends are asked to wipe their photos too.
    wipe_at_lesson_end: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Loan(Base):
    """A trolley session (teacher, class, trolley, due time) or an approved home loan."""

    __tablename__ = "loans"
    __table_args__ = (
        Index("ix_loans_teacher_closed", "teacher_id", "closed_at"),
        Index("ix_loans_school_closed", "school_id", "closed_at"),
        # The scheduler's "what is due now" across every school.
        Index("ix_loans_closed_due", "closed_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    kind: Mapped[LoanKind] = mapped_column(enum_column(LoanKind), default=LoanKind.LESSON)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    class_label: Mapped[str] = mapped_column(String(64), default="")
    trolley_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    due_notified_at: Mapped[datetime | None]
    # Home loans only.
    reason: Mapped[str | None] = mapped_column(String(500))
    approval: Mapped[HomeApproval | None] = mapped_column(enum_column(HomeApproval))
    requested_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(String(500))
    overdue_notified_on: Mapped[date | None]

    teacher: Mapped[User] = relationship(foreign_keys=[teacher_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    trolley: Mapped[Location | None] = relationship()
    items: Mapped[list[LoanItem]] = relationship(
        back_populates="loan", order_by="LoanItem.id", cascade="all, delete-orphan"
    )


class LoanItem(Base):
    """One device on a loan: scanned out, then returned (or taken over by someone else)."""

    __tablename__ = "loan_items"
    __table_args__ = (
        Index("ix_loan_items_device_out_at", "device_id", "out_at"),
        Index("ix_loan_items_loan_id", "loan_id"),
        # Open items are few: "state first" finds them for one school or for the scheduler.
        Index("ix_loan_items_state_school", "state", "school_id"),
        # A device is out on at most one loan at a time, whatever the application does.
        Index(
            "ix_loan_items_open_device",
            "device_id",
            unique=True,
            sqlite_where=text("state = 'out'"),
            postgresql_where=text("state = 'out'"),
        ),
        # Wipes not yet confirmed are few: the chasing job and the lead's list read only them.
        # (Each predicate is written as that database's queries spell the test, so it is used.)
        Index(
            "ix_loan_items_wipe_outstanding",
            "school_id",
            sqlite_where=text("wipe_outstanding = 1"),
            postgresql_where=text("wipe_outstanding"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    state: Mapped[ItemState] = mapped_column(enum_column(ItemState), default=ItemState.OUT)
    from_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    out_at: Mapped[datetime] = mapped_column(default=utcnow)
    out_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    returned_at: Mapped[datetime | None]
    returned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    return_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    wrong_trolley: Mapped[bool] = mapped_column(Boolean, default=False)
    condition: Mapped[list[str]] = mapped_column(JSON, default=list)
    condition_note: Mapped[str | None] = mapped_column(String(500))
    # The photo wipe asked for at return. No foreign key: the commands table belongs to another
    # migration branch, and a command is only ever deleted with its device (and so this row).
    wipe_command_id: Mapped[int | None] = mapped_column(Integer)
    # Why no wipe was sent (e.g. the device is not enrolled, so someone wipes it by hand).
    wipe_note: Mapped[str | None] = mapped_column(String(200))
    # At take-out, the previous lesson's wipe had not been confirmed: the teacher was told.
    wipe_unconfirmed_at_out: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None]
    # P-PHOTO-1: a wipe was asked for (at the return, or at a lesson's end while out) and neither
    # the device nor a person has confirmed the photos gone. It stays so until one of them does.
    wipe_outstanding: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the teacher and the computing lead were told the wipe failed or expired.
    wipe_chased_at: Mapped[datetime | None]
    # How it was resolved: by a person (who, what they saw, photos left) or, with no person,
    # by the device's own later answer.
    wipe_resolved_at: Mapped[datetime | None]
    wipe_resolved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    wipe_resolution: Mapped[str | None] = mapped_column(String(500))
    wipe_photos_left: Mapped[int | None] = mapped_column(Integer)
    # The wipe asked for at the latest lesson's end while the device was out (no foreign key,
    # as for the return's wipe).
    lesson_wipe_command_id: Mapped[int | None] = mapped_column(Integer)
    lesson_wipe_at: Mapped[datetime | None]
    # Not back at the end of the day and still out next morning: offered to the headteacher.
    loss_offered_at: Mapped[datetime | None]

    loan: Mapped[Loan] = relationship(back_populates="items")
    device: Mapped[Device] = relationship()
    from_location: Mapped[Location | None] = relationship(foreign_keys=[from_location_id])
    return_location: Mapped[Location | None] = relationship(foreign_keys=[return_location_id])
    returned_by: Mapped[User | None] = relationship(foreign_keys=[returned_by_id])
    wipe_command: Mapped[Command | None] = relationship(
        primaryjoin=lambda: foreign(LoanItem.wipe_command_id) == Command.id, viewonly=True
    )
    lesson_wipe_command: Mapped[Command | None] = relationship(
        primaryjoin=lambda: foreign(LoanItem.lesson_wipe_command_id) == Command.id, viewonly=True
    )
    wipe_resolved_by: Mapped[User | None] = relationship(foreign_keys=[wipe_resolved_by_id])


class Scan(Base):
    """One accepted scan, kept by its idempotency key so a re-sent scan is never recorded twice."""

    __tablename__ = "loan_scans"
    __table_args__ = (
        UniqueConstraint("school_id", "key"),
        Index("ix_loan_scans_user_id_at", "user_id", "at"),
        Index("ix_loan_scans_school_at", "school_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[ScanAction] = mapped_column(enum_column(ScanAction))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("loan_items.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # The answer given the first time, returned again when the same scan is re-sent.
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    undone_at: Mapped[datetime | None]


class DamageReport(Base):
    """Damage noticed at return, for the computing lead (P-AUDIT-2)."""

    __tablename__ = "damage_reports"
    __table_args__ = (Index("ix_damage_reports_school_status", "school_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("loan_items.id", ondelete="SET NULL"))
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[DamageStatus] = mapped_column(
        enum_column(DamageStatus), default=DamageStatus.OPEN
    )
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(500))

    device: Mapped[Device] = relationship()
    reported_by: Mapped[User | None] = relationship(foreign_keys=[reported_by_id])
