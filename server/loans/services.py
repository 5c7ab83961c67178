"""Loans: take devices out of a trolley, scan them back in, wipe photos, chase what is not back.

The rules (P-TROLLEY-1, P-TROLLEY-2, P-PHOTO-1, P-AUDIT-2, P-REG-3):
- taking a device out claims it with one conditional UPDATE (`holder_id IS NULL`), so when two
  people scan the same device at the same instant exactly one wins and the other is told who;
- every return queues `wipe_photos` for the device; the loan shows the device's answer;
- a scan carries an idempotency key: re-sending it (an offline queue flushing) replays the first
  answer and records nothing new;
- an unknown or malformed code is refused with a clear message and nothing is recorded.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    CursorResult,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from provisioning.errors import LabelCodeError
from provisioning.payload import parse_label_url
from server.activity.services import record
from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.devices.services import TRANSITIONS, add_event, change_status
from server.errors import Conflict, Forbidden, NotFound, TrolleyError, ValidationFailed
from server.loans.models import (
    ConditionFlag,
    DamageReport,
    DamageStatus,
    HomeApproval,
    ItemState,
    LessonPeriod,
    Loan,
    LoanItem,
    LoanKind,
    LoanSettings,
    Scan,
    ScanAction,
)
from server.schools.models import STORAGE_KINDS, Location, School

log = logging.getLogger(__name__)

# Only devices in use (or waiting in stock) may go out; the rest are refused with the reason.
LOANABLE = (DeviceStatus.IN_SERVICE, DeviceStatus.IN_STOCK)
MISSING = (DeviceStatus.LOST, DeviceStatus.STOLEN)
REPORTED_LOST = "reported lost: the headteacher has been told it was found here"
WIPE_BY_HAND = "not enrolled: wipe by hand"
UNDO_WINDOW = timedelta(minutes=15)
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BATCH = 200
HOME_LOAN_MAX_DAYS = 92
# Ids are 32-bit in PostgreSQL: anything larger cannot exist (and must not reach the driver).
MAX_ID = 2**31 - 1

# The usual shape of an English primary school day; a school saves its own on /loans/periods.
DEFAULT_PERIODS = (
    ("Lesson 1", time(9, 0), time(10, 0)),
    ("Lesson 2", time(10, 0), time(10, 45)),
    ("Lesson 3", time(11, 5), time(12, 0)),
    ("Lesson 4", time(13, 0), time(14, 0)),
    ("Lesson 5", time(14, 0), time(15, 15)),
)
DEFAULT_DAY_ENDS = time(15, 30)
# P-SEC-3: a school year and a term of loan history, unless the school keeps less or more.
DEFAULT_HISTORY_MONTHS = 15
HISTORY_MONTHS_RANGE = (1, 84)
# Timeline entries the loans domain writes; they name teachers and classes, so they go too.
LOAN_EVENT_KINDS = (
    "scan",
    "loan_out",
    "loan_transfer",
    "wrong_trolley",
    "loan_return",
    "loan_undo",
    "loan_overdue",
    "home_loan_request",
    "home_loan_decision",
    "home_loan_overdue",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# --- the school day ------------------------------------------------------------------------


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
    timezone: str = "Europe/London"
    custom: bool = False

    @property
    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("Europe/London")

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def at(self, day: date, when: time) -> datetime:
        """A local date and time as an aware UTC datetime."""
        return datetime.combine(day, when, tzinfo=self.tz).astimezone(UTC)

    def lessons_on(self, day: date) -> list[Period]:
        return sorted(
            (p for p in self.periods if p.weekday is None or p.weekday == day.weekday()),
            key=lambda p: p.starts,
        )

    def current_lesson(self, now: datetime) -> Period | None:
        local = self.local(now)
        for period in self.lessons_on(local.date()):
            if period.starts <= local.time() < period.ends:
                return period
        return None

    def default_due(self, now: datetime) -> datetime:
        """The end of the current lesson (or of the next one, in a break); else the day's end."""
        local = self.local(now)
        for period in self.lessons_on(local.date()):
            if local.time() < period.ends:
                return self.at(local.date(), period.ends)
        end = self.at(local.date(), self.day_ends)
        return end if end > now else now + timedelta(hours=1)

    def day_start(self, now: datetime) -> datetime:
        return self.at(self.local(now).date(), time(0, 0))

    def last_day_end(self, now: datetime) -> datetime:
        """The most recent end of a school day at or before `now`."""
        today = self.local(now).date()
        end = self.at(today, self.day_ends)
        return end if end <= now else self.at(today - timedelta(days=1), self.day_ends)


def _school(session: Session, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None:
        raise NotFound("No such school.")
    return school


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
        timezone=school.timezone,
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


# --- how long loan history is kept (P-SEC-3) ----------------------------------------------


@dataclass(frozen=True)
class Purged:
    loans: int
    scans: int
    events: int


def history_months(session: Session, school_id: int) -> int:
    """How many months of loan history the school keeps."""
    saved = session.get(LoanSettings, school_id)
    return saved.history_months if saved and saved.history_months else DEFAULT_HISTORY_MONTHS


def set_history_months(session: Session, actor: User, months: int) -> int:
    """Change how long loan history is kept (admin or SBM); commits."""
    low, high = HISTORY_MONTHS_RANGE
    if not low <= months <= high:
        raise ValidationFailed(
            f"Keep loan history for between {low} and {high} months.",
            details=[{"field": "history_months", "message": f"Choose {low} to {high} months."}],
        )
    school_id = actor.school_id
    before = history_months(session, school_id)
    _settings_changed_by(session, actor).history_months = months
    record(
        session,
        actor=actor,
        action="loans.history_retention_changed",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        details={"months": months, "was": before},
    )
    session.commit()
    return months


def _settings_changed_by(session: Session, actor: User) -> LoanSettings:
    """The school's loan settings row (made with the defaults if need be), stamped as changed."""
    saved = session.get(LoanSettings, actor.school_id)
    if saved is None:
        saved = LoanSettings(school_id=actor.school_id, day_ends=DEFAULT_DAY_ENDS)
        session.add(saved)
    saved.updated_at = utcnow()
    saved.updated_by_id = actor.id
    return saved


def _months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the 31st becomes the 28th)."""
    years, month = divmod(moment.month - 1 - months, 12)
    return moment.replace(year=moment.year + years, month=month + 1, day=min(moment.day, 28))


def purge_loan_history(session: Session, school_id: int, *, now: datetime) -> Purged:
    """Delete loans closed, scans made and loan timeline entries written before the school's
    retention period; damage reports and the activity trail stay. Flushes, does not commit."""
    cutoff = _months_before(now, history_months(session, school_id))
    loans = session.execute(
        delete(Loan).where(
            Loan.school_id == school_id, Loan.closed_at.is_not(None), Loan.closed_at < cutoff
        )
    )
    scans = session.execute(delete(Scan).where(Scan.school_id == school_id, Scan.at < cutoff))
    events = session.execute(
        delete(DeviceEvent).where(
            DeviceEvent.school_id == school_id,
            DeviceEvent.kind.in_(LOAN_EVENT_KINDS),
            DeviceEvent.at < cutoff,
        )
    )
    purged = Purged(_rows(loans), _rows(scans), _rows(events))
    if purged != Purged(0, 0, 0):
        record(
            session,
            actor=None,
            action="loans.history_purged",
            school_id=school_id,
            target_type="school",
            target_id=school_id,
            details={"before": cutoff.isoformat(), **dataclasses.asdict(purged)},
        )
    return purged


def run_retention(session: Session, *, now: datetime) -> dict[int, Purged]:
    """P-SEC-3: each school's loan history beyond its retention period is deleted; commits."""
    done: dict[int, Purged] = {}
    for school_id in session.scalars(select(School.id).order_by(School.id)).all():
        done[school_id] = purge_loan_history(session, school_id, now=now)
        session.commit()
    return done


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# --- places, codes and counts -------------------------------------------------------------


def _check_storage(place: Location) -> None:
    if place.kind not in STORAGE_KINDS:
        raise ValidationFailed(
            f"{place.name} is a {place.kind.value}; choose a trolley, safe or cupboard."
        )


def get_trolley(session: Session, school_id: int, location_id: int) -> Location:
    """A trolley, safe or cupboard in the school (devices go out of and back into these)."""
    if not 1 <= location_id <= MAX_ID:
        raise NotFound("No such trolley in your school.")
    place = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if place is None:
        raise NotFound("No such trolley in your school.")
    _check_storage(place)
    return place


def storage_places(session: Session, school_id: int) -> Sequence[Location]:
    return session.scalars(
        select(Location)
        .where(Location.school_id == school_id, Location.kind.in_(list(STORAGE_KINDS)))
        .order_by(Location.name)
    ).all()


def resolve_code(
    session: Session, school_id: int, code: str, base_url: str, *, lock: bool = False
) -> Device:
    """The device a scanned label or typed tag names; refuses anything else, recording nothing."""
    # `lock` holds the device's row until commit (PostgreSQL), so what is read next is current.
    try:
        tag = parse_label_url(code, base_url)
    except LabelCodeError as exc:
        raise ValidationFailed(
            f"That is not a Trolley label: {exc}. Nothing was recorded.", code="bad_code"
        ) from exc
    query = _SQL["device_locked" if lock else "device"]
    device: Device | None = session.scalar(query, {"school_id": school_id, "tag": tag})
    if device is None and tag.upper() != tag:
        # Keyboard-wedge scanners sometimes arrive with caps lock the wrong way round.
        device = session.scalar(query, {"school_id": school_id, "tag": tag.upper()})
    if device is None:
        raise NotFound(
            f"No device {tag} in your school's register. Nothing was recorded.",
            code="unknown_device",
        )
    return device


@dataclass(frozen=True)
class Counts:
    """How a trolley stands: of the devices that live in it, how many are out, how many in."""

    trolley_id: int
    trolley: str
    out: int
    total: int
    here: int

    @property
    def text(self) -> str:
        return f"{self.out} of {self.total} out"

    def moved(self, home_id: int | None, before: Where, after: Where) -> Counts:
        """The counts after one of this trolley's devices changed holder or place."""
        if home_id != self.trolley_id:
            return self
        return replace(
            self,
            out=self.out + (after[0] is not None) - (before[0] is not None),
            here=self.here + (after[1] == self.trolley_id) - (before[1] == self.trolley_id),
        )


