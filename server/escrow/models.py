"""Escrowed device credentials (PINs, passcodes, account details), sealed at rest."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow
from server.devices.models import Device
from server.schools.models import enum_column


class SecretKind(enum.StrEnum):
    PIN = "pin"
    PASSCODE = "passcode"
    APPLE_ID = "apple_id"
    GOOGLE_ACCOUNT = "google_account"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            "pin": "PIN",
            "passcode": "Passcode",
            "apple_id": "Apple ID",
            "google_account": "Google account",
            "other": "Other",
        }[self.value]


class CredentialEscrow(Base):
    """One secret that lets the school reset a device (P-LEAVE-2); readable by technicians only."""

    __tablename__ = "credential_escrow"
    __table_args__ = (Index("ix_credential_escrow_device_live", "device_id", "destroyed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    kind: Mapped[SecretKind] = mapped_column(enum_column(SecretKind))
    label: Mapped[str] = mapped_column(String(120), default="")
    secret_sealed: Mapped[str | None] = mapped_column(Text)
    deposited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    deposited_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_read_at: Mapped[datetime | None]
    destroyed_at: Mapped[datetime | None]
    destroyed_reason: Mapped[str | None] = mapped_column(String(200))

    device: Mapped[Device] = relationship()
    deposited_by: Mapped[User | None] = relationship()

    @property
    def live(self) -> bool:
        return self.destroyed_at is None
