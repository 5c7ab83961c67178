"""A spreadsheet kept safely between its preview and its import."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class ImportUpload(Base):
    """An uploaded file, private to the person who sent it, kept for a few hours.

    The commit re-reads these stored bytes, never a file posted again, so what is imported is
    exactly what was previewed (re-checked against the register as it is at that moment).
    """

    __tablename__ = "import_uploads"
    __table_args__ = (Index("ix_import_uploads_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(43), primary_key=True)  # random, unguessable
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    # Chosen field for each column, in order (None = ignore); None = Trolley's guess.
    mapping: Mapped[list[Any] | None] = mapped_column(JSON)
    create_locations: Mapped[bool] = mapped_column(Boolean, default=False)
    location_parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("locations.id", ondelete="SET NULL")
    )
    header_row: Mapped[int | None] = mapped_column(Integer)  # None = Trolley finds the headings
    # New asset tags the person allowed to re-tag the device that has the row's serial.
    retag: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    committed_at: Mapped[datetime | None]
