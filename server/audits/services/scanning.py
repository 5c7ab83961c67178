"""Scanning labels during an audit and the condition checklist for each device."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.errors import LabelCodeError
from provisioning.payload import parse_label_url
from server.audits.models import CONDITION_CHECKS, Audit, AuditItem, AuditState, AuditUnknownTag
from server.audits.pages import PlaceProgress
from server.audits.services.common import UNUSABLE, _clean
from server.audits.services.locking import _locked_open
from server.audits.services.progress import _progress_rows, _totals_found
from server.auth.models import User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event, find_by_tag, get_device
from server.errors import Conflict, ValidationFailed
from server.losses import services as losses
from server.schools.models import Location
from server.schools.services.clock import when


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
    device = find_by_tag(session, actor.school_id, tag)
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
        losses.device_scanned(session, device, location=place, actor=actor, now=now)
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
            f"Already scanned {when(last_at, school, missing='never')}"
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
