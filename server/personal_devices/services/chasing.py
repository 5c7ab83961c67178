"""Chasing a day of photo use nobody confirmed: the owner next school morning, then the head."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.auth.models import Role
from server.loans.services import SchoolDay, school_day
from server.loans.services.school_day import MORNING
from server.notifications import services as notifications
from server.personal_devices.models import (
    PersonalDevice,
    PhotoAuthorisation,
    PhotoDay,
    PhotoDayState,
)
from server.personal_devices.services.photos import LOOKBACK, school_days
from server.schools.services import day_text, local_today

log = logging.getLogger(__name__)


def _next_morning(session: Session, shape: SchoolDay, day: date) -> datetime:
    """When the first lesson starts on the next school day after `day`."""
    ahead = school_days(session, shape.school.id, day + timedelta(days=1), day + timedelta(days=60))
    after = ahead[0] if ahead else day + timedelta(days=1)
    starts = [period.starts for period in shape.lessons_on(after)]
    return shape.at(after, min(starts) if starts else MORNING)


def chase_unconfirmed_days(session: Session, now: datetime) -> int:
    """P-PHOTO-4: a past authorised school day with no confirmation is recorded as not confirmed;
    its owner is asked the next school morning and the headteacher the morning after."""
    rough_today = now.date()
    live = session.scalars(
        select(PhotoAuthorisation)
        .join(PersonalDevice, PersonalDevice.id == PhotoAuthorisation.device_id)
        .where(
            PhotoAuthorisation.starts_on <= rough_today,
            PhotoAuthorisation.ends_on >= rough_today - LOOKBACK - timedelta(days=1),
        )
        .options(joinedload(PhotoAuthorisation.device).joinedload(PersonalDevice.owner))
        .order_by(PhotoAuthorisation.school_id, PhotoAuthorisation.id)
    ).all()
    shapes: dict[int, SchoolDay] = {}
    chased = 0
    for granted in live:
        shape = shapes.get(granted.school_id) or school_day(session, granted.school_id)
        shapes[granted.school_id] = shape
        today = local_today(shape.school, now)
        first = max(granted.starts_on, today - LOOKBACK)
        last = min(granted.last_day, today - timedelta(days=1))
        days = school_days(session, granted.school_id, first, last)
        if not days:
            continue
        lines = {
            line.day: line
            for line in session.scalars(
                select(PhotoDay).where(
                    PhotoDay.device_id == granted.device_id, PhotoDay.day.between(first, last)
                )
            )
        }
        for day in days:
            owner_due = _next_morning(session, shape, day)
            if now < owner_due:
                continue
            line = lines.get(day)
            if line is None:
                line = PhotoDay(
                    school_id=granted.school_id,
                    authorisation_id=granted.id,
                    device_id=granted.device_id,
                    day=day,
                    state=PhotoDayState.NOT_CONFIRMED,
                )
                session.add(line)
            if line.state is not PhotoDayState.NOT_CONFIRMED:
                continue
            chased += _chase(
                session,
                granted,
                line,
                now,
                head_due=_next_morning(session, shape, local_today(shape.school, owner_due)),
            )
    session.flush()
    return chased


def _chase(
    session: Session, granted: PhotoAuthorisation, line: PhotoDay, now: datetime, head_due: datetime
) -> int:
    """Ask the owner once, then (still missing the next school morning) the headteacher once."""
    device = granted.device
    sent = 0
    if line.owner_chased_at is None:
        line.owner_chased_at = now
        owner = device.owner
        if owner is not None and owner.active:
            notifications.notify(
                session,
                school_id=granted.school_id,
                users=[owner],
                kind="personal_device.photos_unconfirmed",
                title=f"Confirm what happened to {day_text(line.day)}'s school photos",
                body=f"Photo use on your {device.make} {device.model} was authorised on "
                f"{day_text(line.day)}, and nobody confirmed that the photos were moved to school "
                "storage and deleted from it. Please do it now, or say that none were taken.",
                link="/my-devices",
                at=now,
            )
            sent += 1
    if line.head_chased_at is None and now >= head_due:
        line.head_chased_at = now
        told = notifications.notify_roles(
            session,
            school_id=granted.school_id,
            roles=[Role.HEADTEACHER],
            kind="personal_device.photos_still_unconfirmed",
            title=f"{device.owner_label} has not confirmed {day_text(line.day)}'s school photos",
            body=f"Photo use on {device.owner_label}'s own {device.make} {device.model} was "
            f"authorised on {day_text(line.day)}. They were asked the next school morning to "
            "confirm that the photos were moved to school storage and deleted, and have not.",
            link=f"/personal-devices/{device.id}",
            at=now,
        )
        sent += len(told)
        log.info("personal device %s: day %s still not confirmed", device.id, line.day)
    return sent