# A device's (holder id, current location id).
Where = tuple[int | None, int | None]


def _count_columns(trolley_id: Any) -> Any:
    return select(
        func.count().label("total"),
        func.count(Device.holder_id).label("out"),
        func.coalesce(
            func.sum(case((Device.current_location_id == trolley_id, 1), else_=0)), 0
        ).label("here"),
    ).where(
        Device.home_location_id == trolley_id,
        Device.status != DeviceStatus.DISPOSED,
    )


def trolley_counts(session: Session, school_id: int, trolley: Location) -> Counts:
    total, out, here = session.execute(
        _count_columns(trolley.id).where(Device.school_id == school_id)
    ).one()
    return Counts(trolley.id, trolley.name, int(out), int(total), int(here))


def _scan_statements() -> dict[str, Any]:
    """The statements every scan runs, built once: building SQL costs more than running it."""
    numbers = (
        _count_columns(bindparam("trolley_id"))
        .where(Device.school_id == bindparam("school_id"))
        .subquery()
    )
    return {
        "trolley": select(Location, numbers.c.total, numbers.c.out, numbers.c.here)
        .join_from(Location, numbers, true())
        .where(
            Location.id == bindparam("trolley_id"), Location.school_id == bindparam("school_id")
        ),
        "device": select(Device).where(
            Device.school_id == bindparam("school_id"), Device.asset_tag == bindparam("tag")
        ),
        # populate_existing: the locked read replaces whatever an earlier read left behind.
        "device_locked": select(Device)
        .where(Device.school_id == bindparam("school_id"), Device.asset_tag == bindparam("tag"))
        .with_for_update()
        .execution_options(populate_existing=True),
        "claim": update(Device)
        .where(
            Device.id == bindparam("device"),
            Device.holder_id.is_(None),
            Device.status.in_(LOANABLE),
        )
        .values(
            holder_id=bindparam("holder"), current_location_id=None, updated_at=bindparam("now")
        )
        .execution_options(synchronize_session=False),
        "put_back": update(Device)
        .where(Device.id == bindparam("device"))
        .values(
            holder_id=None, current_location_id=bindparam("place"), updated_at=bindparam("now")
        ),
        "last_return": select(LoanItem.returned_at, LoanItem.wipe_note, Command.status)
        .outerjoin(Command, Command.id == LoanItem.wipe_command_id)
        .where(LoanItem.device_id == bindparam("device"), LoanItem.state == ItemState.RETURNED)
        .order_by(LoanItem.out_at.desc())
        .limit(1),
        "open_item": select(LoanItem)
        .where(LoanItem.device_id == bindparam("device"), LoanItem.state == ItemState.OUT)
        .options(joinedload(LoanItem.loan)),
        # A return holds its loan until commit: a take-out adding to that loan at the same
        # instant either lands first (and the loan stays open) or sees it closed.
        "open_item_locked": select(LoanItem)
        .join(LoanItem.loan)
        .where(LoanItem.device_id == bindparam("device"), LoanItem.state == ItemState.OUT)
        .options(contains_eager(LoanItem.loan))
        .with_for_update(of=Loan)
        .execution_options(populate_existing=True),
        "new_item": insert(LoanItem).returning(LoanItem.id),
        "new_scan": insert(Scan),
        "close_loan": update(Loan)
        .where(
            Loan.id == bindparam("loan"),
            Loan.closed_at.is_(None),
            ~exists().where(LoanItem.loan_id == bindparam("loan"), LoanItem.state == ItemState.OUT),
        )
        .values(closed_at=bindparam("now")),
    }


_SQL = _scan_statements()


def _todays_loan(with_label: bool) -> Any:
    """The latest open lesson loan of a teacher at a trolley, with the school's time zone."""
    # Held until commit (PostgreSQL): a return closing it at the same instant either waits for
    # the new item or closes first, and then this finds no open loan and a new one is made.
    mine = [
        Loan.school_id == bindparam("school_id"),
        Loan.teacher_id == bindparam("teacher"),
        Loan.closed_at.is_(None),
        Loan.kind == LoanKind.LESSON,
        Loan.trolley_id == bindparam("trolley"),
    ]
    if with_label:
        mine.append(Loan.class_label == bindparam("label"))
    return (
        select(School.timezone, Loan)
        .join(School, School.id == Loan.school_id)
        .where(*mine)
        .order_by(Loan.id.desc())
        .limit(1)
        .with_for_update(of=Loan)
    )


_TODAYS_LOAN = {True: _todays_loan(True), False: _todays_loan(False)}


def _trolley_and_counts(
    session: Session, school_id: int, trolley_id: int
) -> tuple[Location, Counts]:
    """The trolley and how it stands, in one query (a scan adjusts the counts itself)."""
    if not 1 <= trolley_id <= MAX_ID:
        raise NotFound("No such trolley in your school.")
    row = session.execute(
        _SQL["trolley"], {"trolley_id": trolley_id, "school_id": school_id}
    ).first()
    if row is None:
        raise NotFound("No such trolley in your school.")
    place = row[0]
    _check_storage(place)
    return place, Counts(place.id, place.name, int(row.out), int(row.total), int(row.here))


@dataclass(frozen=True)
class TrolleyRow:
    id: int
    name: str
    kind: str
    code: str | None
    out: int
    total: int
    here: int


def trolley_overview(session: Session, school_id: int) -> list[TrolleyRow]:
    """Every trolley, safe and cupboard with its devices out and in (one grouped query)."""
    places = storage_places(session, school_id)
    rows = session.execute(
        select(
            Device.home_location_id,
            func.count(),
            func.count(Device.holder_id),
            func.coalesce(
                func.sum(case((Device.current_location_id == Device.home_location_id, 1), else_=0)),
                0,
            ),
        )
        .where(
            Device.school_id == school_id,
            Device.home_location_id.in_([p.id for p in places]),
            Device.status != DeviceStatus.DISPOSED,
        )
        .group_by(Device.home_location_id)
    ).all()
    numbers = {row[0]: (int(row[2]), int(row[1]), int(row[3])) for row in rows}
    return [
        TrolleyRow(p.id, p.name, p.kind.value, p.code, *numbers.get(p.id, (0, 0, 0)))
        for p in places
    ]


# --- what a scan answers -------------------------------------------------------------------


@dataclass
class ScanResult:
    """What happened to one scanned device; stored with its key and replayed if re-sent."""

    outcome: str  # out | returned | put_back | transferred | already_out | already_in
    message: str
    asset_tag: str
    model: str
    counts: Counts | None
    loan_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    key: str | None = None
    recorded: bool = True
    replayed: bool = False
    wipe: str | None = None
    item_id: int | None = None

    @property
    def tone(self) -> str:
        return "warn" if self.warnings else "ok"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanResult:
        counts = data.get("counts")
        return cls(**{**data, "counts": Counts(**counts) if counts else None})


@dataclass
class Refusal:
    asset_tag: str
    code: str
    message: str


@dataclass
class BatchResult:
    """A whole-trolley take-out or a return of several devices."""

    loan: Loan | None
    results: list[ScanResult]
    refused: list[Refusal]
    counts: Counts | None
    key: str | None = None
    replayed: bool = False


def _holder_text(session: Session, device: Device) -> tuple[str, str | None]:
    """Who has a device now, as a person would say it, and their class."""
    item = open_item(session, device.id)
    holder = session.get(User, device.holder_id) if device.holder_id else None
    name = holder.name if holder else "someone"
    label = item.loan.class_label if item is not None and item.loan.class_label else None
    return name, label


def _held_by_other(session: Session, device: Device) -> Conflict:
    name, label = _holder_text(session, device)
    return Conflict(
        f"{device.asset_tag} is out with {name}{f' ({label})' if label else ''}. "
        "Take it over only if you have it in your hands.",
        code="held_by_other",
        details={"asset_tag": device.asset_tag, "holder": name, "can_transfer": True},
    )


def _core(session: Session, statement: Any, params: dict[str, Any]) -> CursorResult[Any]:
    """Run a prepared statement that touches no loaded object on the session's connection."""
    # It skips the ORM's per-statement work (and its autoflush: pending rows land at commit).
    return session.connection().execute(statement, params)


def _locks_rows(session: Session) -> bool:
    """Whether writers run side by side (PostgreSQL); SQLite's writers take turns already."""
    return session.get_bind().dialect.name != "sqlite"


def open_item(session: Session, device_id: int) -> LoanItem | None:
    item: LoanItem | None = session.scalar(_SQL["open_item"], {"device": device_id})
    return item


def _tell_losses(
    session: Session, actor: User, device: Device, place: Location | None, now: datetime
) -> None:
    """A lost or stolen device turned up: its loss report (or else the head directly) is told."""
    hook: Callable[..., object] | None
    try:
        from server.losses import services as losses

        hook = losses.device_scanned
    except (ImportError, AttributeError):
        hook = None
    where = place.name if place is not None else "school"
    told = hook(session, device, location=place, actor=actor, now=now) if hook else None
    if told is None:
        # No loss report to attach it to (or no losses domain): tell the head directly.
        _notify(
            session,
            device.school_id,
            roles=[Role.HEADTEACHER],
            kind="device_found",
            title=f"{device.asset_tag}, reported {device.status.value}, was scanned in {where}",
            body=f"{actor.name} scanned {device.asset_tag} at {where} "
            f"on {now:%d %b %Y at %H:%M} UTC. Trolley did not let it go out.",
            link=f"/devices/{device.asset_tag}",
        )
    _event(
        session,
        device,
        now,
        kind="scan",
        summary=f"Scanned at {where} while reported {device.status.value}; the head was told",
        actor=actor,
    )
    record(
        session,
        actor=actor,
        action="loans.missing_device_scanned",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"location_id": place.id if place else None, "status": device.status.value},
        at=now,
    )


