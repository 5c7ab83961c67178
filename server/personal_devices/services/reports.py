"""A staff device lost, stolen or passed to someone else: reported, and the head told (P-LOSS-4).

"Any device loss, theft, change of ownership of the device will be reported". The headteacher
hears at once, in the app and by e-mail, exactly as for a school device (the losses domain's
telling). A device that held school photos may hold personal data, so its loss also reaches the
data protection officer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.db import utcnow
from server.errors import Conflict, ValidationFailed
from server.losses.services import tell_headteachers
from server.personal_devices.models import (
    PersonalDevice,
    PersonalDeviceReport,
    PhotoDayState,
    ReportKind,
)
from server.personal_devices.services.photos import (
    authorisations,
    end_for,
    record_of_days,
    school_of,
)
from server.personal_devices.services.register import mark_removed, visible_entry
from server.schools.services import day_text, local_today, when

log = logging.getLogger(__name__)

NOTICE_KINDS = {
    ReportKind.LOST: "personal_device.lost",
    ReportKind.STOLEN: "personal_device.lost",
    ReportKind.NEW_OWNER: "personal_device.new_owner",
}


def reports_for(session: Session, device: PersonalDevice) -> Sequence[PersonalDeviceReport]:
    return session.scalars(
        select(PersonalDeviceReport)
        .where(PersonalDeviceReport.device_id == device.id)
        .order_by(PersonalDeviceReport.reported_at.desc(), PersonalDeviceReport.id.desc())
    ).all()


def _photo_lines(session: Session, device: PersonalDevice, now: datetime) -> str:
    """What the head needs to judge the risk: was it used for school photos, and confirmed?"""
    granted = authorisations(session, device)
    if not granted:
        return "Photo use for school was never authorised on this device."
    days = record_of_days(session, device, now=now)
    done = [d.day for d in days if d.state is PhotoDayState.MOVED_AND_DELETED]
    gaps = [d for d in days if not d.confirmed and not d.today]
    latest = granted[0]
    lines = [
        f"Photo use for school was authorised from {day_text(latest.starts_on)} to "
        f"{day_text(latest.last_day)}."
    ]
    lines.append(
        f"Last day confirmed as moved and deleted: {day_text(max(done))}."
        if done
        else "No day has been confirmed as moved and deleted."
    )
    if gaps:
        lines.append(f"Days not confirmed in the last four weeks: {len(gaps)}.")
    return "\n".join(lines)


def report(
    session: Session,
    actor: User,
    entry_id: int,
    *,
    kind: ReportKind,
    happened_on: date,
    details: str,
    now: datetime | None = None,
) -> PersonalDeviceReport:
    """P-LOSS-4: the owner (or the SBM or head) reports a loss, theft or new owner; the head
    is told at once, photo use ends, and a device with a new owner leaves the register."""
    entry = visible_entry(session, actor, entry_id)
    now = now or utcnow()
    school = school_of(session, entry.school_id)
    today = local_today(school, now)
    if not entry.is_current:
        raise Conflict("This device was removed from the register; there is nothing to report.")
    what = details.strip()
    problems = []
    if not what:
        problems.append({"field": "details", "message": "Say what happened, as far as you know."})
    elif len(what) > 4000:
        problems.append({"field": "details", "message": "Keep it to 4,000 characters."})
    if happened_on > today:
        problems.append({"field": "happened_on", "message": "That day has not come yet."})
    if problems:
        raise ValidationFailed("Some details need correcting.", details=problems)
    told = _photo_lines(session, entry, now)
    had_photos = bool(authorisations(session, entry))
    filed = PersonalDeviceReport(
        school_id=entry.school_id,
        device=entry,
        kind=kind,
        happened_on=happened_on,
        details=what,
        reported_by=actor,
        reported_at=now,
    )
    session.add(filed)
    session.flush()
    end_for(session, actor, entry, f"Reported {kind.label.lower()}", now)
    if kind is ReportKind.NEW_OWNER:
        mark_removed(session, actor, entry, "Passed to a new owner", on=min(happened_on, today))
    record(
        session,
        actor=actor,
        action="personal_device.reported",
        school_id=entry.school_id,
        target_type="personal_device",
        target_id=entry.id,
        details={"kind": kind.value, "report": filed.id},
        at=now,
    )
    device = f"{entry.owner_label}'s own {entry.make} {entry.model}"
    tell_headteachers(
        session,
        school_id=entry.school_id,
        kind=NOTICE_KINDS[kind],
        title=f"{device} reported {kind.label.lower()}",
        body=f"{actor.name} reported {device} (serial {entry.serial}) {kind.label.lower()} "
        f"at {when(now, school)}. It happened on {day_text(happened_on)}.\n\n"
        f"What happened: {what}\n\n{told}",
        link=f"/personal-devices/{entry.id}",
        at=now,
        case_id=filed.id,
        # School photos may still be on a lost device: the DPO weighs that, as for a school one.
        dpo=had_photos and kind is not ReportKind.NEW_OWNER,
    )
    session.commit()
    log.info("personal device %s reported %s by user %s", entry.id, kind.value, actor.id)
    return filed
