"""Starting an audit of the whole school or of chosen places, and finding audits."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.audits.models import Audit, AuditItem, AuditState, AuditStatus
from server.audits.services.common import _school_row
from server.audits.services.terms import term_on
from server.auth.models import User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.errors import Conflict, NotFound, ValidationFailed
from server.schools.models import Location, School, Term
from server.schools.services import terms as school_terms
from server.schools.services.clock import local_today, when

log = logging.getLogger(__name__)

MAX_SCOPE_PLACES = 500


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
    """The school's audit by id, with its term."""
    missing = "No such audit in your school."
    return _school_row(session, Audit, audit_id, school_id, missing, load=[joinedload(Audit.term)])


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
