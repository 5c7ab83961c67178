"""iPads managed through Apple's MDM protocol: each enrolment, and each command in flight."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.commands.models import Command
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import enum_column


class Stage(enum.StrEnum):
    """How far an iPad's enrolment has got."""

    DOWNLOADED = "downloaded"  # Safari fetched the profile; not yet installed
    AUTHENTICATED = "authenticated"  # the iPad installed it and introduced itself
    ENROLLED = "enrolled"  # it sent its push token: Trolley manages it
    CHECKED_OUT = "checked_out"  # the profile was removed, or the iPad was erased
    REPLACED = "replaced"  # a newer enrolment of the same device took over

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS = {
    Stage.DOWNLOADED: "profile downloaded, not yet installed",
    Stage.AUTHENTICATED: "profile installed, enrolment not finished",
    Stage.ENROLLED: "managed by Trolley",
    Stage.CHECKED_OUT: "no longer managed (profile removed or iPad erased)",
    Stage.REPLACED: "replaced by a newer enrolment",
}
ACTIVE = (Stage.AUTHENTICATED, Stage.ENROLLED)


class IpadEnrolment(Base):
    """One enrolment profile issued to one iPad, and what that iPad has reported since."""

    __tablename__ = "ipad_enrolments"
    __table_args__ = (Index("ix_ipad_enrolments_device_stage", "device_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    stage: Mapped[Stage] = mapped_column(enum_column(Stage))
    # The identity the school CA issued for this profile: every message must be signed by it.
    certificate_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(255))
    udid: Mapped[str | None] = mapped_column(String(64), index=True)
    push_token: Mapped[str | None] = mapped_column(String(512))  # hex
    push_magic: Mapped[str | None] = mapped_column(String(128))
    supervised: Mapped[bool | None]
    shared_ipad: Mapped[bool | None]
    # What the iPad last said about itself, and when: shown as it said it, never more.
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    facts_at: Mapped[datetime | None]
    apps_count: Mapped[int | None] = mapped_column(Integer)
    apps_at: Mapped[datetime | None]
    # The desired profile (its sha256) the iPad was last given, and the MDM profile identifier.
    profile_sha256: Mapped[str | None] = mapped_column(String(64))
    profile_identifier: Mapped[str | None] = mapped_column(String(255))
    profile_step: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enrolled_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    checked_out_at: Mapped[datetime | None]
    # The last push through APNs: when, what Apple said, and when the next may go at the earliest.
    pushed_at: Mapped[datetime | None]
    push_result: Mapped[str | None] = mapped_column(String(64))
    push_failures: Mapped[int] = mapped_column(Integer, default=0)
    push_retry_at: Mapped[datetime | None]

    device: Mapped[Device] = relationship()


class PushAuth(enum.StrEnum):
    """How Trolley proves to Apple's push service that it may wake the school's iPads."""

    CERTIFICATE = "certificate"  # the MDM push certificate and its private key
    TOKEN = "token"  # a signing key (.p8) from the school's Apple developer team


class ApplePushCredential(Base):
    """A school's credentials for Apple's push service; the secret part is sealed at rest."""

    __tablename__ = "ipad_push_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), unique=True
    )
    auth: Mapped[PushAuth] = mapped_column(enum_column(PushAuth))
    topic: Mapped[str] = mapped_column(String(255))
    # Certificate: the key and certificate (PEM); token: the .p8 key. Sealed, never shown again.
    secret_sealed: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    not_after: Mapped[datetime | None]
    key_id: Mapped[str | None] = mapped_column(String(16))
    team_id: Mapped[str | None] = mapped_column(String(16))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class IpadDelivery(Base):
    """One Trolley command carried to an iPad as one or more MDM commands, step by step."""

    __tablename__ = "ipad_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[int] = mapped_column(
        ForeignKey("commands.id", ondelete="CASCADE"), unique=True
    )
    enrolment_id: Mapped[int] = mapped_column(
        ForeignKey("ipad_enrolments.id", ondelete="CASCADE"), index=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    # The MDM request types, in order; `step` is the one handed out or next to hand out.
    steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    step: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    not_now: Mapped[int] = mapped_column(Integer, default=0)
    offered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    command: Mapped[Command] = relationship()
    enrolment: Mapped[IpadEnrolment] = relationship()
