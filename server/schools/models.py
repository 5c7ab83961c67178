"""The school (the tenant), its terms and its location tree."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Enum, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, utcnow


def enum_column(cls: type[enum.Enum], length: int = 32) -> Enum:
    """Store an enum by value as a portable string column."""
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class School(Base):
    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    return_message: Mapped[str] = mapped_column(
        String(500), default="This device belongs to the school. Please return it to the office."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Term(Base):
    """A school term with its half-term break (Autumn, Spring, Summer)."""

    __tablename__ = "terms"
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    starts_on: Mapped[date]
    half_term_starts_on: Mapped[date]
    half_term_ends_on: Mapped[date]
    ends_on: Mapped[date]


class LocationKind(enum.StrEnum):
    SITE = "site"
    BUILDING = "building"
    ROOM = "room"
    TROLLEY = "trolley"
    SAFE = "safe"
    CUPBOARD = "cupboard"


# Where each kind may sit in the tree (None = at the top). A one-building school need not
# invent a site: its rooms may sit at the top.
ALLOWED_PARENTS: dict[LocationKind, frozenset[LocationKind | None]] = {
    LocationKind.SITE: frozenset({None}),
    LocationKind.BUILDING: frozenset({LocationKind.SITE}),
    LocationKind.ROOM: frozenset({None, LocationKind.SITE, LocationKind.BUILDING}),
    LocationKind.TROLLEY: frozenset({LocationKind.SITE, LocationKind.BUILDING, LocationKind.ROOM}),
    LocationKind.SAFE: frozenset({LocationKind.SITE, LocationKind.BUILDING, LocationKind.ROOM}),
    LocationKind.CUPBOARD: frozenset({LocationKind.SITE, LocationKind.BUILDING, LocationKind.ROOM}),
}
STORAGE_KINDS = frozenset({LocationKind.TROLLEY, LocationKind.SAFE, LocationKind.CUPBOARD})


class Location(Base):
    """Site › building › room › trolley | safe | cupboard; storage has a capacity of slots."""

    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("school_id", "parent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("locations.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[LocationKind] = mapped_column(enum_column(LocationKind))
    name: Mapped[str] = mapped_column(String(120))
    code: Mapped[str | None] = mapped_column(String(32))
    capacity: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Location | None] = relationship(remote_side=[id])

    @property
    def is_storage(self) -> bool:
        return self.kind in STORAGE_KINDS


class SchoolNetwork(Base):
    """A network the school owns, by site: a Wi-Fi name or a public address range (CIDR).

    A device that reports a network on none of these lists is off-site (P-TROLLEY-2).
    """

    __tablename__ = "school_networks"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"))
    ssid: Mapped[str | None] = mapped_column(String(32))
    public_range: Mapped[str | None] = mapped_column(String(49))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Location | None] = relationship()
