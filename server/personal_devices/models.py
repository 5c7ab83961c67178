"""The register of staff members' own handheld devices noted in school (P-REG-6)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.auth.models import User
from server.db import Base, utcnow


class PersonalDevice(Base):
    """A member of staff's own phone or tablet: owner, make and model, serial."""

    __tablename__ = "personal_devices"
    __table_args__ = (Index("ix_personal_devices_school_id_removed_on", "school_id", "removed_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    # A member of staff with an account, or a free-text name for someone without one.
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    owner_name: Mapped[str | None] = mapped_column(String(120))
    make: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(120))
    serial: Mapped[str] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    noted_on: Mapped[date]
    removed_on: Mapped[date | None]
    removed_reason: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])

    @property
    def owner_label(self) -> str:
        if self.owner is not None:
            return self.owner.name
        return self.owner_name or "Unknown"

    @property
    def is_current(self) -> bool:
        return self.removed_on is None
