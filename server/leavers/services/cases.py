"""Finding leaver cases: the ones a person may see, their own, one a personal link opens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from server.auth.models import User
from server.db import utcnow
from server.errors import NotFound
from server.leavers.models import CaseStatus, LeaverCase, Signer
from server.leavers.pages import HomeCard
from server.leavers.services.common import (
    DUE_SOON,
    WITH_ITEMS,
    LinkAccess,
    Who,
    _open,
    _require_manager,
    _token_hash,
    is_manager,
)
from server.schools.services.clock import local_today
from server.waiting import Waiting


def _load(session: Session, school_id: int, case_id: int) -> LeaverCase | None:
    return session.scalar(
        select(LeaverCase)
        .where(LeaverCase.id == case_id, LeaverCase.school_id == school_id)
        .options(WITH_ITEMS)
    )


def roles_on(case: LeaverCase, user: User) -> set[Signer]:
    """The parts a person plays on a case (a person plays at most one)."""
    parts = {
        Signer.LEAVER: case.leaver_id,
        Signer.LINE_MANAGER: case.line_manager_id,
        Signer.TECHNICIAN: case.technician_id,
    }
    return {signer for signer, user_id in parts.items() if user_id == user.id}


def get_case(session: Session, actor: User, case_id: int) -> LeaverCase:
    """A case the person may see: managers see all; others only a case they have a part in."""
    case = _load(session, actor.school_id, case_id)
    if case is None or not (is_manager(actor) or roles_on(case, actor)):
        raise NotFound("No such leaver case for you in your school.")
    return case


def _managed_case(session: Session, actor: User, case_id: int) -> LeaverCase:
    """An open case for the school business manager or the headteacher to change."""
    case = get_case(session, actor, case_id)
    _require_manager(actor)
    _open(case)
    return case


def list_cases(
    session: Session, actor: User, *, status: CaseStatus | None = None, limit: int = 200
) -> Sequence[LeaverCase]:
    _require_manager(actor)
    query = select(LeaverCase).where(LeaverCase.school_id == actor.school_id)
    if status is not None:
        query = query.where(LeaverCase.status == status)
    return session.scalars(
        query.options(selectinload(LeaverCase.items))
        .order_by(LeaverCase.status.desc(), LeaverCase.last_day, LeaverCase.id)
        .limit(limit)
    ).all()


def my_case(session: Session, user: User) -> LeaverCase | None:
    """The person's own case as a leaver: the open one, else the latest."""
    found = session.scalar(
        select(LeaverCase)
        .where(LeaverCase.school_id == user.school_id, LeaverCase.leaver_id == user.id)
        .options(WITH_ITEMS)
        .order_by(LeaverCase.status.desc(), LeaverCase.opened_at.desc(), LeaverCase.id.desc())
        .limit(1)
    )
    return found


def case_for_link(session: Session, token: str, *, now: datetime | None = None) -> LinkAccess:
    """The case a personal link opens, while it is open and the link has not expired."""
    now = now or utcnow()
    gone = NotFound(
        "This link is not valid or has expired. Ask the school business manager for a new one."
    )
    if not token or len(token) > 128:
        raise gone
    case = session.scalar(
        select(LeaverCase)
        .where(LeaverCase.link_token_hash == _token_hash(token))
        .options(WITH_ITEMS)
    )
    if (
        case is None
        or not case.is_open
        or case.link_expires_at is None
        or case.link_expires_at <= now
    ):
        raise gone
    return LinkAccess(case)


def _leaver_case(session: Session, who: Who, case_id: int) -> LeaverCase:
    """The leaver's own case: through their account, or the one their link opens."""
    if isinstance(who, LinkAccess):
        if who.case.id != case_id:
            raise NotFound("No such leaver checklist.")
        return who.case
    case = _load(session, who.school_id, case_id)
    if case is None or case.leaver_id != who.id:
        raise NotFound("No such leaver checklist of yours.")
    return case


def _case_for(session: Session, who: Who, case_id: int) -> LeaverCase:
    if isinstance(who, LinkAccess):
        return _leaver_case(session, who, case_id)
    return get_case(session, who, case_id)


# --- home page ------------------------------------------------------------------------------


def home_card(session: Session, user: User, *, now: datetime | None = None) -> HomeCard:
    """The leavers card on a person's home page."""
    now = now or utcnow()
    today = local_today(user.school, now)
    manager = is_manager(user)
    open_cases: Sequence[LeaverCase] = []
    if manager:
        open_cases = session.scalars(
            select(LeaverCase)
            .where(LeaverCase.school_id == user.school_id, LeaverCase.status == CaseStatus.OPEN)
            .order_by(LeaverCase.last_day, LeaverCase.id)
        ).all()
    mine = session.scalar(
        select(LeaverCase).where(
            LeaverCase.school_id == user.school_id,
            LeaverCase.leaver_id == user.id,
            LeaverCase.status == CaseStatus.OPEN,
        )
    )
    to_sign = session.scalars(
        select(LeaverCase)
        .where(
            LeaverCase.school_id == user.school_id,
            LeaverCase.status == CaseStatus.OPEN,
            or_(
                and_(
                    LeaverCase.line_manager_id == user.id,
                    LeaverCase.line_manager_signed_at.is_(None),
                ),
                and_(
                    LeaverCase.technician_id == user.id,
                    LeaverCase.technician_signed_at.is_(None),
                ),
            ),
        )
        .order_by(LeaverCase.last_day)
    ).all()
    return HomeCard(
        manager=manager,
        open_cases=open_cases,
        due_soon=[c for c in open_cases if today <= c.last_day <= today + DUE_SOON],
        overdue=[c for c in open_cases if c.last_day < today],
        mine=mine,
        to_sign=to_sign,
    )


def sign_offs_waiting_for(session: Session, user: User) -> list[Waiting]:
    """Cases ready for sign-off where `user` is the line manager or technician and has not
    signed yet (often the headteacher, as line manager)."""
    cases = session.scalars(
        select(LeaverCase)
        .where(
            LeaverCase.school_id == user.school_id,
            LeaverCase.status == CaseStatus.OPEN,
            LeaverCase.ready_at.is_not(None),
            or_(
                and_(
                    LeaverCase.line_manager_id == user.id,
                    LeaverCase.line_manager_signed_at.is_(None),
                ),
                and_(
                    LeaverCase.technician_id == user.id,
                    LeaverCase.technician_signed_at.is_(None),
                ),
            ),
        )
        .order_by(LeaverCase.ready_at, LeaverCase.id)
    ).all()
    return [
        Waiting(
            what=f"Sign off {case.leaver_name}'s leaver case",
            count=1,
            since=case.ready_at,
            link=f"/leavers/{case.id}",
        )
        for case in cases
        if case.ready_at is not None
    ]
