"""Leaver cases: what a departing member of staff holds, its return and reset, and sign-off."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import School, enum_column


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ItemKind(enum.StrEnum):
    """A school device to return and reset, or an entry in the staff personal devices register."""

    DEVICE = "device"
    PERSONAL_DEVICE = "personal_device"


class HandoverRoute(enum.StrEnum):
    """The two ways the policy allows a device to be freed for its reset (P-LEAVE-1)."""

    CREDENTIALS = "credentials"
    MEETING = "meeting"

    @property
    def label(self) -> str:
        return ROUTE_LABELS[self]


ROUTE_LABELS = {
    HandoverRoute.CREDENTIALS: "PIN and account details handed over",
    HandoverRoute.MEETING: "Reset meeting on the last day",
}


class ResetSource(enum.StrEnum):
    """Who vouches for a reset: the device's own acknowledgement, or the technician's evidence."""

    DEVICE = "device"
    EVIDENCE = "evidence"

    @property
    def label(self) -> str:
        return {"device": "confirmed by the device", "evidence": "confirmed with evidence"}[
            self.value
        ]


class Signer(enum.StrEnum):
    LEAVER = "leaver"
    LINE_MANAGER = "line_manager"
    TECHNICIAN = "technician"

    @property
    def label(self) -> str:
        return {
            "leaver": "The leaver",
            "line_manager": "Line manager",
            "technician": "Technician",
        }[self.value]


class LeaverCase(Base):
    """One member of staff leaving: their last day, who signs off, and the reset meeting."""

    __tablename__ = "leaver_cases"
    __table_args__ = (
        Index("ix_leaver_cases_school_id_status_last_day", "school_id", "status", "last_day"),
        # A person has at most one open case, even when two people open one at the same moment.
        Index(
            "uq_leaver_cases_open_leaver",
            "leaver_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    # A member of staff with an account, or a name and e-mail for someone without one.
    leaver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    leaver_name: Mapped[str] = mapped_column(String(120))
    leaver_email: Mapped[str] = mapped_column(String(254))
    last_day: Mapped[date]
    line_manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus), default=CaseStatus.OPEN)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When nothing was left to do (the line manager and technician are asked to sign then).
    ready_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    close_note: Mapped[str | None] = mapped_column(String(500))
    leaver_signed_at: Mapped[datetime | None]
    leaver_signed_via: Mapped[str | None] = mapped_column(String(16))
    line_manager_signed_at: Mapped[datetime | None]
    technician_signed_at: Mapped[datetime | None]
    meeting_starts_at: Mapped[datetime | None]
    meeting_ends_at: Mapped[datetime | None]
    meeting_place: Mapped[str | None] = mapped_column(String(200))
    # The invitation's SEQUENCE: a rebooked meeting replaces the old one in people's calendars.
    meeting_sequence: Mapped[int] = mapped_column(Integer, default=0)
    # The invitation's UID (RFC 5545: globally unique), made at the first booking and kept, so
    # a moved or cancelled meeting replaces the same entry in everyone's calendar.
    meeting_uid: Mapped[str | None] = mapped_column(String(36))
    meeting_booked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The personal link for a leaver without an account: only its hash is kept.
    link_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_expires_at: Mapped[datetime | None]
    # The school day on which the headteacher was last told about open items (once a day).
    escalated_on: Mapped[date | None]
    # The leaver's own log-in ends on the last day after sign-off, unless the head says why not.
    account_ended_at: Mapped[datetime | None]
    keep_account_reason: Mapped[str | None] = mapped_column(String(500))

    school: Mapped[School] = relationship()
    leaver: Mapped[User | None] = relationship(foreign_keys=[leaver_id])
    line_manager: Mapped[User | None] = relationship(foreign_keys=[line_manager_id])
    technician: Mapped[User | None] = relationship(foreign_keys=[technician_id])
    opened_by: Mapped[User | None] = relationship(foreign_keys=[opened_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    meeting_booked_by: Mapped[User | None] = relationship(foreign_keys=[meeting_booked_by_id])
    items: Mapped[list[LeaverItem]] = relationship(
        back_populates="case", order_by="LeaverItem.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[LeaverEvent]] = relationship(
        back_populates="case", order_by="LeaverEvent.id", cascade="all, delete-orphan"
    )

    @property
    def is_open(self) -> bool:
        return self.status is CaseStatus.OPEN


class LeaverItem(Base):
    """One thing on a case: a school device (hand-over, return, reset) or a register entry."""

    __tablename__ = "leaver_items"
    __table_args__ = (
        Index("ix_leaver_items_case_id", "case_id"),
        # A device is on at most one open case; closing a case settles its items.
        Index(
            "uq_leaver_items_open_device",
            "device_id",
            unique=True,
            sqlite_where=text("settled_at IS NULL"),
            postgresql_where=text("settled_at IS NULL"),
        ),
        Index("ix_leaver_items_reset_command_id", "reset_command_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(ForeignKey("leaver_cases.id", ondelete="CASCADE"))
    kind: Mapped[ItemKind] = mapped_column(enum_column(ItemKind))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # No foreign keys to personal devices, commands or escrow: those tables belong to other
    # migration branches, and their rows are never deleted while a case refers to them.
    personal_device_id: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(120))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    route: Mapped[HandoverRoute | None] = mapped_column(enum_column(HandoverRoute))
    credentials_at: Mapped[datetime | None]
    escrow_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    returned_at: Mapped[datetime | None]
    returned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reset_command_id: Mapped[int | None] = mapped_column(Integer)
    reset_at: Mapped[datetime | None]
    reset_source: Mapped[ResetSource | None] = mapped_column(enum_column(ResetSource))
    reset_evidence: Mapped[str | None] = mapped_column(Text)
    reset_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    removed_at: Mapped[datetime | None]
    removed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    settled_at: Mapped[datetime | None]

    case: Mapped[LeaverCase] = relationship(back_populates="items")
    device: Mapped[Device | None] = relationship()
    returned_by: Mapped[User | None] = relationship(foreign_keys=[returned_by_id])
    reset_by: Mapped[User | None] = relationship(foreign_keys=[reset_by_id])
    removed_by: Mapped[User | None] = relationship(foreign_keys=[removed_by_id])

    @property
    def is_device(self) -> bool:
        return self.kind is ItemKind.DEVICE


class LeaverEvent(Base):
    """One line of a case's record: who did what, and when."""

    __tablename__ = "leaver_events"
    __table_args__ = (Index("ix_leaver_events_case_id", "case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(ForeignKey("leaver_cases.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(254))
    what: Mapped[str] = mapped_column(String(500))

    case: Mapped[LeaverCase] = relationship(back_populates="events")
