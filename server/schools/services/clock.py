"""The school's clock: its time zone, and times and dates in the words its staff read."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.schools.models import School

FALLBACK_ZONE = "Europe/London"


def school_zone(school: School) -> ZoneInfo:
    """The school's time zone; a bad stored name falls back to UK time, not a failed page."""
    try:
        return ZoneInfo(school.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(FALLBACK_ZONE)


def local(moment: datetime, school: School) -> datetime:
    """A stored UTC time as the school's clocks show it."""
    return moment.astimezone(school_zone(school))


def from_local(naive: datetime, school: School) -> datetime:
    """A time typed on the school's clocks (a form's date and time) as an aware UTC time."""
    return naive.replace(tzinfo=school_zone(school)).astimezone(UTC)


def local_today(school: School, now: datetime) -> date:
    """The date on the school's calendar at `now`."""
    return local(now, school).date()


def start_of(day: date, school: School) -> datetime:
    """Midnight at the start of `day` on the school's clocks, as UTC."""
    return datetime.combine(day, time(0, 0), tzinfo=school_zone(school)).astimezone(UTC)


def when(moment: datetime | None, school: School, *, missing: str = "—") -> str:
    """'14:05 on Tue 3 Mar 2026' in the school's own time; `missing` when there is no time."""
    if moment is None:
        return missing
    at = local(moment, school)
    return f"{at:%H:%M} on {at:%a} {at.day} {at:%b %Y}"


def day_text(day: date, *, long: bool = False) -> str:
    """'Tue 3 March 2026', or 'Tuesday 3 March 2026' with `long`."""
    return f"{day:%A} {day.day} {day:%B %Y}" if long else f"{day:%a} {day.day} {day:%B %Y}"


def day(
    value: date | datetime | None, school: School, *, long: bool = False, missing: str = "—"
) -> str:
    """'Tue 3 March 2026' (see `day_text`); a time is first put on the school's calendar."""
    if value is None:
        return missing
    if isinstance(value, datetime):
        value = local(value, school).date()
    return day_text(value, long=long)


def age_text(moment: datetime | None, now: datetime, *, never: str = "never reported") -> str:
    """How long ago, in words ('3 days ago'); `never` when there is no time."""
    if moment is None:
        return never
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 3600:
        minutes = seconds // 60
        return "just now" if minutes < 1 else plural(minutes, "minute") + " ago"
    if seconds < 86400:
        return plural(seconds // 3600, "hour") + " ago"
    return plural(seconds // 86400, "day") + " ago"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 device', '2 devices'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
