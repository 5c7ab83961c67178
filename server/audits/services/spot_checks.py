"""Random GDPR spot checks (P-PHOTO-3): a repeatable draw and what the checker found."""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.audits.models import SpotCheck, SpotCheckItem
from server.audits.services.common import _clean, _school_row
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.devices.services import add_event, get_device
from server.errors import NotFound, ValidationFailed
from server.loans.models import Loan
from server.notifications import services as notifications
from server.schools.services.clock import plural, when

MAX_SAMPLE = 100
SEED_LIMIT = 2**63


def draw_sample(population: Sequence[int], size: int, seed: int) -> list[int]:
    """The draw itself: the same seed and population always give the same devices, in order."""
    return random.Random(seed).sample(sorted(population), size)


def population_fingerprint(population: Sequence[int]) -> str:
    return hashlib.sha256(",".join(str(i) for i in sorted(population)).encode()).hexdigest()


def get_spot_check(session: Session, school_id: int, check_id: int) -> SpotCheck:
    """The school's spot check by id."""
    return _school_row(
        session, SpotCheck, check_id, school_id, "No such spot check in your school."
    )


def list_spot_checks(session: Session, school_id: int, limit: int = 50) -> Sequence[SpotCheck]:
    return session.scalars(
        select(SpotCheck)
        .where(SpotCheck.school_id == school_id)
        .options(joinedload(SpotCheck.drawn_by))
        .order_by(SpotCheck.drawn_at.desc(), SpotCheck.id.desc())
        .limit(limit)
    ).all()


def spot_check_items(session: Session, check: SpotCheck) -> Sequence[SpotCheckItem]:
    return session.scalars(
        select(SpotCheckItem)
        .where(SpotCheckItem.spot_check_id == check.id)
        .options(
            joinedload(SpotCheckItem.device),
            joinedload(SpotCheckItem.checked_by),
            joinedload(SpotCheckItem.notified_user),
        )
        .order_by(SpotCheckItem.position)
    ).all()


def verify_draw(session: Session, check: SpotCheck) -> bool:
    """Repeat the draw from the recorded seed and population: does it give the same devices?"""
    drawn = [item.device_id for item in spot_check_items(session, check)]
    return (
        population_fingerprint(check.population) == check.population_sha256
        and draw_sample(check.population, check.sample_size, check.seed) == drawn
    )


def draw_spot_check(
    session: Session,
    actor: User,
    *,
    size: int,
    seed: int | None = None,
    now: datetime | None = None,
) -> SpotCheck:
    """Draw a fair random sample of devices in service; the seed is kept to show the draw."""
    now = now or utcnow()
    if not 1 <= size <= MAX_SAMPLE:
        raise ValidationFailed(
            f"Choose a sample of 1 to {MAX_SAMPLE} devices.",
            details=[{"field": "size", "message": f"Between 1 and {MAX_SAMPLE}."}],
        )
    if seed is not None and not 0 <= seed < SEED_LIMIT:
        raise ValidationFailed(
            "A seed is a whole number from 0 to 9,223,372,036,854,775,807.",
            details=[{"field": "seed", "message": "Out of range."}],
        )
    population = list(
        session.scalars(
            select(Device.id)
            .where(Device.school_id == actor.school_id, Device.status == DeviceStatus.IN_SERVICE)
            .order_by(Device.id)
        )
    )
    if size > len(population):
        raise ValidationFailed(
            f"Only {plural(len(population), 'device is', 'devices are')} in service; "
            "choose a smaller sample.",
            details=[{"field": "size", "message": f"At most {len(population)}."}],
        )
    seed = secrets.randbelow(SEED_LIMIT) if seed is None else seed
    chosen = draw_sample(population, size, seed)
    check = SpotCheck(
        school_id=actor.school_id,
        seed=seed,
        sample_size=size,
        population_size=len(population),
        population=population,
        population_sha256=population_fingerprint(population),
        drawn_at=now,
        drawn_by_id=actor.id,
    )
    session.add(check)
    session.flush()
    session.add_all(
        SpotCheckItem(
            school_id=actor.school_id, spot_check_id=check.id, device_id=device_id, position=n
        )
        for n, device_id in enumerate(chosen, start=1)
    )
    record(
        session,
        actor=actor,
        action="spot_check.drawn",
        school_id=actor.school_id,
        target_type="spot_check",
        target_id=check.id,
        details={
            "seed": str(seed),
            "size": size,
            "population": len(population),
            "population_sha256": check.population_sha256,
        },
        at=now,
    )
    session.commit()
    return check


