"""Loss reports with their breach assessment, the 72-hour clock, outcome and timeline."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import enum_column


class LossKind(enum.StrEnum):
    LOST = "lost"
    STOLEN = "stolen"


class RiskLevel(enum.StrEnum):
    """The headteacher's judgement of the risk to people (UK GDPR Art. 33 and 34)."""

    UNLIKELY = "unlikely"
    RISK = "risk"
    HIGH = "high"

    @property
    def label(self) -> str:
        return RISK_LABELS[self]


RISK_LABELS = {
    RiskLevel.UNLIKELY: "Unlikely to result in a risk to people",
    RiskLevel.RISK: "Likely to result in a risk to people",
    RiskLevel.HIGH: "Likely to result in a high risk to people",
}


class Decision(enum.StrEnum):
    REPORT = "report"
    NO_REPORT = "no_report"

    @property
    def label(self) -> str:
        return DECISION_LABELS[self]


DECISION_LABELS = {
    Decision.REPORT: "Report to the ICO",
    Decision.NO_REPORT: "Not reportable to the ICO",
}


class Outcome(enum.StrEnum):
    FOUND = "found"
    STOLEN = "stolen"
    WRITTEN_OFF = "written_off"

    @property
    def label(self) -> str:
        return OUTCOME_LABELS[self]


OUTCOME_LABELS = {
    Outcome.FOUND: "Found",
    Outcome.STOLEN: "Stolen",
    Outcome.WRITTEN_OFF: "Written off",
}


class LossReport(Base):
    """One lost or stolen device: kept for good in the breach log, reported to the ICO or not."""

    __tablename__ = "loss_reports"
    __table_args__ = (
        Index("ix_loss_reports_school_id_closed_at", "school_id", "closed_at"),
        # At most one open case per device, even when two people report it at the same moment.
        Index(
            "uq_loss_reports_open_device",
            "device_id",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[LossKind] = mapped_column(enum_column(LossKind))
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime]
    last_seen_where: Mapped[str] = mapped_column(String(200))
    circumstances: Mapped[str] = mapped_column(Text)
    police_reference: Mapped[str | None] = mapped_column(String(64))
    # The 72 hours run from here; it starts as the report time and changes only with a reason.
    aware_at: Mapped[datetime]
    lost_mode_note: Mapped[str | None] = mapped_column(String(300))
    # 0 none yet, 1 at 24 hours, 2 at 48 hours, 3 overdue: each reminder goes out once.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)

    # What Trolley knew when the headteacher assessed it, kept as it was then.
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    personal_data: Mapped[str | None] = mapped_column(Text)
    risk: Mapped[RiskLevel | None] = mapped_column(enum_column(RiskLevel))
    risk_notes: Mapped[str | None] = mapped_column(Text)
    assessed_at: Mapped[datetime | None]
    assessed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    decision: Mapped[Decision | None] = mapped_column(enum_column(Decision))
    justification: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ico_reference: Mapped[str | None] = mapped_column(String(64))
    ico_reported_at: Mapped[datetime | None]

    outcome: Mapped[Outcome | None] = mapped_column(enum_column(Outcome))
    outcome_reference: Mapped[str | None] = mapped_column(String(100))
    outcome_note: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    device: Mapped[Device] = relationship()
    reported_by: Mapped[User | None] = relationship(foreign_keys=[reported_by_id])
    assessed_by: Mapped[User | None] = relationship(foreign_keys=[assessed_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def link(self) -> str:
        return f"/losses/{self.id}"


class LossEvent(Base):
    """One step of a case: reported, assessed, decided, alerted, escalated, closed."""

    __tablename__ = "loss_events"
    __table_args__ = (Index("ix_loss_events_loss_id_at", "loss_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    loss_id: Mapped[int] = mapped_column(ForeignKey("loss_reports.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(1000))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor: Mapped[User | None] = relationship()


class LossSettings(Base):
    """A school's loss settings: the data protection officer's address, if it has one."""

    __tablename__ = "loss_settings"

    school_id: Mapped[int] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True
    )
    dpo_email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class PossibleLossSource(enum.StrEnum):
    """Why Trolley thinks a device may be lost (P-TROLLEY-2, P-AUDIT-1)."""

    NOT_BACK = "not_back"  # not back at the end of the day, still not found next morning
    AUDIT = "audit"  # missing when a termly audit was signed off

    @property
    def label(self) -> str:
        return POSSIBLE_SOURCE_LABELS[self]


POSSIBLE_SOURCE_LABELS = {
    PossibleLossSource.NOT_BACK: "Not back at the end of the day, and not found next morning",
    PossibleLossSource.AUDIT: "Missing when the termly audit was signed off",
}


class PossibleLossOutcome(enum.StrEnum):
    REPORTED = "reported"
    FOUND = "found"
    DISMISSED = "dismissed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class PossibleLoss(Base):
    """A device Trolley offers the headteacher as possibly lost, until it is reported or found."""

    __tablename__ = "possible_losses"
    __table_args__ = (
        Index("ix_possible_losses_school_id_resolved_at", "school_id", "resolved_at"),
        # One open offer per device, however many workers or audits raise one at once.
        Index(
            "uq_possible_losses_open_device",
            "device_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    source: Mapped[PossibleLossSource] = mapped_column(enum_column(PossibleLossSource))
    # The loan item or the audit that raised it (their tables are other domains' branches).
    source_id: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What Trolley knew, ready for a loss report made in one action.
    last_seen_at: Mapped[datetime | None]
    last_seen_where: Mapped[str] = mapped_column(String(200))
    circumstances: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[PossibleLossOutcome | None] = mapped_column(enum_column(PossibleLossOutcome))
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(500))
    loss_report_id: Mapped[int | None] = mapped_column(ForeignKey("loss_reports.id"))

    device: Mapped[Device] = relationship()
    resolved_by: Mapped[User | None] = relationship()

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
