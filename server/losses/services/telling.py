"""Who is told about a loss: the headteacher, the data protection officer and the reporter."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device
from server.errors import ValidationFailed
from server.losses.models import LossReport, LossSettings
from server.losses.services.common import _clean, _event, _require_manager
from server.notifications import services as notifications
from server.schools.services import plural

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- settings: the data protection officer ----------------------------------------------


def get_settings(session: Session, school_id: int) -> LossSettings | None:
    return session.get(LossSettings, school_id)


def dpo_email(session: Session, school_id: int) -> str | None:
    settings = get_settings(session, school_id)
    return settings.dpo_email if settings else None


def update_settings(session: Session, actor: User, *, dpo_email: str | None) -> LossSettings:
    """Set or clear the data protection officer's e-mail address."""
    _require_manager(actor)
    address = _clean(dpo_email).lower() or None
    if address is not None and (len(address) > 254 or not EMAIL_RE.match(address)):
        raise ValidationFailed(
            "Enter the data protection officer's e-mail address, such as dpo@school.example.",
            details=[{"field": "dpo_email", "message": "not an e-mail address"}],
        )
    settings = get_settings(session, actor.school_id)
    if settings is None:
        settings = LossSettings(school_id=actor.school_id)
        session.add(settings)
    before = settings.dpo_email
    settings.dpo_email = address
    settings.updated_by_id = actor.id
    settings.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="loss.settings_changed",
        school_id=actor.school_id,
        target_type="school",
        target_id=actor.school_id,
        details={"dpo_email": [before, address]},
    )
    session.commit()
    return settings


# --- who is told ----------------------------------------------------------------------------


def _heads(session: Session, school_id: int) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(
                User.school_id == school_id,
                User.active.is_(True),
                User.role == Role.HEADTEACHER,
            )
            .order_by(User.id)
        )
    )


@dataclass(frozen=True)
class Told:
    """Who heard of a loss: the headteachers, or (with none active) the SBM and administrators."""

    heads: bool
    people: int


def tell_headteachers(
    session: Session,
    *,
    school_id: int,
    kind: str,
    title: str,
    body: str,
    link: str,
    at: datetime,
    devices: Sequence[Device] = (),
    case_id: int | None = None,
    dpo: bool = False,
) -> Told:
    """P-LOSS-1: the headteacher in the app and by e-mail at once, and the DPO by e-mail if
    asked and set; with no headteacher account, the SBM and administrators instead."""
    heads = _heads(session, school_id)
    if heads:
        told = notifications.notify(
            session,
            school_id=school_id,
            users=heads,
            kind=kind,
            title=title,
            body=body,
            link=link,
            devices=devices,
            case_id=case_id,
            at=at,
        )
    else:
        # Nobody may go untold: with no headteacher account, the SBM and administrators are.
        told = notifications.notify_roles(
            session,
            school_id=school_id,
            roles=[Role.SBM, Role.ADMIN],
            kind=kind,
            title=title,
            body=body,
            link=link,
            devices=devices,
            case_id=case_id,
            at=at,
        )
    address = dpo_email(session, school_id) if dpo else None
    if address:
        # The data protection officer, outside the school, gets the same minimal notice.
        notifications.notify_address(
            session,
            school_id=school_id,
            address=address,
            kind=kind,
            link=link,
            devices=devices,
            case_id=case_id,
            at=at,
        )
    return Told(heads=bool(heads), people=len(told))


def _tell_heads(
    session: Session, loss: LossReport, *, kind: str, title: str, body: str, dpo: bool, at: datetime
) -> None:
    """A school device's loss: the headteacher (or others, noted in the case) and the DPO."""
    told = tell_headteachers(
        session,
        school_id=loss.school_id,
        kind=kind,
        title=title,
        body=body,
        link=loss.link,
        at=at,
        devices=[loss.device],
        case_id=loss.id,
        dpo=dpo,
    )
    if not told.heads:
        _event(
            session,
            loss,
            kind="no_head",
            summary="No headteacher account is active, so "
            f"{plural(told.people, 'other member')} of staff "
            "(SBM and administrators) were told instead.",
            actor=None,
            at=at,
        )


def _alert_people(session: Session, loss: LossReport) -> list[User]:
    people = _heads(session, loss.school_id)
    reporter = loss.reported_by
    if reporter is not None and reporter.active and reporter.school_id == loss.school_id:
        people.append(reporter)
    return people


def _alert(
    session: Session, loss: LossReport, *, kind: str, title: str, body: str, at: datetime
) -> None:
    """The missing device turned up: the headteacher and the reporter, in the app and by e-mail."""
    notifications.notify(
        session,
        school_id=loss.school_id,
        users=_alert_people(session, loss),
        kind=kind,
        title=title,
        body=body,
        link=loss.link,
        devices=[loss.device],
        case_id=loss.id,
        at=at,
    )
