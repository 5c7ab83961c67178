"""Photo use on staff devices: the head's authorisation and each day's confirmation (P-PHOTO-4).

"Any permitted images or files taken in school should be downloaded from the device and deleted
in school before the end of the day"; "such authorised use is to be recorded". The headteacher
authorises a registered device for a period; on each day of it the owner says the day's photos
were moved to school storage and deleted (or that none were taken). A day with neither is kept
as "not confirmed": Trolley never fills it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import Role, User
from server.db import utcnow
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.notifications import services as notifications
from server.personal_devices.models import (
    PersonalDevice,
    PhotoAuthorisation,
    PhotoDay,
    PhotoDayState,
)
from server.personal_devices.services.register import (
    can_see,
    get_entry,
    own_entries,
    visible_entry,
)
from server.schools.models import School
from server.schools.services import day_text, local_today, terms

# The longest one authorisation may run: a school year, then the head looks again.
LONGEST = timedelta(days=366)
# How far back the record and the chase look for days with no confirmation.
LOOKBACK = timedelta(days=28)
CONFIRMED = frozenset({PhotoDayState.MOVED_AND_DELETED, PhotoDayState.NOT_USED})


def require_head(actor: User) -> None:
    if actor.role is not Role.HEADTEACHER:
        raise Forbidden(
            "Only the headteacher authorises photo use on a member of staff's own device."
        )


def school_of(session: Session, school_id: int) -> School:
    school = session.get(School, school_id)
    assert school is not None
    return school


def school_days(session: Session, school_id: int, first: date, last: date) -> list[date]:
    """Weekdays in term and outside half term; every weekday if the school has no term dates."""
    known = terms(session, school_id)
    days = []
    day = first
    while day <= last:
        in_term = not known or any(
            t.starts_on <= day <= t.ends_on
            and not t.half_term_starts_on <= day <= t.half_term_ends_on
            for t in known
        )
        if day.weekday() < 5 and in_term:
            days.append(day)
        day += timedelta(days=1)
    return days


def _the_authorisation(session: Session, actor: User, authorisation_id: int) -> PhotoAuthorisation:
    found = session.scalar(
        select(PhotoAuthorisation).where(
            PhotoAuthorisation.id == authorisation_id,
            PhotoAuthorisation.school_id == actor.school_id,
        )
    )
    if found is None or not (can_see(actor) or found.device.owner_id == actor.id):
        raise NotFound("No such photo authorisation in your school.")
    return found


def authorisations(session: Session, device: PersonalDevice) -> Sequence[PhotoAuthorisation]:
    """Every authorisation the device has had, the latest first."""
    return session.scalars(
        select(PhotoAuthorisation)
        .where(PhotoAuthorisation.device_id == device.id)
        .options(
            joinedload(PhotoAuthorisation.granted_by), joinedload(PhotoAuthorisation.withdrawn_by)
        )
        .order_by(PhotoAuthorisation.starts_on.desc(), PhotoAuthorisation.id.desc())
    ).all()


def live_authorisation(
    session: Session, device: PersonalDevice, today: date
) -> PhotoAuthorisation | None:
    """The authorisation covering `today`, or else the next one to start."""
    for found in sorted(authorisations(session, device), key=lambda a: a.starts_on):
        if found.last_day >= today and found.last_day >= found.starts_on:
            return found
    return None


def authorise(
    session: Session,
    actor: User,
    entry_id: int,
    *,
    starts_on: date,
    ends_on: date,
    purpose: str | None = None,
    now: datetime | None = None,
) -> PhotoAuthorisation:
    """P-PHOTO-4: the headteacher allows school photos on a registered staff device for a period."""
    entry = get_entry(session, actor, entry_id)
    require_head(actor)
    now = now or utcnow()
    today = local_today(school_of(session, entry.school_id), now)
    if not entry.is_current:
        raise Conflict("This device was removed from the register, so it cannot be authorised.")
    owner = entry.owner
    if owner is None or not owner.active:
        raise Conflict(
            "Photo use can only be authorised for a member of staff with a Trolley account: "
            "they confirm in Trolley each day that the photos were moved and deleted."
        )
    why = (purpose or "").strip()
    problems = []
    if starts_on < today:
        problems.append({"field": "starts_on", "message": "Start today or later."})
    if ends_on < starts_on:
        problems.append({"field": "ends_on", "message": "End on or after the first day."})
    elif ends_on - starts_on > LONGEST:
        problems.append({"field": "ends_on", "message": "Authorise at most a year at a time."})
    if len(why) > 500:
        problems.append({"field": "purpose", "message": "Say what for in 500 characters."})
    if problems:
        raise ValidationFailed("Some details need correcting.", details=problems)
    for other in authorisations(session, entry):
        if other.starts_on <= ends_on and other.last_day >= starts_on:
            raise Conflict(
                f"Photo use on this device is already authorised from {day_text(other.starts_on)} "
                f"to {day_text(other.last_day)}. Withdraw that first to change the dates."
            )
    granted = PhotoAuthorisation(
        school_id=entry.school_id,
        device=entry,
        starts_on=starts_on,
        ends_on=ends_on,
        purpose=why or None,
        granted_by=actor,
        granted_at=now,
    )
    session.add(granted)
    session.flush()
    record(
        session,
        actor=actor,
        action="personal_device.photos_authorised",
        school_id=entry.school_id,
        target_type="personal_device",
        target_id=entry.id,
        details={"from": starts_on.isoformat(), "until": ends_on.isoformat()},
        at=now,
    )
    notifications.notify(
        session,
        school_id=entry.school_id,
        users=[owner],
        kind="personal_device.photos_authorised",
        title=f"You may take school photos on your {entry.make} {entry.model}",
        body=f"{actor.name} authorised it from {day_text(starts_on)} to {day_text(ends_on)}. "
        "Before the end of each day you use it, move the photos to school storage, delete them "
        "from the device and confirm it on your devices page in Trolley.",
        link="/my-devices",
        email=False,
        at=now,
    )
    session.commit()
    return granted


def _end(
    session: Session,
    actor: User,
    granted: PhotoAuthorisation,
    reason: str,
    *,
    today: date,
    now: datetime,
) -> None:
    """End an authorisation today (the caller commits); the day itself still needs confirming."""
    granted.withdrawn_on = today
    granted.withdrawn_at = now
    granted.withdrawn_by_id = actor.id
    granted.withdrawn_reason = reason[:500]
    record(
        session,
        actor=actor,
        action="personal_device.photos_withdrawn",
        school_id=granted.school_id,
        target_type="personal_device",
        target_id=granted.device_id,
        details={"authorisation": granted.id},
        at=now,
    )
    owner = granted.device.owner
    if owner is not None and owner.id != actor.id:
        notifications.notify(
            session,
            school_id=granted.school_id,
            users=[owner],
            kind="personal_device.photos_withdrawn",
            title=f"School photos on your {granted.device.make} {granted.device.model} "
            "are no longer authorised",
            body=f"{actor.name} withdrew the authorisation: {reason}",
            link="/my-devices",
            email=False,
            at=now,
        )


def end_for(
    session: Session, actor: User, device: PersonalDevice, reason: str, now: datetime
) -> PhotoAuthorisation | None:
    """The device left its owner's hands: its live authorisation ends (the caller commits)."""
    today = local_today(school_of(session, device.school_id), now)
    live = live_authorisation(session, device, today)
    if live is not None and live.withdrawn_at is None:
        _end(session, actor, live, reason, today=today, now=now)
    return live


