"""The school day: its lessons, the end of the day, and the times a loan is due back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.db import utcnow
from server.errors import ValidationFailed
from server.loans.models import LessonPeriod, LoanSettings
from server.loans.services.common import _school
from server.schools.models import School
from server.schools.services.clock import from_local, local, local_today, start_of

# The usual shape of an English primary school day; a school saves its own on /loans/periods.
DEFAULT_PERIODS = (
    ("Lesson 1", time(9, 0), time(10, 0)),
    ("Lesson 2", time(10, 0), time(10, 45)),
    ("Lesson 3", time(11, 5), time(12, 0)),
    ("Lesson 4", time(13, 0), time(14, 0)),
    ("Lesson 5", time(14, 0), time(15, 15)),
)
DEFAULT_DAY_ENDS = time(15, 30)
# "Next morning" on a day with no lessons saved for it.
MORNING = time(9, 0)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Period:
    """One lesson: local start and end times, on one weekday (0 = Monday) or every day."""

    name: str
    starts: time
    ends: time
    weekday: int | None = None


@dataclass(frozen=True)
class SchoolDay:
    """A school's lessons and the end of its day, in the school's own time zone."""

    periods: tuple[Period, ...]
    day_ends: time
    school: School
    custom: bool = False

    @property
    def timezone(self) -> str:
        return self.school.timezone

    def local(self, moment: datetime) -> datetime:
        return local(moment, self.school)

    def at(self, day: date, when: time) -> datetime:
        """A local date and time as an aware UTC datetime."""
        return from_local(datetime.combine(day, when), self.school)

    def lessons_on(self, day: date) -> list[Period]:
        return sorted(
            (p for p in self.periods if p.weekday is None or p.weekday == day.weekday()),
            key=lambda p: p.starts,
        )

    def current_lesson(self, now: datetime) -> Period | None:
        here = self.local(now)
        for period in self.lessons_on(here.date()):
            if period.starts <= here.time() < period.ends:
                return period
        return None

    def default_due(self, now: datetime) -> datetime:
        """The end of the current lesson (or of the next one, in a break); else the day's end."""
        here = self.local(now)
        for period in self.lessons_on(here.date()):
            if here.time() < period.ends:
                return self.at(here.date(), period.ends)
        end = self.at(here.date(), self.day_ends)
        return end if end > now else now + timedelta(hours=1)

    def day_start(self, now: datetime) -> datetime:
        return start_of(local_today(self.school, now), self.school)

    def next_morning(self, after: datetime) -> datetime:
        """When the first lesson starts on the day after `after` (09:00 on a day without any)."""
        day = local_today(self.school, after) + timedelta(days=1)
        starts = [p.starts for p in self.lessons_on(day)]
        return self.at(day, min(starts) if starts else MORNING)

    def last_day_end(self, now: datetime) -> datetime:
        """The most recent end of a school day at or before `now`."""
        today = local_today(self.school, now)
        end = self.at(today, self.day_ends)
        return end if end <= now else self.at(today - timedelta(days=1), self.day_ends)


def school_day(session: Session, school_id: int) -> SchoolDay:
    """The school's saved lessons and day end, or the usual UK primary day."""
    school = _school(session, school_id)
    rows = session.scalars(
        select(LessonPeriod)
        .where(LessonPeriod.school_id == school_id)
        .order_by(LessonPeriod.starts, LessonPeriod.id)
    ).all()
    saved = session.get(LoanSettings, school_id)
    if rows:
        periods = tuple(Period(r.name, r.starts, r.ends, r.weekday) for r in rows)
    else:
        periods = tuple(Period(name, starts, ends) for name, starts, ends in DEFAULT_PERIODS)
    return SchoolDay(
        periods=periods,
        day_ends=saved.day_ends if saved else DEFAULT_DAY_ENDS,
        school=school,
        custom=bool(rows or saved),
    )


def save_school_day(
    session: Session, actor: User, periods: Sequence[Period], day_ends: time
) -> SchoolDay:
    """Replace the school's lessons and day end (admin or SBM); checks they make sense."""
    problems = []
    if not periods:
        problems.append({"field": "periods", "message": "Add at least one lesson."})
    if len(periods) > 40:
        problems.append({"field": "periods", "message": "At most 40 lessons can be saved."})
    for n, period in enumerate(periods, start=1):
        if not period.name.strip() or len(period.name.strip()) > 64:
            problems.append({"field": f"periods.{n}", "message": f"Lesson {n} needs a name."})
        if period.starts >= period.ends:
            problems.append(
                {"field": f"periods.{n}", "message": f"{period.name} must end after it starts."}
            )
        if period.weekday is not None and not 0 <= period.weekday <= 6:
            problems.append({"field": f"periods.{n}", "message": "Choose a day of the week."})
    by_day: dict[int | None, list[Period]] = {}
    for period in periods:
        by_day.setdefault(period.weekday, []).append(period)
    for weekday in range(7):
        todays = sorted(by_day.get(None, []) + by_day.get(weekday, []), key=lambda p: p.starts)
        for first, second in pairwise(todays):
            if second.starts < first.ends:
                problems.append(
                    {
                        "field": "periods",
                        "message": f"{first.name} and {second.name} overlap "
                        f"on {WEEKDAYS[weekday]}.",
                    }
                )
    if periods and day_ends < max(p.ends for p in periods):
        problems.append(
            {"field": "day_ends", "message": "The school day cannot end before the last lesson."}
        )
    if problems:
        # One message per problem, even when it shows on several days.
        unique = list({p["message"]: p for p in problems}.values())
        raise ValidationFailed("Some lesson times need correcting.", details=unique)
    school_id = actor.school_id
    session.execute(delete(LessonPeriod).where(LessonPeriod.school_id == school_id))
    session.add_all(
        LessonPeriod(
            school_id=school_id,
            name=p.name.strip(),
            starts=p.starts,
            ends=p.ends,
            weekday=p.weekday,
        )
        for p in periods
    )
    _settings_changed_by(session, actor).day_ends = day_ends
    record(
        session,
        actor=actor,
        action="loans.school_day_changed",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        details={
            "lessons": [
                [p.name.strip(), p.starts.isoformat("minutes"), p.ends.isoformat("minutes")]
                for p in periods
            ],
            "day_ends": day_ends.isoformat("minutes"),
        },
    )
    session.commit()
    return school_day(session, school_id)


def _settings_changed_by(session: Session, actor: User) -> LoanSettings:
    """The school's loan settings row (made with the defaults if need be), stamped as changed."""
    saved = session.get(LoanSettings, actor.school_id)
    if saved is None:
        saved = LoanSettings(school_id=actor.school_id, day_ends=DEFAULT_DAY_ENDS)
        session.add(saved)
    saved.updated_at = utcnow()
    saved.updated_by_id = actor.id
    return saved
