"""Termly audits, the half-termly photo check and random GDPR spot checks.

P-AUDIT-1: a termly audit starts every expected device as missing; scans move each to verified
(in its home), misplaced (somewhere else, recorded where) or found (it was lost or stolen). The
report compares with the register, with what devices report and with last term.
P-AUDIT-2: a condition checklist per device; one action raises repairs for the damaged.
P-PHOTO-2: a half-termly photo check records who checked, when, which devices and the counts
before and after a bulk wipe.
P-PHOTO-3: a random spot check draws its sample from a recorded seed, so the draw can be repeated.
P-TROLLEY-2: a device found away from its trolley is flagged as misplaced.

Scans and the close serialise on the audit's row (SELECT ... FOR UPDATE on PostgreSQL; SQLite
writers already take the database's write lock up front), so a scan either lands before the
sign-off and is in the report, or is refused with a clear message: never silently dropped.
Reports are GROUP BY queries over the audit's rows; nothing loads a device per row to count.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import logging
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    and_,
    any_,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload

from provisioning.errors import LabelCodeError
from provisioning.payload import parse_label_url
from server.activity.services import record
from server.audits.models import (
    CONDITION_CHECKS,
    Audit,
    AuditItem,
    AuditReminder,
    AuditState,
    AuditStatus,
    AuditUnknownTag,
    PhotoCheck,
    PhotoCheckItem,
    PhotoCheckStatus,
    SpotCheck,
    SpotCheckItem,
)
from server.auth.models import Role, User
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.devices.services import TRANSITIONS, add_event, change_status, get_device
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, Forbidden, NotFound, TrolleyError, ValidationFailed
from server.notifications import services as notifications
from server.schools.models import Location, School, Term
from server.schools.services import terms as school_terms

log = logging.getLogger(__name__)

# The audit is due by the last day of term; the computing lead hears two weeks before and on the
# day, and the headteacher too once it is overdue.
REMIND_BEFORE = timedelta(days=14)
# A photo check is asked for in the last week of each half term that has none yet.
PHOTO_REMIND_BEFORE = timedelta(days=7)
# "Online" for the cross-check: connected now, or heard from in the last day.
ONLINE_WINDOW = timedelta(hours=24)
# Found on the shelf but silent this long: its management is probably broken (summer shelf).
SILENT_AFTER = timedelta(days=30)
# Each list in a report shows this many devices; the CSV has them all.
LIST_LIMIT = 100
MAX_SCOPE_PLACES = 500
MAX_SAMPLE = 100
SEED_LIMIT = 2**63
# Timeline kinds that are a person scanning the device (loans and audits).
SCAN_KINDS = ("audit", "scan", "loan_out", "loan_return", "loan_transfer", "wrong_trolley")
UNUSABLE = frozenset({DeviceStatus.LOST, DeviceStatus.STOLEN})


# --- small helpers ------------------------------------------------------------------------------


def school_zone(school: School) -> ZoneInfo:
    try:
        return ZoneInfo(school.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/London")


def local_today(school: School, now: datetime) -> date:
    return now.astimezone(school_zone(school)).date()


def when(moment: datetime | None, school: School) -> str:
    """'14:05 on Tue 3 Mar 2026' in the school's own time."""
    if moment is None:
        return "never"
    at = moment.astimezone(school_zone(school))
    return f"{at:%H:%M} on {at:%a} {at.day} {at:%b %Y}"


def day_text(day: date) -> str:
    return f"{day:%a} {day.day} {day:%B %Y}"


def age_text(moment: datetime | None, now: datetime) -> str:
    """How old a report is, in words ('3 days ago', 'never reported')."""
    if moment is None:
        return "never reported"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 3600:
        minutes = seconds // 60
        return "just now" if minutes < 1 else f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    if seconds < 86400:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


def _clean(text: str | None, limit: int, what: str) -> str:
    value = " ".join((text or "").split())
    if len(value) > limit:
        raise ValidationFailed(f"Keep {what} to {limit} characters or fewer.")
    return value


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 device', '2 devices'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _call_losses(name: str) -> Any:
    """A function of the losses domain, if it is installed (domains arrive independently)."""
    try:
        return getattr(importlib.import_module("server.losses.services"), name)
    except (ImportError, AttributeError):
        return None


def place_paths(session: Session, school_id: int) -> dict[int, str]:
    """Every place's full path ('Main building › Year 4 classroom › Year 4 trolley'), one query."""
    rows = session.execute(
        select(Location.id, Location.parent_id, Location.name).where(
            Location.school_id == school_id
        )
    ).all()
    parent = {row.id: row.parent_id for row in rows}
    name = {row.id: row.name for row in rows}
    paths: dict[int, str] = {}

    def path(node: int) -> str:
        if node not in paths:
            up = parent.get(node)
            # A broken tree must not loop: a parent already being walked ends the walk.
            paths[node] = name[node]
            if up is not None and up in name:
                paths[node] = f"{path(up)} › {name[node]}"
        return paths[node]

    for node in name:
        path(node)
    return paths


# --- terms, half terms and when the audit is due ------------------------------------------------


@dataclass(frozen=True)
class HalfTerm:
    term: Term
    half: int
    starts_on: date
    ends_on: date

    @property
    def label(self) -> str:
        return f"{self.term.name}, {'first' if self.half == 1 else 'second'} half"

    @property
    def short(self) -> str:
        season = self.term.name.split(" ")[0]
        return f"{season[:3]} {self.half}"


def half_terms(terms: Sequence[Term]) -> list[HalfTerm]:
    halves = []
    for term in sorted(terms, key=lambda t: t.starts_on):
        halves.append(HalfTerm(term, 1, term.starts_on, term.half_term_starts_on - timedelta(1)))
        halves.append(HalfTerm(term, 2, term.half_term_ends_on + timedelta(1), term.ends_on))
    return halves


def half_term_on(terms: Sequence[Term], day: date) -> HalfTerm | None:
    """The half term under way on `day` (in a break, the one just finished)."""
    started = [h for h in half_terms(terms) if h.starts_on <= day]
    return started[-1] if started else None


def term_on(terms: Sequence[Term], day: date) -> Term | None:
    """The term under way on `day` (in the holidays, the one just finished)."""
    started = [t for t in terms if t.starts_on <= day]
    return max(started, key=lambda t: t.starts_on) if started else None


def audit_due_on(term: Term) -> date:
    """The termly audit is due by the last day of term."""
    return term.ends_on


@dataclass(frozen=True)
class TermAudit:
    """Where one term's audit stands."""

    term: Term
    due_on: date
    state: str  # done | in_progress | overdue | due_soon | not_due | missed
    done: Audit | None
    open: Audit | None
    today: date

    @property
    def days_left(self) -> int:
        return (self.due_on - self.today).days

    @property
    def text(self) -> str:
        due = day_text(self.due_on)
        if self.state == "done" and self.done is not None and self.done.closed_at:
            return f"Done: signed off on {day_text(self.done.closed_at.date())}."
        if self.state == "overdue":
            return f"Overdue: the {self.term.name} audit was due by {due}."
        if self.state == "in_progress":
            return f"Under way: due by {due}."
        if self.state == "due_soon":
            left = self.days_left
            return f"Due by {due} ({'today' if left == 0 else plural(left, 'day') + ' left'})."
        if self.state == "missed":
            return f"Not done: the {self.term.name} audit was due by {due}."
        return f"Due by {due}."


def term_audits(session: Session, school_id: int, today: date) -> list[TermAudit]:
    """Every term's audit status; only the latest term past its date counts as overdue."""
    terms = school_terms(session, school_id)
    audits = session.scalars(
        select(Audit).where(Audit.school_id == school_id).order_by(Audit.started_at)
    ).all()
    done: dict[int, Audit] = {}
    running: dict[int, Audit] = {}
    for audit in audits:
        if audit.is_open:
            running[audit.term_id] = audit
        elif audit.whole_school:
            done[audit.term_id] = audit
    past_due = [t for t in terms if audit_due_on(t) < today]
    latest_past = past_due[-1].id if past_due else None
    out = []
    for term in terms:
        due = audit_due_on(term)
        if term.id in done:
            state = "done"
        elif due < today:
            state = "overdue" if term.id == latest_past else "missed"
        elif term.id in running:
            state = "in_progress"
        elif due - REMIND_BEFORE <= today:
            state = "due_soon"
        else:
            state = "not_due"
        out.append(TermAudit(term, due, state, done.get(term.id), running.get(term.id), today))
    return out


def overdue_audit(session: Session, school_id: int, today: date) -> TermAudit | None:
    return next((t for t in term_audits(session, school_id, today) if t.state == "overdue"), None)


