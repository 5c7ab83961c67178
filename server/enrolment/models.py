"""Who devices and the server are: signing keys, the school CA, enrolment tokens, identities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.devices.models import Device


class ServerKey(Base):
    """An Ed25519 key the server signs commands and desired state with; devices pin it."""

    __tablename__ = "server_keys"

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    private_key_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class SchoolAuthority(Base):
    """A school's certificate authority (device and broker TLS, profile signing)."""

    __tablename__ = "school_authorities"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), unique=True
    )
    ca_pem_sealed: Mapped[str] = mapped_column(Text)
    ca_certificate_pem: Mapped[str] = mapped_column(Text)
    signing_pem_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnrolmentToken(Base):
    """A one-time code that lets one device enrol; only its hash is kept."""

    __tablename__ = "enrolment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    device: Mapped[Device] = relationship()
    created_by: Mapped[User | None] = relationship()


class DeviceIdentity(Base):
    """An enrolled device's broker login and signing key; replaced when it is enrolled again."""

    __tablename__ = "device_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    mqtt_id: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    kid: Mapped[str] = mapped_column(String(32))
    broker_secret_hash: Mapped[str] = mapped_column(String(255))
    platform: Mapped[str] = mapped_column(String(32))
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None]
    # When the broker said the device went away (its will); None while it is online.
    offline_since: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The `iat` of the last HTTPS check-in accepted: a check-in must be newer (no replays).
    whereabouts_iat: Mapped[int | None] = mapped_column(BigInteger)
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    # When the worker cleared what the broker retained on its topics (its status, its profile)
    # after it was revoked; None while that is still to do (or it is not revoked).
    retained_cleared_at: Mapped[datetime | None]

    device: Mapped[Device] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None
