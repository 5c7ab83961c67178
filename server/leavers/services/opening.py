"""Opening a leaver case: who is leaving, when, who signs, and everything they hold."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import find_by_tag
from server.errors import Conflict, ValidationFailed
from server.leavers.models import CaseStatus, LeaverCase
from server.leavers.services.closing import _close
from server.leavers.services.common import (
    EMAIL_RE,
    MAX_TAGS,
    _event,
    _flush_or_conflict,
    _require_manager,
    _school_user,
    _trail,
)
from server.leavers.services.holdings import (
    _busy,
    _busy_error,
    _device_item,
    _personal_items,
    held_by,
)
from server.leavers.services.links import _new_link
from server.notifications.services import notify
from server.schools.services.clock import day_text, local_today

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """A new case, and the personal link (shown once) for a leaver without an account."""

    case: LeaverCase
    link: str | None


def open_case(
    session: Session,
    actor: User,
    *,
    leaver_id: int | None,
    leaver_name: str = "",
    leaver_email: str = "",
    last_day: date,
    line_manager_id: int | None,
    technician_id: int | None,
    asset_tags: Sequence[str] = (),
    base_url: str,
    now: datetime | None = None,
) -> Opened:
    """Open a leaver case listing what they hold; someone who holds nothing closes at once."""
    _require_manager(actor)
    now = now or utcnow()
    school = actor.school
    problems: list[dict[str, str]] = []

    def problem(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    # A leaver whose account is already closed is still chosen from the list.
    leaver = (
        session.scalar(select(User).where(User.id == leaver_id, User.school_id == actor.school_id))
        if leaver_id is not None
        else None
    )
    name, email = " ".join(leaver_name.split()), leaver_email.strip().lower()
    if leaver_id is not None:
        if leaver is None:
            problem("leaver_id", "Choose a member of staff from your school.")
        else:
            name, email = leaver.name, leaver.email
    else:
        if not name:
            problem("leaver_name", "Enter the leaver's name, or choose them from the list.")
        if not EMAIL_RE.match(email):
            problem("leaver_email", "Enter an e-mail address we can send their checklist to.")
        elif session.scalar(
            select(User.id).where(
                User.school_id == actor.school_id, func.lower(User.email) == email
            )
        ):
            problem("leaver_email", "They have a Trolley account: choose them from the list.")
    manager = _school_user(session, actor.school_id, line_manager_id)
    technician = _school_user(session, actor.school_id, technician_id)
    if manager is None:
        problem("line_manager_id", "Choose their line manager.")
    elif leaver is not None and manager.id == leaver.id:
        problem("line_manager_id", "The line manager must be someone other than the leaver.")
    if technician is None or technician.role is not Role.TECHNICIAN:
        problem("technician_id", "Choose one of the school's technicians.")
    elif leaver is not None and technician.id == leaver.id:
        problem("technician_id", "The technician must be someone other than the leaver.")
    elif manager is not None and technician.id == manager.id:
        problem("technician_id", "The line manager and the technician must be two people.")
    today = local_today(school, now)
    if last_day < today:
        problem("last_day", "The last day cannot be in the past.")
    elif last_day > today + timedelta(days=366):
        problem("last_day", "The last day must be within the next year.")
    tags = [t.strip() for t in asset_tags if t and t.strip()]
    if len(tags) > MAX_TAGS:
        problem("asset_tags", f"Add at most {MAX_TAGS} devices by hand.")
    extra: list[Device] = []
    for tag in dict.fromkeys(tags):
        device = find_by_tag(session, actor.school_id, tag)
        if device is None:
            problem("asset_tags", f"No device {tag} in your school's register.")
        elif device.status is DeviceStatus.DISPOSED:
            problem("asset_tags", f"{device.asset_tag} has been disposed of.")
        else:
            extra.append(device)
    if problems:
        raise ValidationFailed(
            "Some details need correcting before the case can open.", details=problems
        )
    duplicate = session.scalar(
        select(LeaverCase).where(
            LeaverCase.school_id == actor.school_id,
            LeaverCase.status == CaseStatus.OPEN,
            LeaverCase.leaver_id == leaver.id
            if leaver is not None
            else func.lower(LeaverCase.leaver_email) == email,
        )
    )
    if duplicate is not None:
        raise Conflict(
            f"{name} already has an open leaver case "
            f"(last day {day_text(duplicate.last_day, long=True)}).",
            code="case_already_open",
            details={"case_id": duplicate.id},
        )
    held = held_by(session, leaver) if leaver is not None else []
    sources = {h.device.id: h.source for h in held}
    devices = {h.device.id: h.device for h in held}
    for device in extra:
        devices.setdefault(device.id, device)
        sources.setdefault(device.id, f"Added by {actor.name}")
    busy = _busy(session, list(devices))
    if busy:
        raise _busy_error(session, busy)
    case = LeaverCase(
        school_id=actor.school_id,
        leaver_id=leaver.id if leaver else None,
        leaver_name=name,
        leaver_email=email,
        last_day=last_day,
        line_manager_id=manager.id if manager else None,
        technician_id=technician.id if technician else None,
        status=CaseStatus.OPEN,
        opened_by_id=actor.id,
        opened_at=now,
        meeting_sequence=0,
    )
    session.add(case)
    for device in sorted(devices.values(), key=lambda d: d.asset_tag):
        case.items.append(_device_item(case, device, sources[device.id], now))
    if leaver is not None:
        case.items.extend(_personal_items(session, case, leaver, now, skip=set()))
    _flush_or_conflict(session)
    _event(session, case, actor, f"Case opened: last day {day_text(last_day, long=True)}", now)
    _trail(
        session,
        case,
        actor,
        "opened",
        now,
        leaver=name,
        last_day=last_day.isoformat(),
        items=len(case.items),
    )
    link = None
    if not case.items:
        what = f"{name} held no school devices and nothing in the staff personal devices register"
        _close(session, case, actor, now, note=f"{what}, so the case closed straight away.")
    else:
        if leaver is None or not leaver.active:
            link = _new_link(session, case, actor, base_url, now)
        _tell_people(session, case, now)
    _flush_or_conflict(session)
    session.commit()
    log.info("leaver case %s opened with %d item(s)", case.id, len(case.items))
    return Opened(case, link)


def _tell_people(session: Session, case: LeaverCase, now: datetime) -> None:
    link = f"/leavers/{case.id}"
    devices = sum(1 for i in case.items if i.is_device)
    when_text = day_text(case.last_day, long=True)
    if case.leaver is not None:
        notify(
            session,
            school_id=case.school_id,
            users=[case.leaver],
            kind="leaver_checklist",
            title="Your leaving checklist for school devices",
            body=f"Before your last day ({when_text}), please give back {devices} school "
            "device(s) and tell us how to reset them. Your checklist explains each step.",
            link="/leavers/mine",
            case_id=case.id,
            at=now,
        )
    helpers = [u for u in (case.line_manager, case.technician) if u is not None]
    notify(
        session,
        school_id=case.school_id,
        users=helpers,
        kind="leaver_case",
        title=f"{case.leaver_name} is leaving on {when_text}",
        body=f"You are asked to sign off {case.leaver_name}'s leaver case once their "
        f"{devices} device(s) are back and reset.",
        link=link,
        case_id=case.id,
        at=now,
    )