def class_teacher(session: Session, device: Device, now: datetime) -> tuple[list[User], str]:
    """Who answers for the device's photos: holder, last taker, trolley's teacher or the lead."""

    def usable(user_id: int | None) -> User | None:
        user = session.get(User, user_id) if user_id else None
        return user if user and user.active and user.school_id == device.school_id else None

    holder = usable(device.holder_id)
    if holder is not None:
        return [holder], "who has it now"
    last_out = session.scalar(
        select(DeviceEvent.actor_id)
        .where(DeviceEvent.device_id == device.id, DeviceEvent.kind == "loan_out")
        .order_by(DeviceEvent.at.desc(), DeviceEvent.id.desc())
        .limit(1)
    )
    taker = usable(last_out)
    if taker is not None:
        return [taker], "who last took it out"
    usual = _usual_teacher(session, device, now)
    if usual is not None:
        return [usual], "who usually uses its trolley"
    leads = session.scalars(
        select(User).where(
            User.school_id == device.school_id,
            User.role == Role.COMPUTING_LEAD,
            User.active.is_(True),
        )
    ).all()
    return list(leads), "the computing lead (no class teacher is known)"


def _usual_teacher(session: Session, device: Device, now: datetime) -> User | None:
    """The teacher who took the device's trolley out most this term."""
    if device.home_location_id is None:
        return None
    row = session.execute(
        select(Loan.teacher_id, func.count())
        .where(
            Loan.school_id == device.school_id,
            Loan.trolley_id == device.home_location_id,
            Loan.started_at >= now - timedelta(days=120),
        )
        .group_by(Loan.teacher_id)
        .order_by(func.count().desc(), Loan.teacher_id)
        .limit(1)
    ).first()
    user = session.get(User, row[0]) if row else None
    return user if user and user.active else None


def record_spot_result(
    session: Session,
    actor: User,
    check_id: int,
    asset_tag: str,
    *,
    photos_found: bool,
    other_personal_data: bool,
    note: str = "",
    now: datetime | None = None,
) -> SpotCheckItem:
    """What the checker found on one sampled device; a finding tells the class teacher."""
    now = now or utcnow()
    text = _clean(note, 500, "the note")
    check = get_spot_check(session, actor.school_id, check_id)
    device = get_device(session, actor.school_id, asset_tag)
    item = session.scalar(
        select(SpotCheckItem).where(
            SpotCheckItem.spot_check_id == check.id, SpotCheckItem.device_id == device.id
        )
    )
    if item is None:
        raise NotFound(f"{device.asset_tag} was not drawn for this spot check.")
    item.photos_found = photos_found
    item.other_personal_data = other_personal_data
    item.note = text or None
    item.checked_at = now
    item.checked_by_id = actor.id
    found = [
        words
        for flag, words in ((photos_found, "photos"), (other_personal_data, "other personal data"))
        if flag
    ]
    event = add_event(
        session,
        device,
        kind="spot_check",
        summary="GDPR spot check: "
        + (f"found {' and '.join(found)}" if found else "nothing personal found")
        + (f" ({text})" if text else ""),
        actor=actor,
        details={"spot_check_id": check.id},
    )
    event.at = now
    if found and item.notified_user_id is None:
        people, who = class_teacher(session, device, now)
        if people:
            notifications.notify(
                session,
                school_id=device.school_id,
                users=people,
                kind="audit.spot_check",
                title=f"Spot check: {' and '.join(found)} found on {device.asset_tag}",
                body=f"{actor.name} found {' and '.join(found)} on {device.asset_tag} "
                f"({device.model}) in a GDPR spot check {when(now, actor.school)}. You are told "
                f"as the person {who}. School policy is that pupils' photos are deleted at the "
                "end of the lesson; please make sure this happens."
                + (f"\n\nNote: {text}" if text else ""),
                link=f"/devices/{device.asset_tag}",
                devices=[device],
                at=now,
            )
            item.notified_user_id = people[0].id
    session.flush()
    remaining = session.scalar(
        select(func.count()).where(
            SpotCheckItem.spot_check_id == check.id, SpotCheckItem.checked_at.is_(None)
        )
    )
    if not remaining and check.completed_at is None:
        check.completed_at = now
    record(
        session,
        actor=actor,
        action="spot_check.result",
        school_id=check.school_id,
        target_type="spot_check",
        target_id=check.id,
        details={
            "asset_tag": device.asset_tag,
            "photos_found": photos_found,
            "other_personal_data": other_personal_data,
        },
        at=now,
    )
    session.commit()
    return item