def _refuse_unusable(
    session: Session, actor: User, device: Device, place: Location | None, now: datetime
) -> None:
    """Refuse a device that may not go out, with the reason (lost ones tell the head first)."""
    if device.status in MISSING:
        _tell_losses(session, actor, device, place, now)
        raise Conflict(f"{device.asset_tag}: {REPORTED_LOST}.", code="reported_lost")
    if device.status is DeviceStatus.IN_REPAIR:
        raise Conflict(
            f"{device.asset_tag} is in repair, so it cannot go out. Leave it out of the trolley.",
            code="in_repair",
        )
    if device.status is DeviceStatus.DISPOSED:
        raise Conflict(
            f"{device.asset_tag} has been disposed of and should not be in school. "
            "Please give it to the school business manager.",
            code="disposed",
        )


def _event(
    session: Session,
    device: Device,
    now: datetime,
    *,
    kind: str,
    summary: str,
    actor: User | None,
    details: dict[str, object] | None = None,
) -> None:
    event = add_event(session, device, kind=kind, summary=summary, actor=actor, details=details)
    event.at = now


def _notify(
    session: Session,
    school_id: int,
    *,
    kind: str,
    title: str,
    body: str,
    link: str | None,
    roles: Sequence[Role] = (),
    users: Sequence[User] = (),
    email: bool = True,
) -> None:
    """Tell people in the app (and by e-mail); joins this transaction."""
    from server.notifications import services as notifications

    if roles:
        notifications.notify_roles(
            session,
            school_id=school_id,
            roles=roles,
            kind=kind,
            title=title[:200],
            body=body,
            link=link,
            email=email,
        )
    if users:
        notifications.notify(
            session,
            school_id=school_id,
            users=users,
            kind=kind,
            title=title[:200],
            body=body,
            link=link,
            email=email,
        )


# --- photo wipes --------------------------------------------------------------------------


def _wipe_unconfirmed(session: Session, device: Device) -> str | None:
    """Why the device's last wipe is not confirmed, or None if it was (or there was none)."""
    row = session.execute(_SQL["last_return"], {"device": device.id}).first()
    if row is None:
        return None
    returned_at, note, status = row
    note = str(note) if note else None
    if (
        device.photo_count == 0
        and device.photo_count_at is not None
        and returned_at is not None
        and device.photo_count_at >= returned_at
    ):
        return None  # the device has since reported no photos at all
    if note:
        return note
    if status is None or status is CommandStatus.DONE:
        return None
    return wipe_text(status, None)


def wipe_text(status: CommandStatus | None, result: dict[str, Any] | None) -> str:
    """How a return's photo wipe stands, in the words the loan page uses."""
    if status is None:
        return "no wipe asked for"
    if status is CommandStatus.DONE:
        deleted = int((result or {}).get("deleted", 0) or 0)
        return f"wiped ({deleted} photo{'s' if deleted != 1 else ''} deleted)"
    if status is CommandStatus.PENDING_APPROVAL:
        return "wipe waiting for approval"
    if status in (CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RECEIVED):
        return "wipe pending"
    return f"wipe {status.label}: check the device by hand"


def wipe_state(item: LoanItem) -> tuple[str, str]:
    """(state key, words) for a returned item: done, pending, failed, by_hand or none."""
    if item.state is not ItemState.RETURNED:
        return "none", ""
    if item.wipe_note:
        return "by_hand", item.wipe_note
    command = item.wipe_command
    if command is None:
        return "none", "no wipe asked for"
    if command.status is CommandStatus.DONE:
        key = "done"
    elif command.status in (
        CommandStatus.QUEUED,
        CommandStatus.SENT,
        CommandStatus.RECEIVED,
        CommandStatus.PENDING_APPROVAL,
    ):
        key = "pending"
    else:
        key = "failed"
    return key, wipe_text(command.status, command.result)


@dataclass(frozen=True)
class Wipe:
    """The photo wipe asked for at a return: its words, its command, or why there is none."""

    words: str
    command_id: int | None = None
    note: str | None = None


def _queue_wipe(session: Session, actor: User, device: Device, place: Location) -> Wipe:
    """P-PHOTO-1: every return asks the device to delete its photos; says what happened."""
    from server.commands import services as commands

    try:
        # One device per command: a fleet-sized batch would wait for a second approver.
        (command,) = commands.issue(
            session,
            actor,
            [device],
            "wipe_photos",
            {},
            reason=f"Returned to {place.name}: photos are deleted at the end of the lesson",
            commit=False,
            trail_at_commit=True,
        )
    except ValidationFailed:
        # The only refusal left for a live device: it is not enrolled, so nobody can reach it.
        return Wipe(WIPE_BY_HAND, note=WIPE_BY_HAND)
    return Wipe(wipe_text(command.status, None), command_id=command.id)


# --- taking out ---------------------------------------------------------------------------


def _lesson_loan_factory(
    session: Session,
    actor: User,
    trolley: Location,
    class_label: str,
    due_at: datetime | None,
    now: datetime,
) -> Callable[[], Loan]:
    """Today's open loan for this teacher, trolley and class, made on first use."""
    made: list[Loan] = []

    def get() -> Loan:
        if made:
            return made[0]
        # The school's time zone comes with the latest open loan: "today" is the school's day.
        row = session.execute(
            _TODAYS_LOAN[bool(class_label)],
            {
                "teacher": actor.id,
                "trolley": trolley.id,
                "label": class_label,
                "school_id": actor.school_id,
            },
        ).first()
        timezone, loan = row if row else (_school(session, actor.school_id).timezone, None)
        today = SchoolDay((), DEFAULT_DAY_ENDS, timezone).day_start(now)
        if loan is not None and loan.started_at < today:
            loan = None  # yesterday's, left open: today's lesson is a new loan
        if loan is None:
            loan = Loan(
                school_id=actor.school_id,
                kind=LoanKind.LESSON,
                teacher_id=actor.id,
                class_label=class_label,
                trolley_id=trolley.id,
                started_at=now,
                due_at=due_at or school_day(session, actor.school_id).default_due(now),
                requested_tags=[],
            )
            session.add(loan)
            session.flush()
        elif due_at is not None and due_at != loan.due_at:
            loan.due_at = due_at
            loan.due_notified_at = None
        made.append(loan)
        return loan

    return get


def _take_out_one(
    session: Session,
    *,
    actor: User,
    holder: User,
    device: Device,
    place: Location | None,
    loan: Callable[[], Loan],
    now: datetime,
    transfer: bool = False,
) -> ScanResult:
    """Give `holder` the device: refused, already theirs, taken over (if asked) or claimed."""
    _refuse_unusable(session, actor, device, place, now)
    if device.holder_id == holder.id:
        existing = open_item(session, device.id)
        return ScanResult(
            "already_out",
            f"{device.asset_tag} is already out with {_you(actor, holder)}.",
            device.asset_tag,
            device.model,
            None,
            loan_id=existing.loan_id if existing else None,
            recorded=False,
        )
    if device.holder_id is not None:
        if not transfer:
            raise _held_by_other(session, device)
        return _transfer(session, actor, holder, device, loan, now)
    came_from = device.current_location_id
    claimed = session.execute(_SQL["claim"], {"device": device.id, "holder": holder.id, "now": now})
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        # Someone else's scan won the race (or the device changed status) a moment ago.
        session.refresh(device)
        if device.holder_id == holder.id:
            return ScanResult(
                "already_out",
                f"{device.asset_tag} is already out with {_you(actor, holder)}.",
                device.asset_tag,
                device.model,
                None,
                recorded=False,
            )
        _refuse_unusable(session, actor, device, place, now)
        raise _held_by_other(session, device)
    set_committed_value(device, "holder_id", holder.id)
    set_committed_value(device, "current_location_id", None)
    session.expire(device, ["holder", "current_location"])
    warnings = []
    unconfirmed = _wipe_unconfirmed(session, device)
    if unconfirmed:
        warnings.append(
            f"Photos from an earlier lesson may still be on {device.asset_tag} ({unconfirmed}). "
            "Check its photos before a pupil uses it."
        )
    if place is not None and came_from is not None and came_from != place.id:
        elsewhere = session.get(Location, came_from)
        warnings.append(
            f"{device.asset_tag} was recorded in {elsewhere.name if elsewhere else 'another place'}"
            f", not {place.name}."
        )
    current = loan()
    item_id = session.execute(
        _SQL["new_item"],
        {
            "school_id": device.school_id,
            "loan_id": current.id,
            "device_id": device.id,
            "state": ItemState.OUT,
            "from_location_id": came_from,
            "out_at": now,
            "out_by_id": actor.id,
            "condition": [],
            "wipe_unconfirmed_at_out": bool(unconfirmed),
            "wrong_trolley": False,
        },
    ).scalar_one()
    where = f"out of {place.name}" if place is not None else "out"
    who = holder.name if holder.id == actor.id else f"{holder.name} (by {actor.name})"
    _event(
        session,
        device,
        now,
        kind="loan_out",
        summary=f"Taken {where} by {who}"
        + (f" for {current.class_label}" if current.class_label else ""),
        actor=actor,
        details={"loan_id": current.id},
    )
    return ScanResult(
        "out",
        f"{device.asset_tag} is out with {_you(actor, holder)}.",
        device.asset_tag,
        device.model,
        None,
        loan_id=current.id,
        warnings=warnings,
        item_id=item_id,
    )


def _you(actor: User, holder: User) -> str:
    return "you" if actor.id == holder.id else holder.name


