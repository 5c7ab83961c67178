"""Software licences, and the apps devices report as installed (P-REG-5)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class Licence(Base):
    """The seats a school holds for one app, from one supplier, until an expiry date."""

    __tablename__ = "licences"
    __table_args__ = (UniqueConstraint("school_id", "app_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    app_name: Mapped[str] = mapped_column(String(200))
    # Bundle id (iPad), Chrome extension id, or package name: what devices report.
    app_id: Mapped[str] = mapped_column(String(255))
    seats: Mapped[int] = mapped_column(Integer)
    supplier: Mapped[str | None] = mapped_column(String(120))
    expires_on: Mapped[date | None]
    cost_pence: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InstalledApp(Base):
    """One app on one device, as its latest inventory report listed it."""

    __tablename__ = "installed_apps"
    __table_args__ = (
        UniqueConstraint("device_id", "app_id"),
        Index("ix_installed_apps_school_id_app_id", "school_id", "app_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    app_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
