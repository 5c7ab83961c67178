"""Reminding class teachers of devices a photo check still needs a person to look at."""

# P-PHOTO-2 with the roles the policy names: the class teacher answers for photos taken in their
# lessons. A device that has not answered the check's request, or still holds photos, goes to
# the teacher who has it now (or last took it out, or uses its trolley), once per check.

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from server.audits.models import PhotoCheck, PhotoCheckItem, PhotoCheckStatus
from server.audits.services.spot_checks import class_teacher
from server.auth.models import User
from server.devices.models import Device
from server.devices.services import counted_since
from server.notifications import services as notifications
from server.schools.models import School
from server.schools.services.clock import plural, when

log = logging.getLogger(__name__)

KIND = "audit.photo_check_devices"
# The request for a fresh count lives a day: after that, silence is for a person to check.
ANSWER_WAIT = timedelta(days=1)


def remind_class_teachers(session: Session, check: PhotoCheck, now: datetime) -> int:
    """Tell each class teacher which of their devices still need checking; how many named."""
    fresh = counted_since(check.started_at)  # an answer an erase has since overtaken is none
    answer = case((fresh, Device.photo_count), else_=None)
    rows = session.execute(
        select(PhotoCheckItem, Device, answer)
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .where(
            PhotoCheckItem.check_id == check.id,
            PhotoCheckItem.hand_at.is_(None),
            PhotoCheckItem.reminded_at.is_(None),
            answer.is_(None) | (answer > 0),
        )
        .order_by(Device.asset_tag)
    ).all()
    groups: dict[tuple[int, ...], tuple[list[User], str, list[tuple[Device, int | None]]]] = {}
    for item, device, count in rows:
        people, who = class_teacher(session, device, now)
        item.reminded_at = now
        if people:
            key = tuple(sorted(p.id for p in people))
            groups.setdefault(key, (people, who, []))[2].append((device, count))
    school = session.get(School, check.school_id)
    assert school is not None
    for people, who, devices in groups.values():
        tags = ", ".join(d.asset_tag for d, _count in devices)
        lines = [
            f"{d.asset_tag} ({d.model}): "
            + ("has not answered" if count is None else f"still reports {plural(count, 'photo')}")
            for d, count in devices
        ]
        notifications.notify(
            session,
            school_id=check.school_id,
            users=people,
            kind=KIND,
            title=f"Photo check: check {tags} for photos"[:200],
            body=f"The half-termly photo check started {when(check.started_at, school)} is "
            "waiting for these devices:\n"
            + "\n".join(lines)
            + f"\n\nYou are asked as the person {who}. Please look at each device's photos, "
            "delete any pupils' photos, and tell the computing lead what you found so it can "
            "be recorded in the check.",
            link=f"/devices/{devices[0][0].asset_tag}" if len(devices) == 1 else None,
            devices=[d for d, _count in devices],
            at=now,
        )
    if rows:
        log.info("photo check %s: class teachers reminded of %d devices", check.id, len(rows))
    return len(rows)


def chase_open_checks(session: Session, now: datetime) -> int:
    """The scheduler's part: once a check's devices have had a day to answer, the teachers."""
    checks = session.scalars(
        select(PhotoCheck).where(
            PhotoCheck.status == PhotoCheckStatus.OPEN,
            PhotoCheck.started_at <= now - ANSWER_WAIT,
        )
    ).all()
    return sum(remind_class_teachers(session, check, now) for check in checks)
