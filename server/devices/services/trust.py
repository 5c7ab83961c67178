"""What only the trust's administrators see: serial numbers registered in more than one school."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.schools.models import School


@dataclass(frozen=True)
class SharedSerial:
    """One school's device whose serial another school has registered too."""

    serial: str
    school: str
    asset_tag: str


def shared_serials(session: Session, *, limit: int = 500) -> list[SharedSerial]:
    """Serials more than one school registered (a mistyped or resold device, or a school
    registering another's); schools are never told, so someone across the trust looks."""
    shared = (
        select(Device.serial)
        .group_by(Device.serial)
        .having(func.count(func.distinct(Device.school_id)) > 1)
    )
    rows = session.execute(
        select(Device.serial, School.slug, Device.asset_tag)
        .join(School, School.id == Device.school_id)
        .where(Device.serial.in_(shared))
        .order_by(Device.serial, School.slug, Device.asset_tag)
        .limit(limit)
    ).all()
    return [SharedSerial(*row) for row in rows]