def withdraw(
    session: Session,
    actor: User,
    authorisation_id: int,
    reason: str,
    *,
    now: datetime | None = None,
) -> PhotoAuthorisation:
    """The headteacher withdraws photo use, with a reason; the record of it stays."""
    granted = _the_authorisation(session, actor, authorisation_id)
    require_head(actor)
    now = now or utcnow()
    today = local_today(school_of(session, granted.school_id), now)
    if granted.withdrawn_at is not None:
        raise Conflict(f"This authorisation was already withdrawn on {day_text(granted.last_day)}.")
    if granted.ends_on < today:
        raise Conflict(f"This authorisation already ended on {day_text(granted.ends_on)}.")
    why = reason.strip()
    if not why:
        raise ValidationFailed(
            "Say why photo use is withdrawn.",
            details=[{"field": "reason", "message": "Enter a reason."}],
        )
    _end(session, actor, granted, why, today=today, now=now)
    session.commit()
    return granted


def confirm_day(
    session: Session,
    actor: User,
    entry_id: int,
    state: PhotoDayState,
    *,
    day: date | None = None,
    now: datetime | None = None,
) -> PhotoDay:
    """The owner says a day's photos were moved to school storage and deleted (or none taken)."""
    entry = visible_entry(session, actor, entry_id)
    if entry.owner_id != actor.id:
        raise Forbidden(f"Only {entry.owner_label} can confirm what happened to their photos.")
    if state not in CONFIRMED:
        raise ValidationFailed(
            "Say that the photos were moved and deleted, or that none were taken."
        )
    now = now or utcnow()
    today = local_today(school_of(session, entry.school_id), now)
    day = day or today
    if day > today:
        raise ValidationFailed("A day can only be confirmed once it has come.")
    granted = next((a for a in authorisations(session, entry) if a.covers(day)), None)
    if granted is None:
        raise Conflict(f"Photo use on this device was not authorised on {day_text(day)}.")
    line = session.scalar(
        select(PhotoDay).where(PhotoDay.device_id == entry.id, PhotoDay.day == day)
    )
    if line is not None and line.state in CONFIRMED:
        raise Conflict(f"{day_text(day)} was already confirmed: {line.state.label.lower()}.")
    if line is None:
        line = PhotoDay(school_id=entry.school_id, device_id=entry.id, day=day)
    line.authorisation_id = granted.id
    line.state = state
    line.confirmed_by_id = actor.id
    line.confirmed_at = now
    try:
        with session.begin_nested():
            session.add(line)
            session.flush()
    except IntegrityError as exc:
        # The same day confirmed a moment ago (a second click or tab).
        raise Conflict(f"{day_text(day)} has just been confirmed.") from exc
    record(
        session,
        actor=actor,
        action="personal_device.photos_confirmed",
        school_id=entry.school_id,
        target_type="personal_device",
        target_id=entry.id,
        details={"day": day.isoformat(), "state": state.value, "late": day < today},
        at=now,
    )
    session.commit()
    return line


