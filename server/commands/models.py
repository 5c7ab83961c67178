"""The command outbox: what the school asked a device to do, and how far it got."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import Role, User
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import enum_column


class CommandStatus(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    QUEUED = "queued"
    SENT = "sent"
    RECEIVED = "received"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Disruption(enum.StrEnum):
    """What a destructive command costs the school, counted against its fleet-disruption budget."""

    OUT_OF_USE = "out_of_use"  # lock, lost mode on
    PHOTO_WIPE = "photo_wipe"  # wiping photos by hand (a return's own wipe is not counted)
    FACTORY_RESET = "factory_reset"

    @property
    def label(self) -> str:
        return DISRUPTION_LABELS[self]


DISRUPTION_LABELS = {
    Disruption.OUT_OF_USE: "lock or lost mode",
    Disruption.PHOTO_WIPE: "photo wipe by hand",
    Disruption.FACTORY_RESET: "factory reset",
}


FINISHED = frozenset(
    {
        CommandStatus.DONE,
        CommandStatus.FAILED,
        CommandStatus.REJECTED,
        CommandStatus.EXPIRED,
        CommandStatus.CANCELLED,
    }
)


class Command(Base):
    """One instruction to one device; the worker publishes queued rows and records acks."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_status_created", "status", "created_at"),
        Index("ix_commands_device_created", "device_id", "created_at"),
        Index("ix_commands_school_created", "school_id", "created_at"),
        Index("ix_commands_school_status_created", "school_id", "status", "created_at"),
        Index("ix_commands_school_disruption_created", "school_id", "disruption", "created_at"),
        # The outbox: the worker claims queued rows in id order many times a second, and the
        # table keeps every command a school ever sent; this index holds the waiting ones only.
        Index(
            "ix_commands_queued",
            "id",
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    cmd_id: Mapped[str] = mapped_column(String(36), unique=True)
    batch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[CommandStatus] = mapped_column(enum_column(CommandStatus))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int | None] = mapped_column(Integer)
    mqtt_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500), default="")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set on the rows that count against the school's budget; None for everything routine.
    disruption: Mapped[Disruption | None] = mapped_column(enum_column(Disruption))
    # Only someone in this role may approve it (a teacher's fourth loss report in an hour waits
    # for the headteacher, P-LOSS-3); None: any independent second person.
    approver_role: Mapped[Role | None] = mapped_column(enum_column(Role))

    device: Mapped[Device] = relationship()
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    approved_by: Mapped[User | None] = relationship(foreign_keys=[approved_by_id])


class FreezeState(enum.StrEnum):
    ASKED = "asked"  # an administrator asked; a second one must confirm
    FROZEN = "frozen"
    LIFTED = "lifted"
    LAPSED = "lapsed"  # nobody confirmed the request in time

    @property
    def label(self) -> str:
        return self.value.capitalize()


class FleetFreeze(Base):
    """A school's stop on every destructive command: asked for, in force, and lifted."""

    __tablename__ = "fleet_freezes"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    state: Mapped[FreezeState] = mapped_column(enum_column(FreezeState))
    reason: Mapped[str] = mapped_column(String(500), default="")
    asked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    asked_at: Mapped[datetime]
    frozen_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    frozen_at: Mapped[datetime | None]
    lift_asked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    lift_asked_at: Mapped[datetime | None]
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lifted_at: Mapped[datetime | None]

    asked_by: Mapped[User | None] = relationship(foreign_keys=[asked_by_id])
    frozen_by: Mapped[User | None] = relationship(foreign_keys=[frozen_by_id])
    lift_asked_by: Mapped[User | None] = relationship(foreign_keys=[lift_asked_by_id])
    lifted_by: Mapped[User | None] = relationship(foreign_keys=[lifted_by_id])