def _claim_reminder(
    session: Session, school_id: int, term_id: int, kind: str, now: datetime
) -> bool:
    """True for the one worker that records this reminder first (it then sends it)."""
    try:
        with session.begin_nested():
            session.add(AuditReminder(school_id=school_id, term_id=term_id, kind=kind, sent_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def send_reminders(session: Session, now: datetime) -> int:
    """The scheduler's job: audit reminders before and on the due date, overdue, photo checks."""
    sent = 0
    for school in session.scalars(select(School).order_by(School.id)).all():
        today = local_today(school, now)
        for status in term_audits(session, school.id, today):
            kind = None
            if status.state == "overdue":
                kind = "overdue"
            elif status.state in ("due_soon", "in_progress"):
                kind = "due" if today == status.due_on else "before"
            if kind is None or not _claim_reminder(session, school.id, status.term.id, kind, now):
                continue
            _remind(session, school, status, kind)
            sent += 1
        sent += _photo_reminder(session, school, today, now)
    return sent


def _remind(session: Session, school: School, status: TermAudit, kind: str) -> None:
    term, due = status.term.name, day_text(status.due_on)
    running = " An audit is under way; sign it off when it is finished." if status.open else ""
    if kind == "overdue":
        roles, title = [Role.COMPUTING_LEAD, Role.HEADTEACHER], f"The {term} audit is overdue"
        body = (
            f"The termly device audit for {term} was due by {due} and has not been signed off. "
            f"School policy asks the computing lead for a termly check of the equipment.{running}"
        )
    elif kind == "due":
        roles, title = [Role.COMPUTING_LEAD], f"The {term} audit is due today"
        body = f"The termly device audit for {term} is due today, {due}.{running}"
    else:
        roles, title = [Role.COMPUTING_LEAD], f"The {term} audit is due by {due}"
        body = (
            f"The termly device audit for {term} is due by {due}. Start it from the Audits page; "
            f"staff can help scan trolleys at the same time.{running}"
        )
    notifications.notify_roles(
        session,
        school_id=school.id,
        roles=roles,
        kind=f"audit.{kind}",
        title=title,
        body=body,
        link="/audits",
    )
    log.info("audit reminder %s for term %s in school %s", kind, status.term.id, school.id)


def _photo_reminder(session: Session, school: School, today: date, now: datetime) -> int:
    half = half_term_on(school_terms(session, school.id), today)
    if half is None or not (half.ends_on - PHOTO_REMIND_BEFORE <= today <= half.ends_on):
        return 0
    done = session.scalar(
        select(PhotoCheck.id).where(
            PhotoCheck.school_id == school.id,
            PhotoCheck.term_id == half.term.id,
            PhotoCheck.half == half.half,
            PhotoCheck.status == PhotoCheckStatus.COMPLETE,
        )
    )
    if done is not None or not _claim_reminder(
        session, school.id, half.term.id, f"photos_{half.half}", now
    ):
        return 0
    notifications.notify_roles(
        session,
        school_id=school.id,
        roles=[Role.COMPUTING_LEAD],
        kind="audit.photo_check",
        title=f"Photo check due: {half.label}",
        body=f"School policy asks for a check at least every half term that all photos have "
        f"been erased. This half term ends on {day_text(half.ends_on)} and has no photo check yet.",
        link="/photo-checks",
    )
    return 1


# --- starting an audit ---------------------------------------------------------------------------


def _term(session: Session, school: School, term_id: int | None, now: datetime) -> Term:
    terms = school_terms(session, school.id)
    if term_id is None:
        term = term_on(terms, local_today(school, now))
        if term is None:
            raise ValidationFailed(
                "No term has started yet. Ask your administrator to set this year's term dates."
            )
        return term
    term = next((t for t in terms if t.id == term_id), None)
    if term is None:
        raise NotFound("No such term in your school.")
    return term


def _with_inside(tree: Mapping[int, int | None], chosen: Sequence[int]) -> set[int]:
    """The chosen places and every place inside them, however deep."""
    children: dict[int | None, list[int]] = {}
    for node, up in tree.items():
        children.setdefault(up, []).append(node)
    found, frontier = set(chosen), list(chosen)
    while frontier:
        node = frontier.pop()
        for child in children.get(node, []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def get_audit(session: Session, school_id: int, audit_id: int) -> Audit:
    audit = session.scalar(
        select(Audit)
        .where(Audit.id == audit_id, Audit.school_id == school_id)
        .options(joinedload(Audit.term))
    )
    if audit is None:
        raise NotFound("No such audit in your school.")
    return audit


def open_audit(session: Session, school_id: int) -> Audit | None:
    return session.scalar(
        select(Audit).where(Audit.school_id == school_id, Audit.status == AuditStatus.OPEN)
    )


def list_audits(session: Session, school_id: int, limit: int = 100) -> Sequence[Audit]:
    return session.scalars(
        select(Audit)
        .where(Audit.school_id == school_id)
        .options(joinedload(Audit.term), joinedload(Audit.closed_by))
        .order_by(Audit.started_at.desc(), Audit.id.desc())
        .limit(limit)
    ).all()


def start_audit(
    session: Session,
    actor: User,
    *,
    term_id: int | None = None,
    location_ids: Sequence[int] = (),
    now: datetime | None = None,
) -> Audit:
    """Start an audit of the whole school or of chosen places: every expected device is missing."""
    now = now or utcnow()
    school_id = actor.school_id
    term = _term(session, actor.school, term_id, now)
    chosen = list(dict.fromkeys(location_ids))
    if len(chosen) > MAX_SCOPE_PLACES:
        raise ValidationFailed(f"Choose at most {MAX_SCOPE_PLACES} places, or audit the school.")
    where: list[ColumnElement[bool]] = [
        Device.school_id == school_id,
        Device.status != DeviceStatus.DISPOSED,
    ]
    if chosen:
        tree = dict(
            session.execute(
                select(Location.id, Location.parent_id).where(Location.school_id == school_id)
            ).all()
        )
        unknown = [i for i in chosen if i not in tree]
        if unknown:
            raise ValidationFailed(
                "Some of those places are not in your school.",
                details=[{"field": "location_ids", "message": f"No place {i}."} for i in unknown],
            )
        where.append(Device.home_location_id.in_(sorted(_with_inside(tree, chosen))))
    expected = session.scalar(select(func.count()).select_from(Device).where(*where)) or 0
    if not expected:
        raise ValidationFailed(
            "No devices live in those places, so there is nothing to audit."
            if chosen
            else "There are no devices in the register to audit yet."
        )
    running = open_audit(session, school_id)
    if running is not None:
        raise Conflict(
            f"An audit is already open (started {when(running.started_at, actor.school)}). "
            "Sign it off before starting another.",
            details={"audit_id": running.id},
        )
    audit = Audit(
        school_id=school_id,
        term_id=term.id,
        whole_school=not chosen,
        scope_location_ids=chosen,
        status=AuditStatus.OPEN,
        expected_count=expected,
        started_at=now,
        started_by_id=actor.id,
        summary={},
    )
    try:
        with session.begin_nested():
            session.add(audit)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("Someone has just started an audit. Open it from the Audits page.") from exc
    # One INSERT ... SELECT: a school of any size starts in one statement.
    session.execute(
        insert(AuditItem).from_select(
            [
                "school_id",
                "audit_id",
                "device_id",
                "asset_tag",
                "expected",
                "expected_location_id",
                "state",
                "scan_count",
                "damaged",
            ],
            select(
                literal(school_id),
                literal(audit.id),
                Device.id,
                Device.asset_tag,
                literal(True),
                Device.home_location_id,
                literal(AuditState.MISSING.value),
                literal(0),
                literal(False),
            ).where(*where),
        )
    )
    record(
        session,
        actor=actor,
        action="audit.started",
        school_id=school_id,
        target_type="audit",
        target_id=audit.id,
        details={
            "term": term.name,
            "whole_school": not chosen,
            "places": chosen,
            "devices": expected,
        },
        at=now,
    )
    session.commit()
    log.info("audit %s started in school %s: %d devices", audit.id, school_id, expected)
    return audit


# --- the lock every write to an audit takes ------------------------------------------------------


def _locked(session: Session, school_id: int, audit_id: int) -> Audit:
    """The audit's row, locked until this transaction ends: scans and the close take turns."""
    audit = session.scalar(
        select(Audit)
        .where(Audit.id == audit_id, Audit.school_id == school_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if audit is None:
        raise NotFound("No such audit in your school.")
    return audit


def _closed_message(session: Session, audit: Audit, what: str) -> str:
    closer = session.get(User, audit.closed_by_id) if audit.closed_by_id else None
    school = session.get(School, audit.school_id)
    assert school is not None
    by = f" by {closer.name}" if closer else ""
    return (
        f"This audit was signed off{by} at {when(audit.closed_at, school)} and is locked, "
        f"so {what} was not recorded. Start a new audit if the check must go on."
    )


def _locked_open(session: Session, school_id: int, audit_id: int, what: str) -> Audit:
    audit = _locked(session, school_id, audit_id)
    if not audit.is_open:
        raise Conflict(_closed_message(session, audit, what), code="audit_closed")
    return audit


# --- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceProgress:
    """How far the audit has got in one place: '24 / 30 — Year 4 trolley'."""

    location_id: int | None
    name: str
    found: int
    expected: int

    @property
    def text(self) -> str:
        return f"{self.found} / {self.expected} — {self.name}"

    @property
    def done(self) -> bool:
        return self.found >= self.expected


@dataclass(frozen=True)
class ScanResult:
    outcome: str  # verified | misplaced | found | unknown
    message: str
    tone: str  # ok | info | warn
    tag: str
    model: str | None
    location: str
    expected: bool
    repeat: bool
    place: PlaceProgress | None
    found: int
    total: int


def _place(session: Session, school_id: int, location_id: int) -> Location:
    place = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if place is None:
        raise ValidationFailed(
            "Choose where you are scanning: that place is not in your school.",
            code="bad_location",
            details=[{"field": "location_id", "message": "No such place."}],
        )
    return place


def _device_by_tag(session: Session, school_id: int, tag: str) -> Device | None:
    device = session.scalar(
        select(Device).where(Device.school_id == school_id, Device.asset_tag == tag)
    )
    if device is None and tag.upper() != tag:
        # Keyboard-wedge scanners sometimes arrive with caps lock the wrong way round.
        device = session.scalar(
            select(Device).where(Device.school_id == school_id, Device.asset_tag == tag.upper())
        )
    return device


def _belongs_elsewhere(session: Session, school_id: int, tag: str) -> bool:
    return (
        session.scalar(
            select(Device.id)
            .where(Device.asset_tag.in_({tag, tag.upper()}), Device.school_id != school_id)
            .limit(1)
        )
        is not None
    )


def _state_for(device: Device, place: Location) -> AuditState:
    if device.status in UNUSABLE:
        return AuditState.FOUND
    if device.home_location_id is None or device.home_location_id == place.id:
        return AuditState.VERIFIED
    return AuditState.MISPLACED


def _progress_rows(
    session: Session, audit_id: int, location_id: int | str | None = "all"
) -> list[PlaceProgress]:
    query = (
        select(
            AuditItem.expected_location_id,
            Location.name,
            func.count(),
            func.sum(case((AuditItem.state != AuditState.MISSING, 1), else_=0)),
        )
        .outerjoin(Location, Location.id == AuditItem.expected_location_id)
        .where(AuditItem.audit_id == audit_id, AuditItem.expected.is_(True))
        .group_by(AuditItem.expected_location_id, Location.name)
    )
    if location_id is None:
        query = query.where(AuditItem.expected_location_id.is_(None))
    elif isinstance(location_id, int):
        query = query.where(AuditItem.expected_location_id == location_id)
    rows = [
        PlaceProgress(loc, name or "No home set", int(found or 0), int(total))
        for loc, name, total, found in session.execute(query).all()
    ]
    return sorted(rows, key=lambda p: (p.location_id is None, p.name.lower()))


def _totals_found(session: Session, audit_id: int) -> tuple[int, int]:
    found, total = session.execute(
        select(
            func.sum(case((AuditItem.state != AuditState.MISSING, 1), else_=0)), func.count()
        ).where(AuditItem.audit_id == audit_id, AuditItem.expected.is_(True))
    ).one()
    return int(found or 0), int(total or 0)


def scan(
    session: Session,
    actor: User,
    audit_id: int,
    code: str,
    *,
    location_id: int,
    base_url: str,
    now: datetime | None = None,
) -> ScanResult:
    """Record one scanned label in an open audit (several staff may scan at once)."""
    now = now or utcnow()
    try:
        tag = parse_label_url(code, base_url)
    except LabelCodeError as exc:
        raise ValidationFailed(
            f"That is not one of your school's Trolley labels: {exc}. Nothing was recorded.",
            code="bad_code",
        ) from exc
    audit = _locked_open(session, actor.school_id, audit_id, f"your scan of {tag}")
    place = _place(session, actor.school_id, location_id)
    device = _device_by_tag(session, actor.school_id, tag)
    if device is None:
        if _belongs_elsewhere(session, actor.school_id, tag):
            raise Conflict(
                f"{tag} is registered to another school, not yours, so it was not recorded. "
                "Hand it to the school office to return.",
                code="other_school",
            )
        return _scan_unknown(session, actor, audit, tag, place, now)
    item = session.scalar(
        select(AuditItem).where(AuditItem.audit_id == audit.id, AuditItem.device_id == device.id)
    )
    if item is None:
        # Not expected (it lives outside the audit's places, or joined the register later).
        item = AuditItem(
            school_id=audit.school_id,
            audit_id=audit.id,
            device_id=device.id,
            asset_tag=device.asset_tag,
            expected=False,
            expected_location_id=device.home_location_id,
            state=AuditState.MISSING,
            scan_count=0,
            damaged=False,
        )
        session.add(item)
    previous = (item.scanned_location_id, item.scanned_at, item.scanned_by_id, item.scan_count)
    was_found = item.state is AuditState.FOUND
    state = _state_for(device, place)
    item.state = state
    item.scanned_location_id = place.id
    item.scanned_at = now
    item.first_scanned_at = item.first_scanned_at or now
    item.scanned_by_id = actor.id
    item.scan_count = (item.scan_count or 0) + 1
    device.current_location_id = place.id
    message, tone = _scan_words(session, actor, device, place, state, item.expected, previous)
    event = add_event(
        session,
        device,
        kind="audit",
        summary=f"Termly audit: scanned in {place.name} ({state.label.lower()})",
        actor=actor,
        details={"audit_id": audit.id, "state": state.value, "location_id": place.id},
    )
    event.at = now
    if state is AuditState.FOUND and not was_found:  # the loss's people hear once per audit
        tell = _call_losses("device_scanned")
        if tell is not None:
            tell(session, device, location=place, actor=actor, now=now)
    session.flush()
    home = _progress_rows(session, audit.id, item.expected_location_id) if item.expected else []
    found, total = _totals_found(session, audit.id)
    result = ScanResult(
        outcome=state.value,
        message=message,
        tone=tone,
        tag=device.asset_tag,
        model=device.model,
        location=place.name,
        expected=item.expected,
        repeat=previous[3] > 0,
        place=home[0] if home else None,
        found=found,
        total=total,
    )
    session.commit()
    return result


def _scan_words(
    session: Session,
    actor: User,
    device: Device,
    place: Location,
    state: AuditState,
    expected: bool,
    previous: tuple[int | None, datetime | None, int | None, int],
) -> tuple[str, str]:
    tag = device.asset_tag
    home = session.get(Location, device.home_location_id) if device.home_location_id else None
    if state is AuditState.FOUND:
        message = (
            f"{tag} was reported {device.status.value} and has been found in {place.name}. "
            "Whoever handles its loss report has been told."
        )
        tone = "warn"
    elif state is AuditState.MISPLACED:
        where = home.name if home else "somewhere else"
        message = f"{tag} is misplaced: it lives in {where}. Recorded as found in {place.name}."
        tone = "warn"
    else:
        message, tone = f"{tag} verified in {place.name}.", "ok"
    if device.status is DeviceStatus.DISPOSED:
        message += " It was disposed of and should have left the school: tell the SBM."
        tone = "warn"
    if not expected:
        message += " It was not expected in this audit, so it is listed separately."
    last_place, last_at, last_by, count = previous
    if count:
        was = session.get(Location, last_place) if last_place else None
        who = session.get(User, last_by) if last_by else None
        school = actor.school
        earlier = (
            f"Already scanned {when(last_at, school)}"
            + (f" in {was.name}" if was else "")
            + (f" by {who.name}" if who else "")
            + "; recorded once, "
        )
        if last_place == place.id:
            message = f"{earlier}nothing changed. {message}"
            tone = "info" if tone == "ok" else tone
        else:
            message = f"{earlier}the newest place counts. {message}"
    return message, tone


def _scan_unknown(
    session: Session, actor: User, audit: Audit, tag: str, place: Location, now: datetime
) -> ScanResult:
    row = session.scalar(
        select(AuditUnknownTag).where(
            AuditUnknownTag.audit_id == audit.id, AuditUnknownTag.tag == tag
        )
    )
    if row is None:
        row = AuditUnknownTag(
            school_id=audit.school_id,
            audit_id=audit.id,
            tag=tag,
            first_scanned_at=now,
            scan_count=0,
        )
        session.add(row)
    repeat = bool(row.scan_count)
    row.location_id = place.id
    row.scanned_at = now
    row.scanned_by_id = actor.id
    row.scan_count = (row.scan_count or 0) + 1
    session.flush()
    found, total = _totals_found(session, audit.id)
    result = ScanResult(
        outcome="unknown",
        message=(
            f"{tag} is not in your school's register. "
            + ("It is already on the list" if repeat else "It has been kept on the audit's list")
            + " of unknown labels for follow-up."
        ),
        tone="warn",
        tag=tag,
        model=None,
        location=place.name,
        expected=False,
        repeat=repeat,
        place=None,
        found=found,
        total=total,
    )
    session.commit()
    return result


def record_condition(
    session: Session,
    actor: User,
    audit_id: int,
    asset_tag: str,
    checks: Mapping[str, bool | None],
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> AuditItem:
    """The condition checklist for a scanned device (P-AUDIT-2): any 'no' marks it damaged."""
    now = now or utcnow()
    unknown = sorted(set(checks) - set(CONDITION_CHECKS))
    if unknown:
        raise ValidationFailed(
            f"Unknown checks: {', '.join(unknown)}. Use {', '.join(CONDITION_CHECKS)}.",
            details=[{"field": key, "message": "not a check"} for key in unknown],
        )
    given = {key: value for key, value in checks.items() if value is not None}
    if not given:
        raise ValidationFailed("Answer at least one of the condition checks.")
    text = _clean(note, 500, "the note")
    audit = _locked_open(session, actor.school_id, audit_id, f"the condition of {asset_tag}")
    device = get_device(session, actor.school_id, asset_tag)
    item = session.scalar(
        select(AuditItem).where(AuditItem.audit_id == audit.id, AuditItem.device_id == device.id)
    )
    if item is None or item.state is AuditState.MISSING:
        raise Conflict(
            f"Scan {device.asset_tag} first: it has not been found in this audit yet.",
            code="not_scanned",
        )
    was_damaged = item.damaged
    for key, value in given.items():
        setattr(item, key, bool(value))
    item.damaged = any(getattr(item, key) is False for key in CONDITION_CHECKS)
    item.condition_note = text or item.condition_note
    item.condition_at = now
    item.condition_by_id = actor.id
    if item.damaged:
        problems = ", ".join(item.problems)
        event = add_event(
            session,
            device,
            kind="audit",
            summary=f"Termly audit: damage noted ({problems})"
            + (f": {item.condition_note}" if item.condition_note else ""),
            actor=actor,
            details={"audit_id": audit.id, "problems": item.problems},
        )
        event.at = now
    elif was_damaged:
        event = add_event(
            session,
            device,
            kind="audit",
            summary="Termly audit: condition corrected, no damage",
            actor=actor,
            details={"audit_id": audit.id},
        )
        event.at = now
    session.commit()
    return item


# --- progress ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecentScan:
    tag: str
    state: AuditState
    place: str | None
    by: str | None
    at: datetime


@dataclass(frozen=True)
class Progress:
    audit: Audit
    places: list[PlaceProgress]
    found: int
    expected: int
    not_expected: int
    unknown: int
    recent: list[RecentScan]

    @property
    def percent(self) -> int:
        return int(self.found * 100 / self.expected) if self.expected else 100


def progress(session: Session, school_id: int, audit_id: int, *, recent: int = 10) -> Progress:
    """Live progress per place, for the scan page's polling and the audit page."""
    audit = get_audit(session, school_id, audit_id)
    places = _progress_rows(session, audit.id)
    found, total = _totals_found(session, audit.id)
    not_expected = (
        session.scalar(
            select(func.count()).where(
                AuditItem.audit_id == audit.id, AuditItem.expected.is_(False)
            )
        )
        or 0
    )
    unknown = session.scalar(select(func.count()).where(AuditUnknownTag.audit_id == audit.id)) or 0
    scanned_place = aliased(Location)
    rows = session.execute(
        select(
            Device.asset_tag, AuditItem.state, scanned_place.name, User.name, AuditItem.scanned_at
        )
        .join(Device, Device.id == AuditItem.device_id)
        .outerjoin(scanned_place, scanned_place.id == AuditItem.scanned_location_id)
        .outerjoin(User, User.id == AuditItem.scanned_by_id)
        .where(AuditItem.audit_id == audit.id, AuditItem.scanned_at.is_not(None))
        .order_by(AuditItem.scanned_at.desc(), AuditItem.id.desc())
        .limit(recent)
    ).all()
    return Progress(
        audit=audit,
        places=places,
        found=found,
        expected=total,
        not_expected=int(not_expected),
        unknown=int(unknown),
        recent=[
            RecentScan(tag, state, where, by, at)
            for tag, state, where, by, at in rows
            if at is not None
        ],
    )


# --- closing and the report -----------------------------------------------------------------------


def _snapshot(session: Session, audit: Audit, now: datetime) -> None:
    """Keep what the register and devices said at sign-off on the audit's rows (two UPDATEs)."""
    online_now = exists().where(
        DeviceIdentity.device_id == Device.id,
        DeviceIdentity.revoked_at.is_(None),
        DeviceIdentity.online.is_(True),
    )
    session.execute(
        update(AuditItem)
        .where(AuditItem.audit_id == audit.id, AuditItem.device_id == Device.id)
        .values(
            holder_id=Device.holder_id,
            last_seen_at=Device.last_seen_at,
            photo_count=Device.photo_count,
            photo_count_at=Device.photo_count_at,
            online=case(
                (or_(Device.last_seen_at >= now - ONLINE_WINDOW, online_now), True), else_=False
            ),
            silent=case((_silent_now(Device.last_seen_at, now), True), else_=False),
            holding_photos=case(
                (and_(AuditItem.state != AuditState.MISSING, Device.photo_count > 0), True),
                else_=False,
            ),
        )
        .execution_options(synchronize_session=False)
    )

    def latest(column: Any, *where: ColumnElement[bool]) -> Any:
        return (
            select(column)
            .where(DeviceEvent.device_id == AuditItem.device_id, *where)
            .order_by(DeviceEvent.at.desc(), DeviceEvent.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    # For the missing only: when and where someone last scanned it, and who took it out last.
    scans = DeviceEvent.kind.in_(SCAN_KINDS)
    session.execute(
        update(AuditItem)
        .where(AuditItem.audit_id == audit.id, AuditItem.state == AuditState.MISSING)
        .values(
            last_scan_at=latest(DeviceEvent.at, scans),
            last_scan_note=latest(DeviceEvent.summary, scans),
            holder_id=func.coalesce(
                AuditItem.holder_id, latest(DeviceEvent.actor_id, DeviceEvent.kind == "loan_out")
            ),
        )
        .execution_options(synchronize_session=False)
    )


def _previous_audit(session: Session, audit: Audit) -> Audit | None:
    """The last term's signed-off audit (the whole-school one if there were several)."""
    return session.scalar(
        select(Audit)
        .join(Term, Term.id == Audit.term_id)
        .where(
            Audit.school_id == audit.school_id,
            Audit.status == AuditStatus.CLOSED,
            Audit.id != audit.id,
            Term.starts_on < audit.term.starts_on,
        )
        .order_by(Term.starts_on.desc(), Audit.whole_school.desc(), Audit.closed_at.desc())
        .limit(1)
    )


def close_audit(
    session: Session, actor: User, audit_id: int, *, note: str = "", now: datetime | None = None
) -> Audit:
    """The computing lead signs the audit off: the report is fixed and scanning is locked."""
    now = now or utcnow()
    text = _clean(note, 1000, "the sign-off note")
    audit = _locked(session, actor.school_id, audit_id)
    if not audit.is_open:
        raise Conflict(_closed_message(session, audit, "nothing more"), code="audit_closed")
    _snapshot(session, audit, now)
    previous = _previous_audit(session, audit)
    audit.previous_audit_id = previous.id if previous else None
    if previous is not None:
        # Kept on the rows, so the comparison with last term reads like every other list.
        before = _BEFORE
        session.execute(
            update(AuditItem)
            .where(
                AuditItem.audit_id == audit.id,
                AuditItem.device_id.in_(
                    select(before.device_id).where(
                        before.audit_id == previous.id, before.state == AuditState.MISSING
                    )
                ),
            )
            .values(missing_last_term=True)
            .execution_options(synchronize_session=False)
        )
    audit.status = AuditStatus.CLOSED
    audit.closed_at = now
    audit.closed_by_id = actor.id
    audit.sign_off_note = text or None
    session.flush()
    totals, _places = _aggregate(session, audit, now, place_paths(session, audit.school_id))
    audit.summary = asdict(totals)
    record(
        session,
        actor=actor,
        action="audit.signed_off",
        school_id=audit.school_id,
        target_type="audit",
        target_id=audit.id,
        details={"term": audit.term.name, **audit.summary},
        at=now,
    )
    notifications.notify_roles(
        session,
        school_id=audit.school_id,
        roles=[Role.SBM, Role.HEADTEACHER],
        kind="audit.signed_off",
        title=f"The {audit.term.name} audit is signed off",
        body=f"{actor.name} signed off the termly device audit: {totals.scanned} of "
        f"{totals.expected} devices found, {totals.missing} missing, {totals.misplaced} "
        f"misplaced and {totals.damaged} damaged. The school business manager may countersign it.",
        link=f"/audits/{audit.id}",
    )
    session.commit()
    log.info("audit %s signed off by user %s", audit.id, actor.id)
    return audit


def countersign(
    session: Session, actor: User, audit_id: int, *, note: str = "", now: datetime | None = None
) -> Audit:
    """The school business manager's optional countersignature on a signed-off audit."""
    now = now or utcnow()
    text = _clean(note, 1000, "the note")
    audit = _locked(session, actor.school_id, audit_id)
    if actor.role is not Role.SBM:
        raise Forbidden("Only the school business manager countersigns an audit.")
    if audit.is_open:
        raise Conflict("The computing lead signs the audit off first; then you can countersign.")
    if audit.countersigned_at is not None:
        raise Conflict(
            f"This audit was already countersigned {when(audit.countersigned_at, actor.school)}."
        )
    audit.countersigned_at = now
    audit.countersigned_by_id = actor.id
    audit.countersign_note = text or None
    record(
        session,
        actor=actor,
        action="audit.countersigned",
        school_id=audit.school_id,
        target_type="audit",
        target_id=audit.id,
        details={"note": text},
        at=now,
    )
    session.commit()
    return audit


@dataclass(frozen=True)
class Totals:
    expected: int = 0
    verified: int = 0
    misplaced: int = 0
    found: int = 0
    missing: int = 0
    damaged: int = 0
    condition_checked: int = 0
    not_expected: int = 0
    unknown: int = 0
    where_is_it: int = 0
    silent: int = 0
    photos: int = 0

    @property
    def scanned(self) -> int:
        return self.verified + self.misplaced + self.found

    @property
    def percent(self) -> int:
        return int(self.scanned * 100 / self.expected) if self.expected else 100


@dataclass(frozen=True)
class PlaceRow:
    location_id: int | None
    name: str
    expected: int
    verified: int
    misplaced: int
    found: int
    missing: int
    damaged: int

    @property
    def scanned(self) -> int:
        return self.verified + self.misplaced + self.found

    @property
    def text(self) -> str:
        return f"{self.scanned} / {self.expected} — {self.name}"


@dataclass(frozen=True)
class _Facts:
    """Where the report reads devices' own facts: the rows' snapshot once signed off."""

    online: ColumnElement[bool]
    silent: ColumnElement[bool]
    photos_flag: ColumnElement[bool]
    last_seen: Any
    photos: Any
    photos_at: Any
    holder: Any
    live: bool


def _facts(audit: Audit, now: datetime) -> _Facts:
    if not audit.is_open:
        # Compared with true() rather than IS TRUE, so PostgreSQL can use the flag's index.
        return _Facts(
            online=AuditItem.online == true(),
            silent=AuditItem.silent == true(),
            photos_flag=AuditItem.holding_photos == true(),
            last_seen=AuditItem.last_seen_at,
            photos=AuditItem.photo_count,
            photos_at=AuditItem.photo_count_at,
            holder=AuditItem.holder_id,
            live=False,
        )
    online_now = exists().where(
        DeviceIdentity.device_id == AuditItem.device_id,
        DeviceIdentity.revoked_at.is_(None),
        DeviceIdentity.online.is_(True),
    )
    return _Facts(
        online=or_(Device.last_seen_at >= now - ONLINE_WINDOW, online_now),
        silent=_silent_now(Device.last_seen_at, now),
        photos_flag=and_(AuditItem.state != AuditState.MISSING, Device.photo_count > 0),
        last_seen=Device.last_seen_at,
        photos=Device.photo_count,
        photos_at=Device.photo_count_at,
        holder=Device.holder_id,
        live=True,
    )


def _silent_now(last_seen: Any, now: datetime) -> ColumnElement[bool]:
    """Found, yet not heard from for SILENT_AFTER (or never): its management may be broken."""
    return and_(
        AuditItem.state != AuditState.MISSING,
        or_(last_seen.is_(None), last_seen < now - SILENT_AFTER),
    )


def _aggregate(
    session: Session, audit: Audit, now: datetime, paths: Mapping[int, str]
) -> tuple[Totals, list[PlaceRow]]:
    """The report's counts: one GROUP BY of the audit's rows by place (the shape of a bare
    count), each result counted with FILTER so a place is one row, and counts of the flagged
    rows that their own indexes answer."""
    facts = _facts(audit, now)

    def count_if(*conditions: ColumnElement[bool]) -> Any:
        # FILTER is a plain counter bump where SUM(CASE) evaluates an expression per row.
        return func.count().filter(and_(*conditions))

    def count_where(condition: ColumnElement[bool]) -> int:
        query = (
            select(func.count())
            .select_from(AuditItem)
            .where(AuditItem.audit_id == audit.id, condition)
        )
        if facts.live:
            query = query.join(Device, Device.id == AuditItem.device_id)
        return int(session.scalar(query) or 0)

    state = AuditItem.state
    expected = AuditItem.expected == true()
    results = (AuditState.VERIFIED, AuditState.MISPLACED, AuditState.FOUND, AuditState.MISSING)
    query = (
        select(
            AuditItem.expected_location_id,
            count_if(expected),
            *(count_if(expected, state == result) for result in results),
            count_if(expected, AuditItem.damaged == true()),
            count_if(AuditItem.damaged == true()),
            count_if(AuditItem.condition_at.is_not(None)),
            count_if(expected, state == AuditState.MISSING, facts.online),
            count_if(AuditItem.expected == false()),
        )
        .where(AuditItem.audit_id == audit.id)
        .group_by(AuditItem.expected_location_id)
    )
    if facts.live:
        query = query.join(Device, Device.id == AuditItem.device_id)
    fetched = session.execute(query).all()
    # Each column summed in one pass (C loops), not a dictionary update per place.
    names: tuple[str, ...] = ("expected", "verified", "misplaced", "found", "missing")
    names += ("damaged_here", "damaged", "condition_checked", "where_is_it", "not_expected")
    columns = zip(*(row[1:] for row in fetched), strict=True) if fetched else [()] * len(names)
    sums = dict(zip(names, map(sum, columns), strict=True))
    del sums["damaged_here"]
    rows = [
        PlaceRow(loc, paths.get(loc, "No home set") if loc else "No home set", *counts[:6])
        for loc, *counts in fetched
        if counts[0]
    ]
    sums["silent"] = count_where(facts.silent)
    sums["photos"] = count_where(facts.photos_flag)
    unknown = session.scalar(select(func.count()).where(AuditUnknownTag.audit_id == audit.id)) or 0
    rows.sort(key=lambda p: (p.location_id is None, p.name.lower()))
    return Totals(unknown=int(unknown), **sums), rows


@dataclass(frozen=True)
class Line:
    """One device in one of the report's lists."""

    asset_tag: str
    model: str
    status: DeviceStatus
    state: AuditState
    expected: bool
    lives_in: str | None
    found_in: str | None
    scanned_at: datetime | None
    scanned_by: str | None
    holder: str | None
    last_seen_at: datetime | None
    online: bool
    photo_count: int | None
    photo_count_at: datetime | None
    last_scan_at: datetime | None
    last_scan_note: str | None
    problems: list[str]
    condition_note: str | None
    loss_report_id: int | None
    repair_raised_at: datetime | None


@dataclass(frozen=True)
class Listing:
    lines: list[Line]
    total: int

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.lines))


@dataclass(frozen=True)
class UnknownLine:
    tag: str
    place: str | None
    first_scanned_at: datetime
    scanned_at: datetime
    scanned_by: str | None
    scan_count: int


@dataclass(frozen=True)
class Report:
    audit: Audit
    live: bool
    generated_at: datetime
    totals: Totals
    places: list[PlaceRow]
    missing: Listing
    misplaced: Listing
    found: Listing
    damaged: Listing
    not_expected: Listing
    where_is_it: Listing
    silent: Listing
    photos: Listing
    unknown: list[UnknownLine]
    previous: Audit | None
    newly_missing: Listing
    recovered: Listing


DEVICE_COLUMNS = (Device.asset_tag, Device.model, Device.status)


# Made once: an alias adapts each column on first use, which costs more than the list's query.
_SCANNER, _HOLDER = aliased(User, name="scanner"), aliased(User, name="holder")
_BEFORE = aliased(AuditItem, name="last_term")


def _line_columns(facts: _Facts, *, device: bool = True) -> tuple[Any, ...]:
    """A list line's columns: the device's own three (or just its id), then the audit row's."""
    scanner, holder = _SCANNER, _HOLDER
    return (
        scanner,
        holder,
        (
            *(DEVICE_COLUMNS if device else (AuditItem.device_id,)),
            AuditItem.state,
            AuditItem.expected,
            AuditItem.expected_location_id,
            AuditItem.scanned_location_id,
            AuditItem.scanned_at,
            scanner.name,
            holder.name,
            facts.last_seen,
            case((facts.online, True), else_=False),
            facts.photos,
            facts.photos_at,
            AuditItem.last_scan_at,
            AuditItem.last_scan_note,
            *[getattr(AuditItem, key) for key in CONDITION_CHECKS],
            AuditItem.condition_note,
            AuditItem.loss_report_id,
            AuditItem.repair_raised_at,
        ),
    )


def _page(
    session: Session,
    audit: Audit,
    facts: _Facts,
    where: Sequence[ColumnElement[bool]],
    *,
    limit: int | None = LIST_LIMIT,
) -> list[Any]:
    """One list of the report, in tag order, as rows for `_lines`."""
    scanner, holder, columns = _line_columns(facts, device=facts.live)
    query = select(*columns).select_from(AuditItem)
    if facts.live:
        query = query.join(Device, Device.id == AuditItem.device_id)
    query = (
        query.outerjoin(scanner, scanner.id == AuditItem.scanned_by_id)
        .outerjoin(holder, holder.id == facts.holder)
        .where(AuditItem.audit_id == audit.id, *where)
        .order_by(AuditItem.asset_tag)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


def _lines(
    session: Session, facts: _Facts, paths: Mapping[int, str], pages: Sequence[list[Any]]
) -> list[list[Line]]:
    """Pages of rows as report lines. Once signed off the audit's rows hold every fact, so the
    pages come first and then their devices, all in one lookup by id: joining devices first
    would let PostgreSQL hash all 100,000 of them for a page of 100 (bench/bench_audit.py)."""
    if facts.live:
        return [[_line(row, paths) for row in page] for page in pages]
    ids = sorted({row[0] for page in pages for row in page})
    devices = {
        device_id: tuple(rest)
        for device_id, *rest in session.execute(
            select(Device.id, *DEVICE_COLUMNS).where(_one_of(session, Device.id, ids))
        )
    }
    return [[_line((*devices[row[0]], *row[1:]), paths) for row in page] for page in pages]


def _one_of(session: Session, column: Any, ids: list[int]) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL as one array parameter, which plans in a fraction of
    the time of hundreds of separate ones."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(ids, ARRAY(Integer)))  # type: ignore[no-any-return]
    condition: ColumnElement[bool] = column.in_(ids)
    return condition


def _line(row: Any, paths: Mapping[int, str]) -> Line:
    (tag, model, status, state, expected, lives, found_in, at, by, holder, seen, online) = row[:12]
    photos, photos_at, last_scan_at, last_scan_note = row[12:16]
    checks = row[16 : 16 + len(CONDITION_CHECKS)]
    note, loss_id, repair_at = row[16 + len(CONDITION_CHECKS) :]
    return Line(
        asset_tag=tag,
        model=model,
        status=status,
        state=state,
        expected=expected,
        lives_in=paths.get(lives) if lives else None,
        found_in=paths.get(found_in) if found_in else None,
        scanned_at=at,
        scanned_by=by,
        holder=holder,
        last_seen_at=seen,
        online=bool(online),
        photo_count=photos,
        photo_count_at=photos_at,
        last_scan_at=last_scan_at,
        last_scan_note=last_scan_note,
        problems=[
            bad
            for (_k, (_ok, bad)), v in zip(CONDITION_CHECKS.items(), checks, strict=True)
            if v is False
        ],
        condition_note=note,
        loss_report_id=loss_id,
        repair_raised_at=repair_at,
    )


def report(
    session: Session, school_id: int, audit_id: int, *, now: datetime | None = None
) -> Report:
    """The audit's report: live while it is open, as signed off once it is closed."""
    now = now or utcnow()
    audit = get_audit(session, school_id, audit_id)
    facts = _facts(audit, now)
    paths = place_paths(session, school_id)
    totals, places = _aggregate(session, audit, now, paths)
    state = AuditItem.state
    expected = AuditItem.expected == true()

    pages: dict[str, tuple[list[Any], int]] = {}

    def listing(name: str, total: int, *where: ColumnElement[bool]) -> None:
        pages[name] = (_page(session, audit, facts, where) if total else [], total)

    previous = (
        session.get(Audit, audit.previous_audit_id)
        if audit.previous_audit_id
        else (_previous_audit(session, audit) if audit.is_open else None)
    )
    if previous is not None and not facts.live:
        # Signed off: the rows say who was missing last term (set at sign-off).
        was_missing = AuditItem.missing_last_term
        new_where = [expected, state == AuditState.MISSING, was_missing.is_not(True)]
        back_where = [was_missing == true(), state != AuditState.MISSING]
        listing("newly_missing", _count_items(session, audit, new_where), *new_where)
        listing("recovered", _count_items(session, audit, back_where), *back_where)
    elif previous is not None:
        before = _BEFORE
        missing_before = select(before.device_id).where(
            before.audit_id == previous.id, before.state == AuditState.MISSING
        )
        new_where = [
            expected,
            state == AuditState.MISSING,
            AuditItem.device_id.not_in(missing_before),
        ]
        # Last term's missing rows are few: walk them once, each to this term's row by its
        # unique key, for the count and the page's ids together.
        recovered = sorted(
            session.execute(
                select(AuditItem.asset_tag, AuditItem.device_id)
                .select_from(before)
                .join(
                    AuditItem,
                    and_(
                        AuditItem.audit_id == audit.id,
                        AuditItem.device_id == before.device_id,
                    ),
                )
                .where(
                    before.audit_id == previous.id,
                    before.state == AuditState.MISSING,
                    state != AuditState.MISSING,
                )
            ).all()
        )
        page_ids = [device_id for _tag, device_id in recovered[:LIST_LIMIT]]
        listing("newly_missing", _count_items(session, audit, new_where), *new_where)
        listing("recovered", len(recovered), _one_of(session, AuditItem.device_id, page_ids))
    listing("missing", totals.missing, expected, state == AuditState.MISSING)
    listing("misplaced", totals.misplaced, expected, state == AuditState.MISPLACED)
    listing("found", totals.found, expected, state == AuditState.FOUND)
    listing("damaged", totals.damaged, AuditItem.damaged == true())
    listing("not_expected", totals.not_expected, AuditItem.expected == false())
    listing("where_is_it", totals.where_is_it, expected, state == AuditState.MISSING, facts.online)
    listing("silent", totals.silent, facts.silent)
    listing("photos", totals.photos, facts.photos_flag)
    unknown_rows = session.execute(
        select(AuditUnknownTag, User.name)
        .outerjoin(User, User.id == AuditUnknownTag.scanned_by_id)
        .where(AuditUnknownTag.audit_id == audit.id)
        .order_by(AuditUnknownTag.tag)
        .limit(LIST_LIMIT)
    ).all()
    names = list(pages)
    lines = _lines(session, facts, paths, [pages[name][0] for name in names])
    lists = {name: Listing(page, pages[name][1]) for name, page in zip(names, lines, strict=True)}
    empty = Listing([], 0)
    return Report(
        audit=audit,
        live=facts.live,
        generated_at=now,
        totals=totals,
        places=places,
        missing=lists["missing"],
        misplaced=lists["misplaced"],
        found=lists["found"],
        damaged=lists["damaged"],
        not_expected=lists["not_expected"],
        where_is_it=lists["where_is_it"],
        silent=lists["silent"],
        photos=lists["photos"],
        unknown=[
            UnknownLine(
                row.tag,
                paths.get(row.location_id) if row.location_id else None,
                row.first_scanned_at,
                row.scanned_at,
                by,
                row.scan_count,
            )
            for row, by in unknown_rows
        ],
        previous=previous,
        newly_missing=lists.get("newly_missing", empty),
        recovered=lists.get("recovered", empty),
    )


def _count_items(session: Session, audit: Audit, where: Sequence[ColumnElement[bool]]) -> int:
    query = select(func.count()).select_from(AuditItem)
    return int(session.scalar(query.where(AuditItem.audit_id == audit.id, *where)) or 0)


CSV_COLUMNS = [
    "asset_tag",
    "model",
    "register_status",
    "audit_result",
    "expected_in_audit",
    "lives_in",
    "found_in",
    "scanned_at",
    "scanned_by",
    *CONDITION_CHECKS,
    "damaged",
    "condition_note",
    "holder",
    "last_seen_at",
    "online_last_24_hours",
    "photo_count",
    "photo_count_reported_at",
    "last_scan_at",
    "last_scan",
    "loss_report",
    "repair_raised_at",
]


def report_csv(
    session: Session, school_id: int, audit_id: int, *, now: datetime | None = None
) -> str:
    """Every device in the audit, then every unknown label, as CSV for a spreadsheet."""
    now = now or utcnow()
    audit = get_audit(session, school_id, audit_id)
    school = session.get(School, school_id)
    assert school is not None
    zone = school_zone(school)
    facts = _facts(audit, now)
    paths = place_paths(session, school_id)

    def stamp(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    def yes_no(value: bool | None) -> str:
        return "" if value is None else ("yes" if value else "no")

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    scanner, holder, columns = _line_columns(facts)
    result = session.execute(
        select(*columns)
        .join(Device, Device.id == AuditItem.device_id)
        .outerjoin(scanner, scanner.id == AuditItem.scanned_by_id)
        .outerjoin(holder, holder.id == facts.holder)
        .where(AuditItem.audit_id == audit.id)
        .order_by(AuditItem.asset_tag)
        .execution_options(yield_per=2000)
    )
    for row in result:
        line = _line(row, paths)
        checks = row[16 : 16 + len(CONDITION_CHECKS)]
        writer.writerow(
            [
                _safe_cell(line.asset_tag),
                _safe_cell(line.model),
                line.status.value,
                line.state.value,
                yes_no(line.expected),
                _safe_cell(line.lives_in or ""),
                _safe_cell(line.found_in or ""),
                stamp(line.scanned_at),
                _safe_cell(line.scanned_by or ""),
                *[yes_no(v) for v in checks],
                yes_no(bool(line.problems)),
                _safe_cell(line.condition_note or ""),
                _safe_cell(line.holder or ""),
                stamp(line.last_seen_at),
                yes_no(line.online),
                "" if line.photo_count is None else line.photo_count,
                stamp(line.photo_count_at),
                stamp(line.last_scan_at),
                _safe_cell(line.last_scan_note or ""),
                line.loss_report_id or "",
                stamp(line.repair_raised_at),
            ]
        )
    unknown = session.execute(
        select(AuditUnknownTag, User.name)
        .outerjoin(User, User.id == AuditUnknownTag.scanned_by_id)
        .where(AuditUnknownTag.audit_id == audit.id)
        .order_by(AuditUnknownTag.tag)
    ).all()
    for label, by in unknown:
        blank = [""] * len(CSV_COLUMNS)
        blank[0], blank[3] = _safe_cell(label.tag), "unknown_label"
        blank[6] = _safe_cell(paths.get(label.location_id, "") if label.location_id else "")
        blank[7], blank[8] = stamp(label.scanned_at), _safe_cell(by or "")
        writer.writerow(blank)
    return out.getvalue()


def _safe_cell(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; a leading ' keeps them text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_filename(audit: Audit) -> str:
    name = "".join(ch if ch.isalnum() else "-" for ch in audit.term.name.lower()).strip("-")
    return f"audit-{audit.id}-{name}.csv"


# --- follow-ups: loss reports for the missing, repairs for the damaged -------------------------


@dataclass
class FollowUps:
    losses: list[tuple[str, int]]
    already_reported: list[tuple[str, int]]
    repairs: list[str]
    skipped: list[tuple[str, str]]

    @property
    def message(self) -> str:
        parts = []
        if self.losses:
            parts.append(f"{plural(len(self.losses), 'loss report')} raised")
        if self.already_reported:
            parts.append(f"{len(self.already_reported)} already reported")
        if self.repairs:
            parts.append(f"{plural(len(self.repairs), 'device')} sent for repair")
        if self.skipped:
            parts.append(f"{len(self.skipped)} left for you to deal with (see below)")
        return (", ".join(parts) or "Nothing needed following up") + "."


def report_missing_as_lost(
    session: Session, actor: User, audit: Audit, item: AuditItem, now: datetime
) -> tuple[str, int | str]:
    """Raise a loss report for one missing device through the losses domain, if installed.

    Returns ("raised" | "existing", loss id) or ("skipped", why). The losses service commits.
    """
    report_loss = _call_losses("report_loss")
    open_loss_for = _call_losses("open_loss_for")
    if report_loss is None or open_loss_for is None:
        return "skipped", "loss reports are not available in this Trolley yet"
    try:
        from server.losses.models import LossKind
    except ImportError:  # pragma: no cover - the services imported, so the models exist
        return "skipped", "loss reports are not available in this Trolley yet"
    device = item.device
    existing = open_loss_for(session, device)
    if existing is not None:
        return "existing", int(existing.id)
    school = actor.school
    lives = session.get(Location, item.expected_location_id) if item.expected_location_id else None
    seen = [t for t in (item.last_scan_at, item.last_seen_at) if t is not None and t <= now]
    last_seen_at = max(seen) if seen else audit.started_at
    where = (item.last_scan_note or (f"Lives in {lives.name}" if lives else "Not known"))[:200]
    try:
        loss = report_loss(
            session,
            actor,
            asset_tag=device.asset_tag,
            kind=LossKind.LOST,
            last_seen_at=last_seen_at,
            last_seen_where=where,
            circumstances=(
                f"Not found in the {audit.term.name} termly audit, signed off by "
                f"{audit.closed_by.name if audit.closed_by else 'the computing lead'} "
                f"{when(audit.closed_at, school)}."
                + (f" It lives in {lives.name}." if lives else "")
            ),
            now=now,
        )
    except Conflict as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        if "loss_id" in details:
            return "existing", int(details["loss_id"])
        session.rollback()
        return "skipped", exc.message
    except TrolleyError as exc:
        session.rollback()
        return "skipped", exc.message
    return "raised", int(loss.id)


def raise_follow_ups(
    session: Session, actor: User, audit_id: int, *, now: datetime | None = None
) -> FollowUps:
    """One action after sign-off: loss reports for the missing, repairs for the damaged."""
    now = now or utcnow()
    audit = _locked(session, actor.school_id, audit_id)
    if audit.is_open:
        raise Conflict("Sign the audit off first; then raise its follow-ups.")
    done = FollowUps([], [], [], [])
    damaged = session.scalars(
        select(AuditItem)
        .where(
            AuditItem.audit_id == audit.id,
            AuditItem.damaged.is_(True),
            AuditItem.repair_raised_at.is_(None),
        )
        .options(joinedload(AuditItem.device))
    ).all()
    for item in damaged:
        why = _send_for_repair(session, actor, audit, item, now)
        if why is None:
            done.repairs.append(item.device.asset_tag)
        else:
            done.skipped.append((item.device.asset_tag, why))
    if done.repairs:
        notifications.notify_roles(
            session,
            school_id=audit.school_id,
            roles=[Role.TECHNICIAN],
            kind="audit.repairs",
            title=f"{plural(len(done.repairs), 'device')} to repair after the termly audit",
            body=f"The {audit.term.name} audit found damage on: {', '.join(done.repairs)}. "
            "They are marked in repair; each device's history says what is wrong.",
            link=f"/audits/{audit.id}",
        )
    audit.follow_ups_at = now
    audit.follow_ups_by_id = actor.id
    record(
        session,
        actor=actor,
        action="audit.follow_ups",
        school_id=audit.school_id,
        target_type="audit",
        target_id=audit.id,
        details={"repairs": done.repairs},
        at=now,
    )
    session.commit()
    missing = session.scalars(
        select(AuditItem)
        .where(
            AuditItem.audit_id == audit.id,
            AuditItem.expected.is_(True),
            AuditItem.state == AuditState.MISSING,
            AuditItem.loss_report_id.is_(None),
        )
        .options(joinedload(AuditItem.device))
        .order_by(AuditItem.id)
    ).all()
    for item in missing:
        tag = item.device.asset_tag
        outcome, value = report_missing_as_lost(session, actor, audit, item, now)
        if outcome == "skipped":
            done.skipped.append((tag, str(value)))
            continue
        # Each loss report commits on its own; marking the row makes a second run skip it.
        fresh = session.get(AuditItem, item.id)
        assert fresh is not None
        fresh.loss_report_id = int(value)
        session.commit()
        (done.losses if outcome == "raised" else done.already_reported).append((tag, int(value)))
    log.info("audit %s follow-ups: %s", audit.id, done.message)
    return done


def _send_for_repair(
    session: Session, actor: User, audit: Audit, item: AuditItem, now: datetime
) -> str | None:
    """The device goes in for repair with a timeline entry; why not, if it cannot."""
    device = item.device
    problems = ", ".join(item.problems) or "damage"
    note = f": {item.condition_note}" if item.condition_note else ""
    if device.status is DeviceStatus.IN_REPAIR:
        item.repair_raised_at = now
        event = add_event(
            session,
            device,
            kind="audit",
            summary=f"Termly audit repair ticket ({problems}){note}; already in repair",
            actor=actor,
        )
        event.at = now
        return None
    if DeviceStatus.IN_REPAIR not in TRANSITIONS[device.status]:
        return f"it is {device.status.label.lower()}, so it cannot go in for repair"
    change_status(
        session,
        actor,
        device,
        DeviceStatus.IN_REPAIR,
        f"Termly audit ({audit.term.name}) found {problems}{note}",
        commit=False,
    )
    item.repair_raised_at = now
    return None


# --- reading for pages ---------------------------------------------------------------------------


def device_history(
    session: Session, device: Device, limit: int = 3
) -> list[tuple[Audit, AuditItem]]:
    """The device's last few audit results, for its page."""
    rows = session.execute(
        select(Audit, AuditItem)
        .join(AuditItem, AuditItem.audit_id == Audit.id)
        .where(AuditItem.device_id == device.id, Audit.school_id == device.school_id)
        .options(joinedload(Audit.term), joinedload(AuditItem.scanned_location))
        .order_by(Audit.started_at.desc())
        .limit(limit)
    ).all()
    return [(audit, item) for audit, item in rows]


@dataclass(frozen=True)
class HomeCard:
    today: date
    current: TermAudit | None
    overdue: TermAudit | None
    running: Audit | None
    found: int
    expected: int
    last_closed: Audit | None
    awaiting_countersign: Audit | None
    half: HalfTerm | None
    photo_check_done: PhotoCheck | None
    photo_check_open: PhotoCheck | None


def home_card(session: Session, school: School, now: datetime | None = None) -> HomeCard:
    """What each role's home page shows about audits and photo checks."""
    now = now or utcnow()
    today = local_today(school, now)
    statuses = term_audits(session, school.id, today)
    terms = [s.term for s in statuses]
    current_term = term_on(terms, today)
    current = next((s for s in statuses if current_term and s.term.id == current_term.id), None)
    running = open_audit(session, school.id)
    found, expected = _totals_found(session, running.id) if running else (0, 0)
    last_closed = session.scalar(
        select(Audit)
        .where(Audit.school_id == school.id, Audit.status == AuditStatus.CLOSED)
        .options(joinedload(Audit.term))
        .order_by(Audit.closed_at.desc())
        .limit(1)
    )
    half = half_term_on(terms, today)
    checks = (
        session.scalars(
            select(PhotoCheck)
            .where(
                PhotoCheck.school_id == school.id,
                PhotoCheck.term_id == half.term.id,
                PhotoCheck.half == half.half,
            )
            .order_by(PhotoCheck.started_at.desc())
        ).all()
        if half
        else []
    )
    return HomeCard(
        today=today,
        current=current,
        overdue=next((s for s in statuses if s.state == "overdue"), None),
        running=running,
        found=found,
        expected=expected,
        last_closed=last_closed,
        awaiting_countersign=(
            last_closed if last_closed and last_closed.countersigned_at is None else None
        ),
        half=half,
        photo_check_done=next((c for c in checks if c.status is PhotoCheckStatus.COMPLETE), None),
        photo_check_open=next((c for c in checks if c.status is PhotoCheckStatus.OPEN), None),
    )


@dataclass(frozen=True)
class RegisterPicture:
    """Devices in the register by status, overall and in the places with the most devices."""

    statuses: list[tuple[DeviceStatus, int]]
    places: list[tuple[str, list[int], int]]  # name, a count per status in STATUS_ORDER, total
    more_places: int


STATUS_ORDER = (
    DeviceStatus.IN_SERVICE,
    DeviceStatus.IN_STOCK,
    DeviceStatus.IN_REPAIR,
    DeviceStatus.LOST,
    DeviceStatus.STOLEN,
)


def register_picture(session: Session, school_id: int, *, places: int = 15) -> RegisterPicture:
    """One GROUP BY of the live register by home and status, for the chart."""
    rows = session.execute(
        select(Device.home_location_id, Device.status, func.count())
        .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
        .group_by(Device.home_location_id, Device.status)
    ).all()
    column = {status: n for n, status in enumerate(STATUS_ORDER)}
    totals = [0] * len(STATUS_ORDER)
    per_place: dict[int | None, list[int]] = {}
    for home, status, n in rows:
        totals[column[status]] += n
        per_place.setdefault(home, [0] * len(STATUS_ORDER))[column[status]] += n
    names = place_paths(session, school_id)
    biggest = sorted(per_place.items(), key=lambda item: (-sum(item[1]), item[0] or 0))
    return RegisterPicture(
        statuses=list(zip(STATUS_ORDER, totals, strict=True)),
        places=[
            (names.get(home, "No home set").split(" › ")[-1] if home else "No home set", c, sum(c))
            for home, c in biggest[:places]
        ],
        more_places=max(0, len(biggest) - places),
    )


# --- the half-termly photo check (P-PHOTO-2) ------------------------------------------------------


@dataclass(frozen=True)
class HoldingLine:
    asset_tag: str
    model: str
    lives_in: str | None
    photo_count: int
    reported_at: datetime | None
    age: str
    enrolled: bool


@dataclass(frozen=True)
class PhotoPicture:
    """Devices in the register by what they last said about photos."""

    total: int
    clear: int
    holding: int
    never_reported: int
    lines: list[HoldingLine]


def _enrolled(device_id: Any) -> Any:
    return exists().where(
        DeviceIdentity.device_id == device_id, DeviceIdentity.revoked_at.is_(None)
    )


def photo_picture(
    session: Session, school_id: int, *, now: datetime | None = None, limit: int = LIST_LIMIT
) -> PhotoPicture:
    """Which devices still hold photos now, with how old each report is."""
    now = now or utcnow()
    live = [Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED]
    total, holding, never = session.execute(
        select(
            func.count(),
            func.sum(case((Device.photo_count > 0, 1), else_=0)),
            func.sum(case((Device.photo_count.is_(None), 1), else_=0)),
        ).where(*live)
    ).one()
    paths = place_paths(session, school_id)
    rows = session.execute(
        select(
            Device.asset_tag,
            Device.model,
            Device.home_location_id,
            Device.photo_count,
            Device.photo_count_at,
            _enrolled(Device.id),
        )
        .where(*live, Device.photo_count > 0)
        .order_by(Device.photo_count_at, Device.asset_tag)
        .limit(limit)
    ).all()
    total, holding, never = int(total or 0), int(holding or 0), int(never or 0)
    return PhotoPicture(
        total=total,
        clear=total - holding - never,
        holding=holding,
        never_reported=never,
        lines=[
            HoldingLine(
                tag,
                model,
                paths.get(home) if home else None,
                int(count),
                at,
                age_text(at, now),
                bool(enrolled),
            )
            for tag, model, home, count, at, enrolled in rows
        ],
    )


def _current_half(session: Session, school: School, now: datetime) -> HalfTerm:
    half = half_term_on(school_terms(session, school.id), local_today(school, now))
    if half is None:
        raise ValidationFailed(
            "No term has started yet. Ask your administrator to set this year's term dates."
        )
    return half


def get_photo_check(session: Session, school_id: int, check_id: int) -> PhotoCheck:
    check = session.scalar(
        select(PhotoCheck)
        .where(PhotoCheck.id == check_id, PhotoCheck.school_id == school_id)
        .options(joinedload(PhotoCheck.term))
    )
    if check is None:
        raise NotFound("No such photo check in your school.")
    return check


def list_photo_checks(session: Session, school_id: int, limit: int = 50) -> Sequence[PhotoCheck]:
    return session.scalars(
        select(PhotoCheck)
        .where(PhotoCheck.school_id == school_id)
        .options(joinedload(PhotoCheck.term), joinedload(PhotoCheck.started_by))
        .order_by(PhotoCheck.started_at.desc(), PhotoCheck.id.desc())
        .limit(limit)
    ).all()


def start_photo_check(session: Session, actor: User, *, now: datetime | None = None) -> PhotoCheck:
    """Record which devices hold photos now, for this half term's check."""
    now = now or utcnow()
    half = _current_half(session, actor.school, now)
    school_id = actor.school_id
    running = session.scalar(
        select(PhotoCheck.id).where(
            PhotoCheck.school_id == school_id, PhotoCheck.status == PhotoCheckStatus.OPEN
        )
    )
    if running is not None:
        raise Conflict(
            "A photo check is already open. Complete it before starting another.",
            details={"check_id": running},
        )
    live = [Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED]
    total, never = session.execute(
        select(func.count(), func.sum(case((Device.photo_count.is_(None), 1), else_=0))).where(
            *live
        )
    ).one()
    check = PhotoCheck(
        school_id=school_id,
        term_id=half.term.id,
        half=half.half,
        status=PhotoCheckStatus.OPEN,
        started_at=now,
        started_by_id=actor.id,
        devices_total=int(total or 0),
        never_reported=int(never or 0),
    )
    try:
        with session.begin_nested():
            session.add(check)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("Someone has just started a photo check; open it from the list.") from exc
    session.execute(
        insert(PhotoCheckItem).from_select(
            ["school_id", "check_id", "device_id", "photos_before", "reported_at", "enrolled"],
            select(
                literal(school_id),
                literal(check.id),
                Device.id,
                Device.photo_count,
                Device.photo_count_at,
                _enrolled(Device.id),
            ).where(*live, Device.photo_count > 0),
        )
    )
    holding, photos = session.execute(
        select(func.count(), func.coalesce(func.sum(PhotoCheckItem.photos_before), 0)).where(
            PhotoCheckItem.check_id == check.id
        )
    ).one()
    check.holding_before, check.photos_before = int(holding), int(photos)
    record(
        session,
        actor=actor,
        action="photo_check.started",
        school_id=school_id,
        target_type="photo_check",
        target_id=check.id,
        details={
            "half_term": half.label,
            "devices": check.devices_total,
            "holding_photos": check.holding_before,
            "photos": check.photos_before,
            "never_reported": check.never_reported,
        },
        at=now,
    )
    session.commit()
    return check


def _open_check(session: Session, school_id: int, check_id: int) -> PhotoCheck:
    check = session.scalar(
        select(PhotoCheck)
        .where(PhotoCheck.id == check_id, PhotoCheck.school_id == school_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if check is None:
        raise NotFound("No such photo check in your school.")
    if check.status is not PhotoCheckStatus.OPEN:
        raise Conflict("This photo check is complete and kept as evidence; start a new one.")
    return check


@dataclass(frozen=True)
class WipeOutcome:
    sent: int
    needs_approval: bool
    by_hand: list[str]

    @property
    def message(self) -> str:
        parts = []
        if self.sent:
            parts.append(
                f"A photo wipe was asked for on {plural(self.sent, 'device')}"
                + (
                    "; it waits for a second person to approve it on the Commands page"
                    if self.needs_approval
                    else ""
                )
            )
        if self.by_hand:
            parts.append(
                f"{plural(len(self.by_hand), 'device is', 'devices are')} not enrolled, so wipe "
                f"{'it' if len(self.by_hand) == 1 else 'them'} by hand: {', '.join(self.by_hand)}"
            )
        return ". ".join(parts) + "." if parts else "Nothing to wipe."


def wipe_photo_check(
    session: Session, actor: User, check_id: int, *, now: datetime | None = None
) -> WipeOutcome:
    """Ask every enrolled device in the check to wipe its photos (approval rules apply)."""
    from server.commands import services as commands

    now = now or utcnow()
    check = _open_check(session, actor.school_id, check_id)
    items = session.execute(
        select(PhotoCheckItem, Device)
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .where(PhotoCheckItem.check_id == check.id, PhotoCheckItem.photos_after.is_(None))
        .order_by(Device.asset_tag)
    ).all()
    enrolled = set(
        session.scalars(
            select(DeviceIdentity.device_id).where(
                DeviceIdentity.device_id.in_([d.id for _i, d in items]),
                DeviceIdentity.revoked_at.is_(None),
            )
        )
    )
    to_wipe = [
        (item, device)
        for item, device in items
        if device.id in enrolled and item.command_id is None and device.status not in UNUSABLE
    ]
    by_hand = [device.asset_tag for item, device in items if device.id not in enrolled]
    if not to_wipe and not by_hand:
        raise ValidationFailed("Every device in this check already has a wipe asked for.")
    issued: list[Command] = []
    if to_wipe:
        issued = commands.issue(
            session,
            actor,
            [device for _item, device in to_wipe],
            "wipe_photos",
            {},
            reason=f"Half-termly photo check ({check.term.name}, half {check.half})",
            now=now,
            commit=False,
        )
        for (item, _device), command in zip(to_wipe, issued, strict=True):
            item.command_id = command.id
            item.enrolled = True
        check.wipe_requested_at = now
        check.wipe_requested_by_id = actor.id
    session.commit()
    return WipeOutcome(
        sent=len(issued),
        needs_approval=bool(issued) and issued[0].status is CommandStatus.PENDING_APPROVAL,
        by_hand=by_hand,
    )


def mark_wiped_by_hand(
    session: Session,
    actor: User,
    check_id: int,
    asset_tag: str,
    *,
    photos_left: int = 0,
    now: datetime | None = None,
) -> PhotoCheckItem:
    """Someone deleted the photos on the device itself and counted what was left."""
    now = now or utcnow()
    if photos_left < 0:
        raise ValidationFailed("The number of photos left cannot be negative.")
    check = _open_check(session, actor.school_id, check_id)
    device = get_device(session, actor.school_id, asset_tag)
    item = session.scalar(
        select(PhotoCheckItem).where(
            PhotoCheckItem.check_id == check.id, PhotoCheckItem.device_id == device.id
        )
    )
    if item is None:
        raise NotFound(f"{device.asset_tag} is not in this photo check.")
    item.photos_after = photos_left
    item.after_at = now
    item.by_hand_by_id = actor.id
    event = add_event(
        session,
        device,
        kind="photo_check",
        summary=f"Photo check: photos deleted by hand, {photos_left} left",
        actor=actor,
        details={"photo_check_id": check.id},
    )
    event.at = now
    session.commit()
    return item


def complete_photo_check(
    session: Session, actor: User, check_id: int, *, note: str = "", now: datetime | None = None
) -> PhotoCheck:
    """Record the counts after: what each device reported since the check started."""
    now = now or utcnow()
    text = _clean(note, 1000, "the note")
    check = _open_check(session, actor.school_id, check_id)
    session.execute(
        update(PhotoCheckItem)
        .where(
            PhotoCheckItem.check_id == check.id,
            PhotoCheckItem.photos_after.is_(None),
            PhotoCheckItem.device_id == Device.id,
            Device.photo_count_at >= check.started_at,
            Device.photo_count.is_not(None),
        )
        .values(photos_after=Device.photo_count, after_at=Device.photo_count_at)
        .execution_options(synchronize_session=False)
    )
    cleared, holding, unconfirmed, photos = session.execute(
        select(
            func.sum(case((PhotoCheckItem.photos_after == 0, 1), else_=0)),
            func.sum(case((PhotoCheckItem.photos_after > 0, 1), else_=0)),
            func.sum(case((PhotoCheckItem.photos_after.is_(None), 1), else_=0)),
            func.coalesce(func.sum(PhotoCheckItem.photos_after), 0),
        ).where(PhotoCheckItem.check_id == check.id)
    ).one()
    check.cleared, check.still_holding = int(cleared or 0), int(holding or 0)
    check.unconfirmed, check.photos_after = int(unconfirmed or 0), int(photos or 0)
    check.status = PhotoCheckStatus.COMPLETE
    check.completed_at = now
    check.completed_by_id = actor.id
    check.note = text or None
    record(
        session,
        actor=actor,
        action="photo_check.completed",
        school_id=check.school_id,
        target_type="photo_check",
        target_id=check.id,
        details={
            "holding_before": check.holding_before,
            "photos_before": check.photos_before,
            "cleared": check.cleared,
            "still_holding": check.still_holding,
            "unconfirmed": check.unconfirmed,
            "photos_after": check.photos_after,
            "note": text,
        },
        at=now,
    )
    session.commit()
    return check


@dataclass(frozen=True)
class CheckLine:
    asset_tag: str
    model: str
    photos_before: int
    reported_at: datetime | None
    enrolled: bool
    command_status: CommandStatus | None
    photos_after: int | None
    after_at: datetime | None
    by_hand_by: str | None


def photo_check_lines(
    session: Session, check: PhotoCheck, limit: int = LIST_LIMIT
) -> list[CheckLine]:
    rows = session.execute(
        select(PhotoCheckItem, Device.asset_tag, Device.model, Command.status, User.name)
        .join(Device, Device.id == PhotoCheckItem.device_id)
        .outerjoin(Command, Command.id == PhotoCheckItem.command_id)
        .outerjoin(User, User.id == PhotoCheckItem.by_hand_by_id)
        .where(PhotoCheckItem.check_id == check.id)
        .order_by(Device.asset_tag)
        .limit(limit)
    ).all()
    return [
        CheckLine(
            tag,
            model,
            item.photos_before,
            item.reported_at,
            item.enrolled,
            status,
            item.photos_after,
            item.after_at,
            by,
        )
        for item, tag, model, status, by in rows
    ]


@dataclass(frozen=True)
class HalfTermCompliance:
    half: HalfTerm
    check: PhotoCheck | None

    @property
    def checked(self) -> bool:
        return self.check is not None


def photo_compliance(
    session: Session, school_id: int, today: date, *, halves: int = 6
) -> list[HalfTermCompliance]:
    """The last few half terms, each with its completed photo check (or none)."""
    started = [h for h in half_terms(school_terms(session, school_id)) if h.starts_on <= today]
    recent = started[-halves:]
    checks = session.scalars(
        select(PhotoCheck)
        .where(
            PhotoCheck.school_id == school_id,
            PhotoCheck.status == PhotoCheckStatus.COMPLETE,
            PhotoCheck.term_id.in_({h.term.id for h in recent}),
        )
        .order_by(PhotoCheck.completed_at)
    ).all()
    latest = {(c.term_id, c.half): c for c in checks}
    return [HalfTermCompliance(h, latest.get((h.term.id, h.half))) for h in recent]


# --- random GDPR spot checks (P-PHOTO-3) ----------------------------------------------------------


def draw_sample(population: Sequence[int], size: int, seed: int) -> list[int]:
    """The draw itself: the same seed and population always give the same devices, in order."""
    return random.Random(seed).sample(sorted(population), size)


def population_fingerprint(population: Sequence[int]) -> str:
    return hashlib.sha256(",".join(str(i) for i in sorted(population)).encode()).hexdigest()


def get_spot_check(session: Session, school_id: int, check_id: int) -> SpotCheck:
    check = session.scalar(
        select(SpotCheck).where(SpotCheck.id == check_id, SpotCheck.school_id == school_id)
    )
    if check is None:
        raise NotFound("No such spot check in your school.")
    return check


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
    """Who answers for the device's photos: its holder, whoever last took it out, the trolley's
    usual teacher, or else the computing lead."""

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
    """The teacher who took the device's trolley out most this term (if loans are installed)."""
    if device.home_location_id is None:
        return None
    try:
        from server.loans.models import Loan
    except ImportError:
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