@dataclass(frozen=True)
class DayLine:
    """One authorised day as the record shows it: confirmed (perhaps late), or not confirmed."""

    day: date
    state: PhotoDayState
    confirmed_at: datetime | None = None
    late: bool = False
    owner_chased: bool = False
    head_chased: bool = False
    today: bool = False

    @property
    def confirmed(self) -> bool:
        return self.state in CONFIRMED


def record_of_days(
    session: Session, device: PersonalDevice, *, now: datetime | None = None
) -> list[DayLine]:
    """The authorised school days up to today, the latest first, each confirmed or not."""
    school = school_of(session, device.school_id)
    today = local_today(school, now or utcnow())
    since = today - LOOKBACK
    lines = {
        line.day: line
        for line in session.scalars(
            select(PhotoDay).where(PhotoDay.device_id == device.id, PhotoDay.day >= since)
        )
    }
    wanted: set[date] = set(lines)
    for granted in authorisations(session, device):
        first, last = max(granted.starts_on, since), min(granted.last_day, today)
        wanted.update(school_days(session, device.school_id, first, last))
        if granted.covers(today):
            # A trip on a Saturday is still a day of use to confirm.
            wanted.add(today)
    shown = []
    for day in sorted(wanted, reverse=True):
        line = lines.get(day)
        if line is None:
            shown.append(DayLine(day, PhotoDayState.NOT_CONFIRMED, today=day == today))
            continue
        confirmed_on = local_today(school, line.confirmed_at) if line.confirmed_at else None
        shown.append(
            DayLine(
                day,
                line.state,
                confirmed_at=line.confirmed_at,
                late=confirmed_on is not None and confirmed_on > day,
                owner_chased=line.owner_chased_at is not None,
                head_chased=line.head_chased_at is not None,
                today=day == today,
            )
        )
    return shown


@dataclass(frozen=True)
class MyDevice:
    """One of the actor's own devices: its authorisation, today and the days still to confirm."""

    entry: PersonalDevice
    authorisation: PhotoAuthorisation | None
    today: DayLine | None
    missed: list[DayLine]


def my_devices(session: Session, actor: User, *, now: datetime | None = None) -> list[MyDevice]:
    """The actor's own registered devices, for their page."""
    now = now or utcnow()
    today = local_today(school_of(session, actor.school_id), now)
    mine = []
    for entry in own_entries(session, actor):
        days = record_of_days(session, entry, now=now)
        live = live_authorisation(session, entry, today)
        today_line = next((d for d in days if d.today), None)
        missed = [d for d in days if not d.today and not d.confirmed]
        mine.append(MyDevice(entry, live, today_line, missed))
    return mine
