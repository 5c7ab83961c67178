"""Signing an audit off, keeping what devices said at the time, and the countersignature."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session

from server.activity.services import record
from server.audits.models import Audit, AuditItem, AuditState, AuditStatus
from server.audits.services.common import _clean, place_paths
from server.audits.services.follow_ups import offer_missing
from server.audits.services.locking import _locked, _locked_open
from server.audits.services.report import (
    _BEFORE,
    _aggregate,
    _holding_photos,
    _online_now,
    _previous_audit,
    _silent_now,
)
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import SCAN_KINDS, Device, DeviceEvent
from server.devices.services import known_photo_count, known_photo_count_at
from server.errors import Conflict, Forbidden
from server.notifications import services as notifications
from server.schools.services.clock import when

log = logging.getLogger(__name__)


def _snapshot(session: Session, audit: Audit, now: datetime) -> None:
    """Keep what the register and devices said at sign-off on the audit's rows (two UPDATEs)."""
    session.execute(
        update(AuditItem)
        .where(AuditItem.audit_id == audit.id, AuditItem.device_id == Device.id)
        .values(
            holder_id=Device.holder_id,
            last_seen_at=Device.last_seen_at,
            photo_count=known_photo_count(),
            photo_count_at=known_photo_count_at(),
            online=case((_online_now(Device.id, now), True), else_=False),
            silent=case((_silent_now(Device.last_seen_at, now), True), else_=False),
            holding_photos=case((_holding_photos(), True), else_=False),
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


def close_audit(
    session: Session, actor: User, audit_id: int, *, note: str = "", now: datetime | None = None
) -> Audit:
    """The computing lead signs the audit off: the report is fixed and scanning is locked."""
    now = now or utcnow()
    text = _clean(note, 1000, "the sign-off note")
    audit = _locked_open(session, actor.school_id, audit_id, "nothing more")
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
        case_id=audit.id,
        at=now,
    )
    offer_missing(session, audit, now)
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