def _transfer(
    session: Session,
    actor: User,
    holder: User,
    device: Device,
    loan: Callable[[], Loan],
    now: datetime,
) -> ScanResult:
    """Hand a device that is out with someone else to `holder` (logged; they are told)."""
    previous = open_item(session, device.id)
    old_holder_id = device.holder_id
    moved = session.execute(
        update(Device)
        .where(Device.id == device.id, Device.holder_id == old_holder_id)
        .values(holder_id=holder.id, current_location_id=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(device)
        raise _held_by_other(session, device)
    set_committed_value(device, "holder_id", holder.id)
    set_committed_value(device, "current_location_id", None)
    session.expire(device, ["holder", "current_location"])
    old = session.get(User, old_holder_id) if old_holder_id else None
    if previous is not None:
        # Closed before the new item exists: one open item per device, even mid-flush.
        _close_item(
            session,
            previous,
            state=ItemState.TRANSFERRED,
            returned_at=now,
            returned_by_id=actor.id,
        )
        _close_if_done(session, previous.loan, now)
    current = loan()
    item = LoanItem(
        school_id=device.school_id,
        loan=current,
        device_id=device.id,
        state=ItemState.OUT,
        from_location_id=None,
        out_at=now,
        out_by_id=actor.id,
        condition=[],
        wipe_unconfirmed_at_out=False,
        wrong_trolley=False,
    )
    session.add(item)
    session.flush()
    old_name = old.name if old else "someone"
    _event(
        session,
        device,
        now,
        kind="loan_transfer",
        summary=f"Taken over from {old_name} by {holder.name}",
        actor=actor,
        details={"loan_id": current.id, "from_user_id": old_holder_id},
    )
    record(
        session,
        actor=actor,
        action="loans.transferred",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"from_user_id": old_holder_id, "to_user_id": holder.id, "loan_id": current.id},
        at=now,
    )
    if old is not None and old.id != actor.id:
        _notify(
            session,
            device.school_id,
            users=[old],
            kind="loan_transfer",
            title=f"{holder.name} has taken over {device.asset_tag}",
            body=f"{device.asset_tag} is no longer on your loan: {holder.name} scanned it and "
            "took it over. Nothing else to do.",
            link=f"/devices/{device.asset_tag}",
            email=False,
        )
    return ScanResult(
        "transferred",
        f"{device.asset_tag} is now out with {_you(actor, holder)} (taken over from {old_name}).",
        device.asset_tag,
        device.model,
        None,
        loan_id=current.id,
        item_id=item.id,
    )


# --- returning ----------------------------------------------------------------------------


_CLOSE_COLUMNS = (
    "state",
    "returned_at",
    "returned_by_id",
    "return_location_id",
    "wrong_trolley",
    "condition",
    "condition_note",
    "wipe_command_id",
    "wipe_note",
)
_CLOSE_ITEM = (
    update(LoanItem)
    .where(LoanItem.id == bindparam("item"), LoanItem.state == ItemState.OUT)
    .values({name: bindparam(f"new_{name}") for name in _CLOSE_COLUMNS})
)


def _close_item(session: Session, item: LoanItem, **values: Any) -> bool:
    """Close an open item once (a conditional UPDATE: a second return finds it closed)."""
    every = {name: getattr(item, name) for name in _CLOSE_COLUMNS} | values
    closed = _core(
        session, _CLOSE_ITEM, {"item": item.id} | {f"new_{k}": v for k, v in every.items()}
    )
    if closed.rowcount != 1:
        return False
    for name, value in values.items():
        set_committed_value(item, name, value)
    return True


def _close_if_done(session: Session, loan: Loan, now: datetime) -> None:
    """A loan closes once nothing on it is out any more (one statement, no read)."""
    closed = _core(session, _SQL["close_loan"], {"loan": loan.id, "now": now})
    if closed.rowcount == 1:
        set_committed_value(loan, "closed_at", now)
        if loan.kind is LoanKind.HOME:
            _home_loan_profile(session, loan, at_home=False)


def _return_one(
    session: Session,
    *,
    actor: User,
    device: Device,
    place: Location,
    now: datetime,
    condition: Sequence[ConditionFlag] = (),
    note: str | None = None,
    put_in_repair: bool = False,
    only_loan: Loan | None = None,
    locked: bool = False,
) -> ScanResult:
    """Put a device into a trolley: closes its loan item, queues the wipe, notes damage."""
    # The device is read under its lock (`locked`: already read so), then its open item: a
    # scan committed in between can be neither missed nor overwritten.
    if not locked and _locks_rows(session):
        session.refresh(device, with_for_update=True)
    if device.status in MISSING or device.status is DeviceStatus.DISPOSED:
        _refuse_unusable(session, actor, device, place, now)
    item: LoanItem | None = session.scalar(_SQL["open_item_locked"], {"device": device.id})
    if only_loan is not None and (item is None or item.loan_id != only_loan.id):
        raise Conflict(
            f"{device.asset_tag} is not out on this loan.",
            code="not_on_loan",
            details={"asset_tag": device.asset_tag},
        )
    note = (note or "").strip()[:500] or None
    if (
        item is None
        and device.holder_id is None
        and device.current_location_id == place.id
        and not condition
        and not put_in_repair
    ):
        return ScanResult(
            "already_in",
            f"{device.asset_tag} is already in {place.name}.",
            device.asset_tag,
            device.model,
            None,
            recorded=False,
        )
    wrong = device.home_location_id is not None and device.home_location_id != place.id
    wipe = _queue_wipe(session, actor, device, place)
    if item is not None and not _close_item(
        session,
        item,
        state=ItemState.RETURNED,
        returned_at=now,
        returned_by_id=actor.id,
        return_location_id=place.id,
        wrong_trolley=wrong,
        condition=[flag.value for flag in condition],
        condition_note=note,
        wipe_command_id=wipe.command_id,
        wipe_note=wipe.note,
    ):
        raise Conflict(
            f"{device.asset_tag} has just been put back by someone else.",
            code="already_returned",
            details={"asset_tag": device.asset_tag},
        )
    previous_holder = device.holder_id
    _core(session, _SQL["put_back"], {"device": device.id, "place": place.id, "now": now})
    set_committed_value(device, "holder_id", None)
    set_committed_value(device, "current_location_id", place.id)
    session.expire(device, ["holder", "current_location"])
    warnings: list[str] = []
    if wrong:
        home = session.get(Location, device.home_location_id)
        home_name = home.name if home else "another place"
        warnings.append(
            f"{device.asset_tag} lives in {home_name}, not {place.name}. "
            "It is recorded here and the school business manager has a note."
        )
        _notify(
            session,
            device.school_id,
            roles=[Role.SBM],
            kind="wrong_trolley",
            title=f"{device.asset_tag} was put in {place.name}, not {home_name}",
            body=f"{actor.name} returned {device.asset_tag} to {place.name} on "
            f"{now:%d %b %Y at %H:%M} UTC. It lives in {home_name}.",
            link=f"/devices/{device.asset_tag}",
            email=False,
        )
    if wipe.note:
        warnings.append(f"{device.asset_tag} is {wipe.note}.")
    if condition or put_in_repair:
        warnings.extend(
            _report_damage(session, actor, device, item, condition, note, put_in_repair)
        )
    summary = f"Returned to {place.name} by {actor.name}"
    if item is None:
        summary = f"Put back in {place.name} by {actor.name} (it was not signed out)"
    _event(
        session,
        device,
        now,
        kind="loan_return",
        summary=summary + (" — wrong trolley" if wrong else ""),
        actor=actor,
        details={
            "loan_id": item.loan_id if item else None,
            "condition": [flag.value for flag in condition],
        },
    )
    if item is None:
        message = f"{device.asset_tag} was not signed out; it is now recorded in {place.name}."
        if previous_holder is not None:
            message = f"{device.asset_tag} is back in {place.name}."
        return ScanResult(
            "put_back",
            message,
            device.asset_tag,
            device.model,
            None,
            warnings=warnings,
            wipe=wipe.words,
        )
    _close_if_done(session, item.loan, now)
    return ScanResult(
        "returned",
        f"{device.asset_tag} is back in {place.name}.",
        device.asset_tag,
        device.model,
        None,
        loan_id=item.loan_id,
        warnings=warnings,
        wipe=wipe.words,
        item_id=item.id,
    )


def _report_damage(
    session: Session,
    actor: User,
    device: Device,
    item: LoanItem | None,
    condition: Sequence[ConditionFlag],
    note: str | None,
    put_in_repair: bool,
) -> list[str]:
    """P-AUDIT-2: a damage report for the computing lead; optionally out of the loanable pool."""
    warnings = []
    words = ", ".join(flag.label.lower() for flag in condition) or "damage"
    report = DamageReport(
        school_id=device.school_id,
        device_id=device.id,
        item_id=item.id if item is not None else None,
        reported_by_id=actor.id,
        flags=[flag.value for flag in condition],
        note=note,
        status=DamageStatus.OPEN,
    )
    session.add(report)
    if put_in_repair:
        if DeviceStatus.IN_REPAIR in TRANSITIONS[device.status]:
            change_status(
                session,
                actor,
                device,
                DeviceStatus.IN_REPAIR,
                f"Reported at return: {words}" + (f" ({note})" if note else ""),
                commit=False,
            )
            report.status = DamageStatus.IN_REPAIR
            warnings.append(f"{device.asset_tag} is now in repair and will not go out.")
        else:
            warnings.append(
                f"{device.asset_tag} could not be put in repair from {device.status.label.lower()}."
            )
    session.flush()
    _notify(
        session,
        device.school_id,
        roles=[Role.COMPUTING_LEAD],
        kind="damage_report",
        title=f"{device.asset_tag} returned with a problem: {words}",
        body=f"{actor.name} reported {words} when returning {device.asset_tag}."
        + (f" Note: {note}" if note else "")
        + (" It has been put in repair." if report.status is DamageStatus.IN_REPAIR else ""),
        link="/loans/damage",
    )
    warnings.insert(0, f"Thanks: the computing lead has been told about the {words}.")
    return warnings


# --- scans: the page's one call -----------------------------------------------------------


def _check_key(key: str | None) -> None:
    if key is not None and not KEY_RE.match(key):
        raise ValidationFailed(
            "A scan's idempotency key is 8 to 64 letters, digits, '-' or '_'.", code="bad_key"
        )


def _replay(session: Session, actor: User, key: str | None) -> Scan | None:
    if key is None:
        return None
    return session.scalar(select(Scan).where(Scan.school_id == actor.school_id, Scan.key == key))


def _replayed(scan: Scan) -> ScanResult:
    result = ScanResult.from_json(scan.response)
    result.replayed = True
    return result


def _store(
    session: Session,
    actor: User,
    key: str | None,
    action: ScanAction,
    result: ScanResult | None,
    device: Device | None,
    now: datetime,
    response: dict[str, Any] | None = None,
) -> None:
    if key is None or (result is not None and not result.recorded):
        return
    _core(
        session,
        _SQL["new_scan"],
        {
            "school_id": actor.school_id,
            "key": key,
            "user_id": actor.id,
            "action": action,
            "device_id": device.id if device is not None else None,
            "item_id": result.item_id if result is not None else None,
            "at": now,
            "response": response if response is not None else (result.to_json() if result else {}),
        },
    )


def _commit_or_replay(
    session: Session, actor: User, key: str | None, record_scan: Callable[[], None]
) -> Scan | None:
    """Record the scan and commit; if its key is already taken, return the scan that took it."""
    try:
        record_scan()
        session.commit()
    except IntegrityError:
        session.rollback()
        earlier = _replay(session, actor, key)
        if earlier is None:
            raise
        return earlier
    return None


def scan(
    session: Session,
    actor: User,
    *,
    mode: str,
    trolley_id: int,
    code: str,
    base_url: str,
    key: str | None = None,
    class_label: str = "",
    due_at: datetime | None = None,
    transfer: bool = False,
    condition: Sequence[ConditionFlag] = (),
    condition_note: str | None = None,
    put_in_repair: bool = False,
    now: datetime | None = None,
) -> ScanResult:
    """One scan from the trolley page: take a device out ('out') or put it back ('in').

    A re-sent key is answered as the first time: a scan is recorded with its key in the same
    transaction, so a second one with that key fails to commit and finds the first instead.
    """
    now = now or utcnow()
    _check_key(key)
    if mode not in ("out", "in"):
        raise ValidationFailed("Choose 'out' to take devices out or 'in' to put them back.")
    try:
        trolley, counts = _trolley_and_counts(session, actor.school_id, trolley_id)
        locked = mode == "in" and _locks_rows(session)
        device = resolve_code(session, actor.school_id, code, base_url, lock=locked)
        if device.status in MISSING and key is not None:
            earlier = _replay(session, actor, key)
            if earlier is not None:  # an old scan re-sent: the device was not found again
                return _replayed(earlier)
        return _scan_device(
            session,
            actor,
            device,
            trolley,
            counts,
            mode=mode,
            key=key,
            class_label=class_label,
            due_at=due_at,
            transfer=transfer,
            condition=condition,
            condition_note=condition_note,
            put_in_repair=put_in_repair,
            now=now,
            locked=locked,
        )
    except TrolleyError:
        # Things may have moved on since the first time this key was sent.
        earlier = _replay(session, actor, key)
        if earlier is not None:
            return _replayed(earlier)
        raise


def _scan_device(
    session: Session,
    actor: User,
    device: Device,
    trolley: Location,
    counts: Counts,
    *,
    mode: str,
    now: datetime,
    key: str | None = None,
    class_label: str = "",
    due_at: datetime | None = None,
    transfer: bool = False,
    condition: Sequence[ConditionFlag] = (),
    condition_note: str | None = None,
    put_in_repair: bool = False,
    locked: bool = False,
) -> ScanResult:
    class_label = " ".join(class_label.split())[:64]
    before = (device.holder_id, device.current_location_id)
    try:
        if mode == "out":
            if condition or put_in_repair:
                raise ValidationFailed("Condition is noted when a device comes back, not out.")
            result = _take_out_one(
                session,
                actor=actor,
                holder=actor,
                device=device,
                place=trolley,
                loan=_lesson_loan_factory(session, actor, trolley, class_label, due_at, now),
                now=now,
                transfer=transfer,
            )
            action = ScanAction.TRANSFER if result.outcome == "transferred" else ScanAction.OUT
        else:
            result = _return_one(
                session,
                actor=actor,
                device=device,
                place=trolley,
                now=now,
                condition=condition,
                note=condition_note,
                put_in_repair=put_in_repair,
                locked=locked,
            )
            action = ScanAction.IN
    except TrolleyError as exc:
        if exc.code == "reported_lost":
            session.commit()  # the head is told even though the scan itself is refused
        else:
            session.rollback()
        raise
    if not result.recorded:
        # The same scan sent twice at once: the twin that won has recorded it; answer as it did.
        twin = _replay(session, actor, key)
        if twin is not None:
            session.rollback()
            return _replayed(twin)
        session.commit()
        result.counts = counts
        return result
    after = (device.holder_id, device.current_location_id)
    result.counts = counts.moved(device.home_location_id, before, after)
    result.key = key
    twin = _commit_or_replay(
        session, actor, key, lambda: _store(session, actor, key, action, result, device, now)
    )
    if twin is not None:
        return _replayed(twin)
    log.info("scan %s %s by user %s: %s", mode, device.asset_tag, actor.id, result.outcome)
    return result


def quick_take_out(
    session: Session,
    actor: User,
    device: Device,
    *,
    transfer: bool = False,
    now: datetime | None = None,
) -> ScanResult:
    """One tap on the device page (a phone opened its label): out of the trolley it is in."""
    now = now or utcnow()
    place = next(
        (p for p in (device.current_location, device.home_location) if p and p.is_storage), None
    )
    if place is None:
        raise ValidationFailed(
            f"{device.asset_tag} is not recorded in a trolley; take it out on the scan page."
        )
    counts = trolley_counts(session, actor.school_id, place)
    return _scan_device(
        session, actor, device, place, counts, mode="out", transfer=transfer, now=now
    )


def quick_return(
    session: Session, actor: User, device: Device, *, now: datetime | None = None
) -> ScanResult:
    """One tap on the device page: back into the trolley it lives in."""
    now = now or utcnow()
    place = device.home_location
    if place is None or place.kind not in STORAGE_KINDS:
        raise ValidationFailed(
            f"{device.asset_tag} has no home trolley; put it back on the scan page instead."
        )
    counts = trolley_counts(session, actor.school_id, place)
    return _scan_device(session, actor, device, place, counts, mode="in", now=now)


def _resolve_many(
    session: Session, school_id: int, codes: Sequence[str], base_url: str
) -> list[Device]:
    """Every code must name a device in the school, or nothing happens at all."""
    if len(codes) > MAX_BATCH:
        raise ValidationFailed(f"Send at most {MAX_BATCH} devices at a time.")
    devices: dict[int, Device] = {}
    problems = []
    for code in codes:
        try:
            device = resolve_code(session, school_id, code, base_url)
        except (ValidationFailed, NotFound) as exc:
            problems.append({"field": "asset_tags", "message": exc.message})
            continue
        devices.setdefault(device.id, device)
    if problems:
        raise ValidationFailed(
            "Some codes are not devices in your school; nothing was recorded.", details=problems
        )
    return list(devices.values())


def take_out(
    session: Session,
    actor: User,
    *,
    trolley_id: int,
    base_url: str,
    asset_tags: Sequence[str] = (),
    take_all: bool = False,
    class_label: str = "",
    due_at: datetime | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Take several devices (or the whole trolley) out in one action; refusals are listed."""
    now = now or utcnow()
    _check_key(key)
    earlier = _replay(session, actor, key)
    if earlier is not None:
        return _batch_replayed(session, actor, earlier)
    if take_all == bool(asset_tags):
        raise ValidationFailed("Send either a list of asset tags or all: true, not both.")
    trolley = get_trolley(session, actor.school_id, trolley_id)
    if take_all:
        devices = list(
            session.scalars(
                select(Device)
                .where(
                    Device.school_id == actor.school_id,
                    Device.current_location_id == trolley.id,
                    Device.holder_id.is_(None),
                    Device.status != DeviceStatus.DISPOSED,
                )
                .order_by(Device.asset_tag)
            )
        )
        if not devices:
            raise ValidationFailed(f"There is nothing in {trolley.name} to take out.")
    else:
        devices = _resolve_many(session, actor.school_id, asset_tags, base_url)
    label = " ".join(class_label.split())[:64]
    loan = _lesson_loan_factory(session, actor, trolley, label, due_at, now)
    results, refused = [], []
    for device in devices:
        try:
            results.append(
                _take_out_one(
                    session,
                    actor=actor,
                    holder=actor,
                    device=device,
                    place=trolley,
                    loan=loan,
                    now=now,
                )
            )
        except Conflict as exc:
            refused.append(Refusal(device.asset_tag, exc.code, exc.message))
    taken = [r for r in results if r.outcome == "out"]
    if not taken and not [r for r in results if r.outcome == "already_out"]:
        session.commit()  # a lost device's discovery is kept even though nothing went out
        raise Conflict(
            "None of those devices could be taken out.",
            code="nothing_taken",
            details=[dataclasses.asdict(r) for r in refused],
        )
    current = loan()
    counts = trolley_counts(session, actor.school_id, trolley)
    batch = BatchResult(current, results, refused, counts, key=key)
    twin = _commit_or_replay(
        session,
        actor,
        key,
        lambda: _store(session, actor, key, ScanAction.BATCH, None, None, now, _batch_json(batch)),
    )
    if twin is not None:
        return _batch_replayed(session, actor, twin)
    batch.loan = get_loan(session, actor.school_id, current.id)
    return batch


def _batch_json(batch: BatchResult) -> dict[str, Any]:
    return {
        "loan_id": batch.loan.id if batch.loan else None,
        "results": [r.to_json() for r in batch.results],
        "refused": [dataclasses.asdict(r) for r in batch.refused],
        "counts": dataclasses.asdict(batch.counts) if batch.counts else None,
    }


def _batch_replayed(session: Session, actor: User, scan_row: Scan) -> BatchResult:
    data = scan_row.response
    loan = get_loan(session, actor.school_id, data["loan_id"]) if data.get("loan_id") else None
    return BatchResult(
        loan,
        [ScanResult.from_json(r) for r in data.get("results", [])],
        [Refusal(**r) for r in data.get("refused", [])],
        Counts(**data["counts"]) if data.get("counts") else None,
        key=scan_row.key,
        replayed=True,
    )


def return_devices(
    session: Session,
    actor: User,
    loan_id: int,
    *,
    asset_tags: Sequence[str],
    base_url: str,
    trolley_id: int | None = None,
    condition: Sequence[ConditionFlag] = (),
    condition_note: str | None = None,
    put_in_repair: bool = False,
    key: str | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Return devices of one loan into a trolley (its own by default); refusals are listed."""
    now = now or utcnow()
    _check_key(key)
    earlier = _replay(session, actor, key)
    if earlier is not None:
        return _batch_replayed(session, actor, earlier)
    loan = get_loan(session, actor.school_id, loan_id)
    if not asset_tags:
        raise ValidationFailed("List the asset tags of the devices coming back.")
    target = trolley_id or loan.trolley_id
    if target is None:
        raise ValidationFailed("Say which trolley the devices are going back into.")
    trolley = get_trolley(session, actor.school_id, target)
    devices = _resolve_many(session, actor.school_id, asset_tags, base_url)
    results, refused = [], []
    for device in devices:
        try:
            results.append(
                _return_one(
                    session,
                    actor=actor,
                    device=device,
                    place=trolley,
                    now=now,
                    condition=condition,
                    note=condition_note,
                    put_in_repair=put_in_repair,
                    only_loan=loan,
                )
            )
        except Conflict as exc:
            refused.append(Refusal(device.asset_tag, exc.code, exc.message))
    counts = trolley_counts(session, actor.school_id, trolley)
    batch = BatchResult(loan, results, refused, counts, key=key)
    twin = _commit_or_replay(
        session,
        actor,
        key,
        lambda: _store(session, actor, key, ScanAction.BATCH, None, None, now, _batch_json(batch)),
    )
    if twin is not None:
        return _batch_replayed(session, actor, twin)
    batch.loan = get_loan(session, actor.school_id, loan.id)
    return batch


@dataclass(frozen=True)
class Undone:
    message: str
    asset_tag: str
    counts: Counts | None


def undo_scan(session: Session, actor: User, key: str, *, now: datetime | None = None) -> Undone:
    """Undo your own last take-out or return of a device (within 15 minutes)."""
    now = now or utcnow()
    _check_key(key)
    row = session.scalar(
        select(Scan).where(
            Scan.school_id == actor.school_id, Scan.key == key, Scan.user_id == actor.id
        )
    )
    if row is None or row.device_id is None:
        raise NotFound("There is no scan of yours to undo there.")
    if row.undone_at is not None:
        raise Conflict("That scan has already been undone.")
    if row.action not in (ScanAction.OUT, ScanAction.IN):
        raise Conflict("Only a single take-out or return can be undone; scan the device instead.")
    if now - row.at > UNDO_WINDOW:
        raise Conflict("Scans can only be undone for 15 minutes; scan the device again instead.")
    later = session.scalar(
        select(func.count())
        .select_from(Scan)
        .where(Scan.device_id == row.device_id, Scan.id > row.id, Scan.undone_at.is_(None))
    )
    device = session.get(Device, row.device_id)
    item = session.get(LoanItem, row.item_id) if row.item_id else None
    if device is None or item is None:
        raise Conflict("Only a take-out or a return on a loan can be undone; scan it instead.")
    if later:
        raise Conflict(f"{device.asset_tag} has been scanned again since; scan it instead.")
    loan = item.loan
    trolley = loan.trolley
    if row.action is ScanAction.OUT:
        if item.state is not ItemState.OUT or device.holder_id != actor.id:
            raise Conflict(f"{device.asset_tag} has moved on since; scan it again instead.")
        back_to = item.from_location_id
        session.delete(item)
        session.flush()
        device.holder_id = None
        device.current_location_id = back_to
        where = session.get(Location, back_to) if back_to else None
        message = f"Undone: {device.asset_tag} is back in {where.name if where else 'its place'}."
        summary = "Take-out undone"
        if not session.scalar(
            select(func.count()).select_from(LoanItem).where(LoanItem.loan_id == loan.id)
        ):
            session.delete(loan)
    else:
        if item.state is not ItemState.RETURNED or device.holder_id is not None:
            raise Conflict(f"{device.asset_tag} has moved on since; scan it again instead.")
        damage = session.scalar(select(DamageReport.id).where(DamageReport.item_id == item.id))
        if damage is not None:
            raise Conflict(
                "That return reported damage, so it cannot be undone here. "
                "Ask the computing lead to correct it."
            )
        item.state = ItemState.OUT
        item.returned_at = None
        item.returned_by_id = None
        item.return_location_id = None
        item.wrong_trolley = False
        item.wipe_command_id = None
        item.wipe_note = None
        device.holder_id = loan.teacher_id
        device.current_location_id = None
        loan.closed_at = None
        message = (
            f"Undone: {device.asset_tag} is out with "
            f"{'you' if loan.teacher_id == actor.id else loan.teacher.name} again. "
            "The photo wipe already asked for will still happen."
        )
        summary = "Return undone"
    row.undone_at = now
    _event(session, device, now, kind="loan_undo", summary=summary, actor=actor)
    session.flush()
    counts = trolley_counts(session, actor.school_id, trolley) if trolley else None
    session.commit()
    return Undone(message, device.asset_tag, counts)


# How far ahead a typed "back by" time may fall on the next day (a loan is for a lesson or so).
DUE_AHEAD = timedelta(hours=12)


def due_today_at(
    session: Session, school_id: int, when: time, *, now: datetime | None = None
) -> datetime:
    """A time typed on the scan page ("back by 10:45") as its next moment in the school's zone."""
    now = now or utcnow()
    day = SchoolDay((), DEFAULT_DAY_ENDS, _school(session, school_id).timezone)
    today = day.local(now).date()
    due = day.at(today, when)
    if due <= now:
        # Late in the evening "back by 00:30" means after midnight; an earlier time is a slip.
        due = day.at(today + timedelta(days=1), when)
        if due - now > DUE_AHEAD:
            raise ValidationFailed(f"{when:%H:%M} has already passed today; choose a later time.")
    return due


# --- reading loans ------------------------------------------------------------------------


def get_loan(session: Session, school_id: int, loan_id: int) -> Loan:
    if not 1 <= loan_id <= MAX_ID:
        raise NotFound("No such loan in your school.")
    loan = session.scalar(
        select(Loan)
        .where(Loan.id == loan_id, Loan.school_id == school_id)
        .options(
            selectinload(Loan.items).joinedload(LoanItem.device),
            selectinload(Loan.items).joinedload(LoanItem.wipe_command),
            selectinload(Loan.items).joinedload(LoanItem.return_location),
            joinedload(Loan.teacher),
            joinedload(Loan.trolley),
        )
        .execution_options(populate_existing=True)
    )
    if loan is None:
        raise NotFound("No such loan in your school.")
    return loan


def list_loans(
    session: Session,
    school_id: int,
    *,
    teacher_id: int | None = None,
    open_only: bool = False,
    kind: LoanKind | None = None,
    limit: int = 50,
) -> Sequence[Loan]:
    query = select(Loan).where(Loan.school_id == school_id)
    if teacher_id is not None:
        query = query.where(Loan.teacher_id == teacher_id)
    if open_only:
        query = query.where(Loan.closed_at.is_(None))
    if kind is not None:
        query = query.where(Loan.kind == kind)
    return session.scalars(
        query.options(
            selectinload(Loan.items).joinedload(LoanItem.device),
            selectinload(Loan.items).joinedload(LoanItem.wipe_command),
            joinedload(Loan.teacher),
            joinedload(Loan.trolley),
        )
        .order_by(Loan.started_at.desc(), Loan.id.desc())
        .limit(limit)
    ).all()


def recent_class_labels(session: Session, user: User, limit: int = 8) -> list[str]:
    rows = session.execute(
        select(Loan.class_label, func.max(Loan.started_at))
        .where(Loan.teacher_id == user.id, Loan.class_label != "", Loan.kind == LoanKind.LESSON)
        .group_by(Loan.class_label)
        .order_by(func.max(Loan.started_at).desc())
        .limit(limit)
    ).all()
    return [label for label, _at in rows]


def change_due(
    session: Session, actor: User, loan_id: int, due_at: datetime, *, now: datetime | None = None
) -> Loan:
    """The teacher (or a lead) moves the time a lesson's devices are due back."""
    now = now or utcnow()
    loan = get_loan(session, actor.school_id, loan_id)
    if loan.teacher_id != actor.id and not has_permission(actor.role, Permission.REPORTS_READ):
        raise Forbidden("Only the teacher who took the devices out can change when they are due.")
    if loan.closed_at is not None:
        raise Conflict("Everything on this loan is already back.")
    if loan.kind is not LoanKind.LESSON:
        raise ValidationFailed("A home loan's return date is set when it is approved.")
    if not now - timedelta(hours=1) <= due_at <= now + timedelta(days=7):
        raise ValidationFailed("Choose a time from now to a week ahead.")
    loan.due_at = due_at
    loan.due_notified_at = None
    session.commit()
    return loan


@dataclass(frozen=True)
class OutItem:
    """A device out now, with who has it and since when (P-REG-3)."""

    asset_tag: str
    model: str
    loan_id: int
    kind: str
    teacher: str
    teacher_id: int
    class_label: str
    trolley: str | None
    out_at: datetime
    due_at: datetime
    overdue: bool
    overnight: bool
    last_seen_at: datetime | None


def devices_out(
    session: Session,
    school_id: int,
    *,
    now: datetime | None = None,
    teacher_id: int | None = None,
    trolley_id: int | None = None,
    limit: int = 500,
) -> list[OutItem]:
    """Everything out now (one joined query), oldest first."""
    now = now or utcnow()
    day = school_day(session, school_id)
    start = day.day_start(now)
    query = (
        select(LoanItem, Loan, Device, User, Location.name)
        .join(Loan, Loan.id == LoanItem.loan_id)
        .join(Device, Device.id == LoanItem.device_id)
        .join(User, User.id == Loan.teacher_id)
        .outerjoin(Location, Location.id == Loan.trolley_id)
        .where(LoanItem.state == ItemState.OUT, LoanItem.school_id == school_id)
    )
    if teacher_id is not None:
        query = query.where(Loan.teacher_id == teacher_id)
    if trolley_id is not None:
        query = query.where(Device.home_location_id == trolley_id)
    rows = session.execute(query.order_by(LoanItem.out_at, Device.asset_tag).limit(limit)).all()
    return [
        OutItem(
            asset_tag=device.asset_tag,
            model=device.model,
            loan_id=loan.id,
            kind=loan.kind.value,
            teacher=user.name,
            teacher_id=user.id,
            class_label=loan.class_label,
            trolley=trolley_name,
            out_at=item.out_at,
            due_at=loan.due_at,
            overdue=loan.due_at < now,
            overnight=loan.kind is LoanKind.LESSON and item.out_at < start,
            last_seen_at=device.last_seen_at,
        )
        for item, loan, device, user, trolley_name in rows
    ]


@dataclass(frozen=True)
class WipeSummary:
    pending: int
    failed: int
    by_hand: int
    done: int


def wipe_summary(session: Session, school_id: int, *, since: datetime) -> WipeSummary:
    """Returns since `since` by how their photo wipe stands (one grouped query)."""
    rows = session.execute(
        select(LoanItem.wipe_note.is_not(None), Command.status, func.count())
        .outerjoin(Command, Command.id == LoanItem.wipe_command_id)
        .where(
            LoanItem.school_id == school_id,
            LoanItem.state == ItemState.RETURNED,
            LoanItem.returned_at >= since,
        )
        .group_by(LoanItem.wipe_note.is_not(None), Command.status)
    ).all()
    pending = failed = by_hand = done = 0
    for manual, status, n in rows:
        if manual:
            by_hand += n
        elif status is CommandStatus.DONE:
            done += n
        elif status in (
            CommandStatus.QUEUED,
            CommandStatus.SENT,
            CommandStatus.RECEIVED,
            CommandStatus.PENDING_APPROVAL,
        ):
            pending += n
        elif status is not None:
            failed += n
    return WipeSummary(pending, failed, by_hand, done)


def wipes_to_check(session: Session, school_id: int, *, since: datetime) -> list[LoanItem]:
    """Returns whose wipe is not confirmed yet (pending, failed or to be done by hand)."""
    items = session.scalars(
        select(LoanItem)
        .outerjoin(Command, Command.id == LoanItem.wipe_command_id)
        .where(
            LoanItem.school_id == school_id,
            LoanItem.state == ItemState.RETURNED,
            LoanItem.returned_at >= since,
            (LoanItem.wipe_note.is_not(None)) | (Command.status != CommandStatus.DONE),
        )
        .options(joinedload(LoanItem.device), joinedload(LoanItem.wipe_command))
        .order_by(LoanItem.returned_at.desc())
        .limit(100)
    ).all()
    return list(items)


def device_loans(session: Session, device: Device, limit: int = 5) -> Sequence[LoanItem]:
    """The device's latest loans, for its page."""
    return session.scalars(
        select(LoanItem)
        .where(LoanItem.device_id == device.id)
        .options(
            joinedload(LoanItem.loan).joinedload(Loan.teacher),
            joinedload(LoanItem.wipe_command),
            joinedload(LoanItem.return_location),
        )
        .order_by(LoanItem.out_at.desc())
        .limit(limit)
    ).all()


def misplaced(session: Session, school_id: int, *, since: datetime) -> list[LoanItem]:
    """Recent wrong-trolley returns whose device is still away from home (the SBM's note)."""
    return list(
        session.scalars(
            select(LoanItem)
            .join(Device, Device.id == LoanItem.device_id)
            .where(
                LoanItem.school_id == school_id,
                LoanItem.wrong_trolley.is_(True),
                LoanItem.returned_at >= since,
                Device.holder_id.is_(None),
                Device.current_location_id == LoanItem.return_location_id,
                Device.home_location_id != LoanItem.return_location_id,
            )
            .options(joinedload(LoanItem.device), joinedload(LoanItem.return_location))
            .order_by(LoanItem.returned_at.desc())
            .limit(50)
        ).unique()
    )


# --- damage -------------------------------------------------------------------------------


def damage_reports(
    session: Session, school_id: int, *, open_only: bool = True
) -> Sequence[DamageReport]:
    query = select(DamageReport).where(DamageReport.school_id == school_id)
    if open_only:
        query = query.where(DamageReport.status != DamageStatus.RESOLVED)
    return session.scalars(
        query.options(joinedload(DamageReport.device), joinedload(DamageReport.reported_by))
        .order_by(DamageReport.reported_at.desc())
        .limit(200)
    ).all()


def _damage(session: Session, school_id: int, report_id: int) -> DamageReport:
    if not 1 <= report_id <= MAX_ID:
        raise NotFound("No such damage report in your school.")
    report = session.scalar(
        select(DamageReport).where(
            DamageReport.id == report_id, DamageReport.school_id == school_id
        )
    )
    if report is None:
        raise NotFound("No such damage report in your school.")
    return report


def put_in_repair(session: Session, actor: User, report_id: int) -> DamageReport:
    """Take a damaged device out of the loanable pool (P-AUDIT-2)."""
    report = _damage(session, actor.school_id, report_id)
    if report.status is not DamageStatus.OPEN:
        raise Conflict(f"This report is already {report.status.label.lower()}.")
    device = report.device
    words = ", ".join(ConditionFlag(f).label.lower() for f in report.flags) or "damage"
    if device.status is not DeviceStatus.IN_REPAIR:
        change_status(
            session, actor, device, DeviceStatus.IN_REPAIR, f"Damage report: {words}", commit=False
        )
    report.status = DamageStatus.IN_REPAIR
    session.commit()
    return report


def resolve_damage(session: Session, actor: User, report_id: int, note: str) -> DamageReport:
    """Close a damage report with what was done (the computing lead, SBM or technician)."""
    report = _damage(session, actor.school_id, report_id)
    if not (
        has_permission(actor.role, Permission.REPORTS_READ)
        or has_permission(actor.role, Permission.DEVICES_WRITE)
    ):
        raise Forbidden("The computing lead, SBM or technician closes damage reports.")
    if report.status is DamageStatus.RESOLVED:
        raise Conflict("This report is already closed.")
    if not note.strip():
        raise ValidationFailed("Say what was done about it.")
    report.status = DamageStatus.RESOLVED
    report.resolved_by_id = actor.id
    report.resolved_at = utcnow()
    report.resolution = note.strip()[:500]
    record(
        session,
        actor=actor,
        action="loans.damage_resolved",
        school_id=actor.school_id,
        target_type="device",
        target_id=report.device.asset_tag,
        details={"report_id": report.id, "note": report.resolution},
    )
    session.commit()
    return report


# --- home loans (P-TROLLEY-2's one exception) ---------------------------------------------

APPROVERS = frozenset({Role.SBM, Role.HEADTEACHER})


def _home_loan_profile(session: Session, loan: Loan, *, at_home: bool) -> None:
    """A device at home gets the home-loan profile; back in school, its usual one."""
    try:
        from server.profiles import services as profiles

        hook = profiles.set_home_loan
    except (ImportError, AttributeError):
        log.info("no home-loan profile hook yet; loan %s keeps the school profile", loan.id)
        return
    for item in loan.items:
        hook(session, item.device, at_home=at_home)


def request_home_loan(
    session: Session,
    actor: User,
    *,
    asset_tags: Sequence[str],
    return_by: date,
    reason: str,
    base_url: str,
    now: datetime | None = None,
) -> Loan:
    """Ask the SBM or headteacher to let devices go home until `return_by`."""
    now = now or utcnow()
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("Say why the device needs to go home.")
    if not asset_tags:
        raise ValidationFailed("Name the device (its asset tag).")
    if len(asset_tags) > 5:
        raise ValidationFailed("At most five devices go home on one loan.")
    day = school_day(session, actor.school_id)
    today = day.local(now).date()
    if not today <= return_by <= today + timedelta(days=HOME_LOAN_MAX_DAYS):
        raise ValidationFailed("Choose a return date from today to three months ahead.")
    devices = _resolve_many(session, actor.school_id, asset_tags, base_url)
    for device in devices:
        if device.status not in LOANABLE:
            raise ValidationFailed(
                f"{device.asset_tag} is {device.status.label.lower()}, so it cannot go home."
            )
    loan = Loan(
        school_id=actor.school_id,
        kind=LoanKind.HOME,
        teacher_id=actor.id,
        class_label="Home loan",
        trolley_id=None,
        started_at=now,
        due_at=day.at(return_by, day.day_ends),
        reason=reason[:500],
        approval=HomeApproval.REQUESTED,
        requested_tags=[d.asset_tag for d in devices],
        # Not out until approved: a request is closed until then.
        closed_at=now,
    )
    session.add(loan)
    session.flush()
    record(
        session,
        actor=actor,
        action="loans.home_requested",
        school_id=actor.school_id,
        target_type="loan",
        target_id=loan.id,
        details={"asset_tags": loan.requested_tags, "return_by": return_by.isoformat()},
    )
    _notify(
        session,
        actor.school_id,
        roles=sorted(APPROVERS),
        kind="home_loan_request",
        title=f"{actor.name} asks to take {', '.join(loan.requested_tags)} home",
        body=f"Until {return_by:%A %d %B}: {reason}",
        link="/loans/home",
    )
    session.commit()
    return loan


def get_home_loan(session: Session, school_id: int, loan_id: int) -> Loan:
    loan = get_loan(session, school_id, loan_id)
    if loan.kind is not LoanKind.HOME:
        raise NotFound("No such home loan in your school.")
    return loan


def decide_home_loan(
    session: Session,
    actor: User,
    loan_id: int,
    *,
    approve: bool,
    note: str = "",
    now: datetime | None = None,
) -> Loan:
    """The SBM or headteacher (not the person asking) approves — devices go out — or declines."""
    now = now or utcnow()
    loan = get_home_loan(session, actor.school_id, loan_id)
    if actor.role not in APPROVERS:
        raise Forbidden("Only the school business manager or the headteacher approves home loans.")
    if loan.teacher_id == actor.id:
        raise Forbidden("Someone else must approve a home loan you asked for.")
    if loan.approval is not HomeApproval.REQUESTED:
        raise Conflict(f"This home loan is already {loan.approval.value if loan.approval else ''}.")
    note = " ".join(note.split())[:500]
    borrower = loan.teacher
    if approve:
        devices = session.scalars(
            select(Device)
            .where(Device.school_id == actor.school_id, Device.asset_tag.in_(loan.requested_tags))
            .order_by(Device.asset_tag)
        ).all()
        loan.closed_at = None
        refused = []
        for device in devices:
            try:
                _take_out_one(
                    session,
                    actor=actor,
                    holder=borrower,
                    device=device,
                    place=None,
                    loan=lambda: loan,
                    now=now,
                )
            except Conflict as exc:
                refused.append(exc.message)
        if refused:
            session.rollback()
            raise Conflict("This home loan cannot start yet: " + " ".join(refused))
        session.flush()
        session.refresh(loan)
        _home_loan_profile(session, loan, at_home=True)
    else:
        if not note:
            raise ValidationFailed("Say why; the person who asked is told.")
    loan.approval = HomeApproval.APPROVED if approve else HomeApproval.DECLINED
    loan.decided_by_id = actor.id
    loan.decided_at = now
    loan.decision_note = note or None
    loan.started_at = now if approve else loan.started_at
    record(
        session,
        actor=actor,
        action="loans.home_" + ("approved" if approve else "declined"),
        school_id=actor.school_id,
        target_type="loan",
        target_id=loan.id,
        details={"asset_tags": loan.requested_tags, "note": note},
        at=now,
    )
    day = school_day(session, actor.school_id)
    _notify(
        session,
        actor.school_id,
        users=[borrower],
        kind="home_loan_decision",
        title=f"Home loan of {', '.join(loan.requested_tags)} "
        + ("approved" if approve else "declined"),
        body=(
            f"Bring it back by {day.local(loan.due_at):%A %d %B}, and scan it into its trolley."
            if approve
            else f"{actor.name} declined: {note}"
        ),
        link="/loans/home",
    )
    session.commit()
    return loan


def home_loans(session: Session, user: User, *, everyone: bool, limit: int = 100) -> Sequence[Loan]:
    query = select(Loan).where(Loan.school_id == user.school_id, Loan.kind == LoanKind.HOME)
    if not everyone:
        query = query.where(Loan.teacher_id == user.id)
    return session.scalars(
        query.options(
            joinedload(Loan.teacher),
            joinedload(Loan.decided_by),
            selectinload(Loan.items).joinedload(LoanItem.device),
        )
        .order_by(Loan.started_at.desc(), Loan.id.desc())
        .limit(limit)
    ).all()


def is_on_home_loan(session: Session, device: Device) -> bool:
    """Whether the device is out on an approved home loan (it may be seen off-site)."""
    return (
        session.scalar(
            select(LoanItem.id)
            .join(Loan, Loan.id == LoanItem.loan_id)
            .where(
                LoanItem.device_id == device.id,
                LoanItem.state == ItemState.OUT,
                Loan.kind == LoanKind.HOME,
                Loan.approval == HomeApproval.APPROVED,
            )
        )
        is not None
    )


# --- reconciliation: the scheduler's side (P-TROLLEY-1, P-TROLLEY-2) ----------------------


@dataclass
class Reconciliation:
    """What one run of the reconciliation job did."""

    due_reminders: int = 0
    escalated: int = 0
    home_overdue: int = 0


def _lock(query: Any, session: Session, of: Any) -> Any:
    """Several workers on PostgreSQL: each row is chased by exactly one of them."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of)
    return query


def _last_scan_text(item: LoanItem, day: SchoolDay) -> str:
    place = item.from_location.name if item.from_location else "a trolley"
    seen = item.device.last_seen_at
    text = f"taken out of {place} at {day.local(item.out_at):%H:%M on %a %d %b}"
    if seen is not None:
        text += f"; the device last checked in at {day.local(seen):%H:%M on %a %d %b}"
    return text


def run_reconciliation(session: Session, *, now: datetime) -> Reconciliation:
    """Remind teachers at the due time, escalate at the day's end, chase overdue home loans."""
    report = Reconciliation()
    days: dict[int, SchoolDay] = {}

    def day_for(school_id: int) -> SchoolDay:
        if school_id not in days:
            days[school_id] = school_day(session, school_id)
        return days[school_id]

    # 0. A loan whose last two devices came back at the same instant may have missed closing.
    session.execute(
        update(Loan)
        .where(
            Loan.closed_at.is_(None),
            Loan.kind == LoanKind.LESSON,
            ~exists().where(LoanItem.loan_id == Loan.id, LoanItem.state == ItemState.OUT),
        )
        .values(closed_at=now)
        .execution_options(synchronize_session=False)
    )

    # 1. At the due time the teacher is told what is still out.
    due = session.scalars(
        _lock(
            select(Loan).where(
                Loan.closed_at.is_(None),
                Loan.due_at <= now,
                Loan.due_notified_at.is_(None),
                Loan.kind == LoanKind.LESSON,
            ),
            session,
            Loan,
        )
    ).all()
    for loan in due:
        out = [i for i in loan.items if i.state is ItemState.OUT]
        loan.due_notified_at = now
        if not out:
            continue
        day = day_for(loan.school_id)
        tags = ", ".join(i.device.asset_tag for i in out)
        trolley = loan.trolley.name if loan.trolley else "the trolley"
        _notify(
            session,
            loan.school_id,
            users=[loan.teacher],
            kind="loan_due",
            title=f"{len(out)} device{'s' if len(out) != 1 else ''} still out from {trolley}",
            body=f"Due back at {day.local(loan.due_at):%H:%M}: {tags}. "
            f"Scan them back into {trolley}.",
            link=f"/loans/{loan.id}",
        )
        report.due_reminders += 1

    # 2. At the end of the school day, whatever is not back goes to the computing lead and SBM.
    candidates = session.scalars(
        _lock(
            select(LoanItem)
            .join(Loan, Loan.id == LoanItem.loan_id)
            .where(
                LoanItem.state == ItemState.OUT,
                LoanItem.escalated_at.is_(None),
                Loan.kind == LoanKind.LESSON,
            )
            .order_by(LoanItem.school_id, LoanItem.out_at),
            session,
            LoanItem,
        )
    ).all()
    per_school: dict[int, list[LoanItem]] = {}
    for item in candidates:
        if item.out_at < day_for(item.school_id).last_day_end(now):
            per_school.setdefault(item.school_id, []).append(item)
    for school_id, items in per_school.items():
        day = day_for(school_id)
        lines = [
            f"{i.device.asset_tag}: last with {i.loan.teacher.name}"
            + (f" ({i.loan.class_label})" if i.loan.class_label else "")
            + f"; {_last_scan_text(i, day)}"
            for i in items
        ]
        _notify(
            session,
            school_id,
            roles=[Role.COMPUTING_LEAD, Role.SBM],
            kind="loans_not_back",
            title=f"{len(items)} device{'s' if len(items) != 1 else ''} not back in a trolley "
            "at the end of the day",
            body="\n".join(lines),
            link="/loans/out",
        )
        for item in items:
            item.escalated_at = now
            _event(
                session,
                item.device,
                now,
                kind="loan_overdue",
                summary=f"Not back at the end of the day; last with {item.loan.teacher.name}",
                actor=None,
            )
        report.escalated += len(items)

    # 3. Overdue home loans: the SBM, the headteacher and the borrower, once a day.
    home = session.scalars(
        _lock(
            select(Loan).where(
                Loan.closed_at.is_(None),
                Loan.kind == LoanKind.HOME,
                Loan.approval == HomeApproval.APPROVED,
                Loan.due_at < now,
            ),
            session,
            Loan,
        )
    ).all()
    for loan in home:
        day = day_for(loan.school_id)
        today = day.local(now).date()
        if loan.overdue_notified_on == today:
            continue
        out = [i.device.asset_tag for i in loan.items if i.state is ItemState.OUT]
        if not out:
            continue
        loan.overdue_notified_on = today
        title = (
            f"Home loan overdue: {', '.join(out)} with {loan.teacher.name} "
            f"(due {day.local(loan.due_at):%d %b})"
        )
        body = (
            f"{loan.teacher.name} took {', '.join(out)} home ({loan.reason}); it was due back "
            f"on {day.local(loan.due_at):%A %d %B}."
        )
        _notify(
            session,
            loan.school_id,
            roles=sorted(APPROVERS),
            kind="home_loan_overdue",
            title=title,
            body=body,
            link="/loans/home",
        )
        _notify(
            session,
            loan.school_id,
            users=[loan.teacher],
            kind="home_loan_overdue",
            title=title,
            body=body + " Please bring it back and scan it into its trolley.",
            link="/loans/home",
        )
        report.home_overdue += 1
    if report.due_reminders or report.escalated or report.home_overdue:
        log.info(
            "loans reconciliation: %d reminders, %d escalated, %d home loans overdue",
            report.due_reminders,
            report.escalated,
            report.home_overdue,
        )
    return report


# --- home cards ---------------------------------------------------------------------------


@dataclass
class HomeCard:
    mine: list[OutItem]
    trolleys: list[TrolleyRow] = field(default_factory=list)
    out: list[OutItem] = field(default_factory=list)
    wipes: WipeSummary | None = None
    damage_open: int = 0
    home_waiting: int = 0
    misplaced: list[LoanItem] = field(default_factory=list)

    @property
    def overdue(self) -> list[OutItem]:
        return [i for i in self.out if i.overdue]

    @property
    def overnight(self) -> list[OutItem]:
        return [i for i in self.out if i.overnight]


def home_card(session: Session, user: User, *, now: datetime | None = None) -> HomeCard:
    """The loans card: my devices out; for leads, every trolley, overdue, overnight, wipes."""
    now = now or utcnow()
    everyone = devices_out(session, user.school_id, now=now)
    card = HomeCard(mine=[i for i in everyone if i.teacher_id == user.id])
    if has_permission(user.role, Permission.REPORTS_READ):
        since = now - timedelta(days=7)
        card.trolleys = trolley_overview(session, user.school_id)
        card.out = everyone
        card.wipes = wipe_summary(session, user.school_id, since=since)
        card.damage_open = int(
            session.scalar(
                select(func.count())
                .select_from(DamageReport)
                .where(
                    DamageReport.school_id == user.school_id,
                    DamageReport.status == DamageStatus.OPEN,
                )
            )
            or 0
        )
        card.misplaced = misplaced(session, user.school_id, since=now - timedelta(days=14))
    if user.role in APPROVERS:
        card.home_waiting = int(
            session.scalar(
                select(func.count())
                .select_from(Loan)
                .where(
                    Loan.school_id == user.school_id,
                    Loan.kind == LoanKind.HOME,
                    Loan.approval == HomeApproval.REQUESTED,
                )
            )
            or 0
        )
    return card
