"""A school's link to its Google domain, the Chromebooks Google reports, and commands in flight."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from server.auth.models import User
from server.commands.models import Command
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import enum_column


class GoogleLink(Base):
    """The school's Google Workspace domain: a sealed service-account key and who it acts as."""

    __tablename__ = "google_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), unique=True
    )
    customer_id: Mapped[str] = mapped_column(String(64))
    admin_email: Mapped[str] = mapped_column(String(254))
    client_email: Mapped[str] = mapped_column(String(254))
    key_id: Mapped[str] = mapped_column(String(64))
    key_sealed: Mapped[str] = mapped_column(Text)
    # The school's own public addresses (CIDR): a Chromebook last seen elsewhere is off-site.
    school_networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    tested_at: Mapped[datetime | None]
    test_problems: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Chrome Policy API schema names Google confirmed exist, checked when the link is tested.
    known_schemas: Mapped[list[str]] = mapped_column(JSON, default=list)
    synced_at: Mapped[datetime | None]
    sync_problem: Mapped[str | None] = mapped_column(String(500))
    # Why the last automatic push of profiles left some org unit alone, in words.
    policy_problems: Mapped[list[str]] = mapped_column(JSON, default=list)

    created_by: Mapped[User | None] = relationship()

    @property
    def working(self) -> bool:
        return self.tested_at is not None and not self.test_problems


class GoogleDevice(Base):
    """One ChromeOS device as Google's directory last described it, matched to the register."""

    # Statuses in which Google still manages the device, so it can be sent commands.
    MANAGED: ClassVar[tuple[str, ...]] = ("ACTIVE", "DISABLED")

    __tablename__ = "google_devices"
    __table_args__ = (
        UniqueConstraint("school_id", "google_id"),
        Index("ix_google_devices_school_serial", "school_id", "serial"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), unique=True
    )
    google_id: Mapped[str] = mapped_column(String(128))
    serial: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(120), default="")
    os_version: Mapped[str] = mapped_column(String(64), default="")
    last_sync: Mapped[datetime | None]
    org_unit_path: Mapped[str] = mapped_column(String(400), default="")
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")
    auto_update_expires: Mapped[date | None]
    networks: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    off_site: Mapped[bool | None] = mapped_column(Boolean)
    # How many people used it recently; their names are never kept.
    recent_users: Mapped[int] = mapped_column(Integer, default=0)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    device: Mapped[Device | None] = relationship()

    @property
    def disabled(self) -> bool:
        return self.status == "DISABLED"


class Phase(enum.StrEnum):
    WAITING = "waiting"  # not sent yet, or to be tried again at `next_at`
    IN_FLIGHT = "in_flight"  # a call to Google started and its answer is not recorded yet
    POLLING = "polling"  # Google accepted it; its progress is read at `next_at`
    FINISHED = "finished"


class GoogleDelivery(Base):
    """How far one command got through Google; one row per command, so nothing is sent twice."""

    __tablename__ = "google_deliveries"
    __table_args__ = (Index("ix_google_deliveries_phase_next", "phase", "next_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Commands live in another migration branch, so no foreign key (as loans' wipe commands).
    command_id: Mapped[int] = mapped_column(Integer, unique=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    phase: Mapped[Phase] = mapped_column(enum_column(Phase))
    google_command_id: Mapped[str | None] = mapped_column(String(32))
    google_state: Mapped[str] = mapped_column(String(32), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime]
    last_error: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    command: Mapped[Command] = relationship(
        primaryjoin=lambda: foreign(GoogleDelivery.command_id) == Command.id, viewonly=True
    )


class PolicyState(enum.StrEnum):
    ENFORCED = "enforced"
    FAILED = "failed"
    NOT_SUPPORTED = "not_supported"
    PENDING = "pending"


class GooglePolicySetting(Base):
    """One setting of a profile pushed to an org unit, and what Google says is in force."""

    __tablename__ = "google_policy_settings"
    __table_args__ = (UniqueConstraint("school_id", "org_unit_id", "schema", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    profile_version_id: Mapped[int | None] = mapped_column(Integer)
    org_unit_id: Mapped[str] = mapped_column(String(64))
    org_unit_path: Mapped[str] = mapped_column(String(400), default="")
    # A Chrome policy schema and field; schema "" for a profile setting Google cannot express.
    schema: Mapped[str] = mapped_column(String(120))
    field: Mapped[str] = mapped_column(String(120))
    desired: Mapped[Any] = mapped_column(JSON)
    applied: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    state: Mapped[PolicyState] = mapped_column(enum_column(PolicyState))
    evidence: Mapped[str] = mapped_column(String(500), default="")
    pushed_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
