"""Restriction profiles, their versions and assignments, filter exceptions and desired state."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.schools.models import enum_column

# The hash an outbox row carries when a device no longer has any profile: the worker clears the
# retained desired-state message (an empty retained payload) instead of publishing a document.
CLEARED_SHA256 = hashlib.sha256(b"").hexdigest()


class Profile(Base):
    """A restriction profile the school keeps; its settings live in its versions."""

    __tablename__ = "profiles"
    __table_args__ = (UniqueConstraint("school_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    # The profile's `id` in its YAML: Apple identifiers derive from it, so it never changes.
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class ProfileVersion(Base):
    """One saved text of a profile; never changed once written."""

    __tablename__ = "profile_versions"
    __table_args__ = (UniqueConstraint("profile_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    # profile_sha256 of the loaded settings: equal hashes mean equal settings.
    sha256: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    profile: Mapped[Profile] = relationship()
    created_by: Mapped[User | None] = relationship()


class DeviceGroup(Base):
    """A named set of devices (e.g. "Year 6 reading iPads") that a profile can be assigned to."""

    __tablename__ = "device_groups"
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceGroupMember(Base):
    """One device in one group."""

    __tablename__ = "device_group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("device_groups.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TargetType(enum.StrEnum):
    """What a profile (or a filter exception) is assigned to."""

    SCHOOL = "school"
    LOCATION = "location"
    GROUP = "group"
    DEVICE = "device"


class ProfileAssignment(Base):
    """A profile applied to the school, a place, a group or one device; one profile per target.

    For the school itself `target_id` is the school's id, so the unique constraint holds there too.
    """

    __tablename__ = "profile_assignments"
    __table_args__ = (UniqueConstraint("school_id", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    target_type: Mapped[TargetType] = mapped_column(enum_column(TargetType))
    target_id: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    profile: Mapped[Profile] = relationship()


class ExceptionStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class FilterException(Base):
    """A request to unblock web addresses for a period of study (P-PROFILE-3)."""

    __tablename__ = "filter_exceptions"
    __table_args__ = (Index("ix_filter_exceptions_school_status", "school_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    urls: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    class_label: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[TargetType] = mapped_column(enum_column(TargetType))
    target_id: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[ExceptionStatus] = mapped_column(
        enum_column(ExceptionStatus), default=ExceptionStatus.REQUESTED
    )
    # Set when an approved exception first reached the devices' desired state.
    activated_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])


# A desired state whose published copy differs from it (or was never published), spelt as the
# worker's query spells it so that both databases see the index fits.
UNPUBLISHED = "published_sha256 IS NULL OR published_sha256 <> sha256"


class DeviceDesiredState(Base):
    """The outbox of desired state: what each device should enforce.

    The worker publishes every row whose `published_sha256` differs from `sha256` as a signed,
    retained message, then calls `services.mark_published`. A row with no `document` (its sha256
    is `CLEARED_SHA256`) means "no profile any more": clear the retained message.
    """

    __tablename__ = "device_desired_states"
    # What the worker publishes next, in a small index of its own: it asks up to twenty times a
    # second and the table has a row for every device with a profile, nearly all of them published.
    __table_args__ = (
        Index(
            "ix_device_desired_states_unpublished",
            "id",
            sqlite_where=text(UNPUBLISHED),
            postgresql_where=text(UNPUBLISHED),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    profile_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("profile_versions.id", ondelete="SET NULL")
    )
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    sha256: Mapped[str] = mapped_column(String(64))
    # How many settings the document manages: a device is compliant once it has reported
    # every one of them enforced.
    settings_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_sha256: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime | None]

    profile_version: Mapped[ProfileVersion | None] = relationship()


class DeviceProfileStatus(Base):
    """What a device last reported it applied (the hash from its signed report), and when it last
    reported its settings one by one, for which document."""

    __tablename__ = "device_profile_statuses"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    applied_sha256: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[datetime]
    settings_sha256: Mapped[str | None] = mapped_column(String(64))
    settings_at: Mapped[datetime | None]
    # Counted from the settings rows when they are written, so compliance reads one row a device.
    settings_reported: Mapped[int | None] = mapped_column(Integer)
    settings_not_enforced: Mapped[int | None] = mapped_column(Integer)


class AppliedState(enum.StrEnum):
    """What a device said about one setting (the wire's `SettingState`)."""

    ENFORCED = "enforced"
    NOT_SUPPORTED = "not_supported"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"enforced": "Enforced", "not_supported": "Cannot", "failed": "Failed"}[self.value]


class DeviceAppliedSetting(Base):
    """One setting as a device last reported it: the state, why, what it read back, and since when.

    A device's rows describe the document `profile_sha256`; each report replaces them.
    """

    __tablename__ = "device_applied_settings"
    __table_args__ = (UniqueConstraint("device_id", "setting"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    setting: Mapped[str] = mapped_column(String(80))
    state: Mapped[AppliedState] = mapped_column(enum_column(AppliedState))
    detail: Mapped[str] = mapped_column(String(500), default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    profile_sha256: Mapped[str] = mapped_column(String(64))
    # When the device first reported this state (a later report in the same state keeps it).
    since: Mapped[datetime]
