"""The audit's report: its counts by place and its lists of devices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    and_,
    any_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from server.audits.models import (
    CONDITION_CHECKS,
    Audit,
    AuditItem,
    AuditState,
    AuditStatus,
    AuditUnknownTag,
)
from server.audits.pages import Line, Listing, PlaceRow, Report, Totals, UnknownLine
from server.audits.services.common import LIST_LIMIT, place_paths
from server.audits.services.starting import get_audit
from server.auth.models import User
from server.db import utcnow
from server.devices.models import Device
from server.devices.services import known_photo_count, known_photo_count_at
from server.enrolment.models import DeviceIdentity
from server.schools.models import Term

# Reports are GROUP BY queries over the audit's rows; nothing loads a device per row to count.

# "Online" for the cross-check: connected now, or heard from in the last day.
ONLINE_WINDOW = timedelta(hours=24)
# Found on the shelf but silent this long: its management is probably broken (summer shelf).
SILENT_AFTER = timedelta(days=30)


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
    return _Facts(
        online=_online_now(AuditItem.device_id, now),
        silent=_silent_now(Device.last_seen_at, now),
        photos_flag=_holding_photos(),
        last_seen=Device.last_seen_at,
        photos=known_photo_count(),
        photos_at=known_photo_count_at(),
        holder=Device.holder_id,
        live=True,
    )


def _online_now(device_id: Any, now: datetime) -> ColumnElement[bool]:
    """Connected now, or heard from within ONLINE_WINDOW, by the device's own row."""
    connected = exists().where(
        DeviceIdentity.device_id == device_id,
        DeviceIdentity.revoked_at.is_(None),
        DeviceIdentity.online.is_(True),
    )
    return or_(Device.last_seen_at >= now - ONLINE_WINDOW, connected)


def _holding_photos() -> ColumnElement[bool]:
    """Found, and its last report (since its storage was last erased) counted photos on it."""
    return and_(AuditItem.state != AuditState.MISSING, known_photo_count() > 0)


def _silent_now(last_seen: Any, now: datetime) -> ColumnElement[bool]:
    """Found, yet not heard from for SILENT_AFTER (or never): its management may be broken."""
    return and_(
        AuditItem.state != AuditState.MISSING,
        or_(last_seen.is_(None), last_seen < now - SILENT_AFTER),
    )


def _aggregate(
    session: Session, audit: Audit, now: datetime, paths: Mapping[int, str]
) -> tuple[Totals, list[PlaceRow]]:
    """The report's counts by place, with the totals of the whole audit."""
    # One GROUP BY of the audit's rows by place (the shape of a bare count), each result counted
    # with FILTER so a place is one row, and counts of the flagged rows their own indexes answer.
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


def _lines_query(
    audit: Audit, facts: _Facts, where: Sequence[ColumnElement[bool]], *, device: bool
) -> Select[Any]:
    """The audit's rows for a list in tag order, with the device's own columns if `device`."""
    scanner, holder, columns = _line_columns(facts, device=device)
    query = select(*columns).select_from(AuditItem)
    if device:
        query = query.join(Device, Device.id == AuditItem.device_id)
    return (
        query.outerjoin(scanner, scanner.id == AuditItem.scanned_by_id)
        .outerjoin(holder, holder.id == facts.holder)
        .where(AuditItem.audit_id == audit.id, *where)
        .order_by(AuditItem.asset_tag)
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
    query = _lines_query(audit, facts, where, device=facts.live)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).all())


def _lines(
    session: Session, facts: _Facts, paths: Mapping[int, str], pages: Sequence[list[Any]]
) -> list[list[Line]]:
    """Pages of rows as report lines, with their devices' own columns."""
    # Once signed off the audit's rows hold every fact, so the pages come first and then their
    # devices, all in one lookup by id: joining devices first would let PostgreSQL hash all
    # 100,000 of them for a page of 100.
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
    """`column IN ids`, on PostgreSQL as one array parameter."""
    # One array parameter plans in a fraction of the time of hundreds of separate ones.
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
