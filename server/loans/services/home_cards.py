"""The loans card on the home page: my devices out and, for leads, every trolley."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.loans.models import DamageReport, DamageStatus, HomeApproval, Loan, LoanKind
from server.loans.pages import HomeCard
from server.loans.services.home_loans import APPROVERS
from server.loans.services.places import trolley_overview
from server.loans.services.reading import devices_out, misplaced
from server.loans.services.wipe_chasing import wipe_summary


def home_card(session: Session, user: User, *, now: datetime | None = None) -> HomeCard:
    """The loans card: my devices out; for leads, every trolley, overdue, overnight, wipes."""
    now = now or utcnow()
    everyone = devices_out(session, user.school_id, now=now)
    card = HomeCard(mine=[i for i in everyone if i.teacher_id == user.id])
    if has_permission(user.role, Permission.REPORTS_READ):
        card.trolleys = trolley_overview(session, user.school_id)
        card.out = everyone
        card.wipes = wipe_summary(session, user.school_id)
        card.damage_open = _count(
            session,
            DamageReport,
            DamageReport.school_id == user.school_id,
            DamageReport.status == DamageStatus.OPEN,
        )
        card.misplaced = misplaced(session, user.school_id, since=now - timedelta(days=14))
    if user.role in APPROVERS:
        card.home_waiting = _count(
            session,
            Loan,
            Loan.school_id == user.school_id,
            Loan.kind == LoanKind.HOME,
            Loan.approval == HomeApproval.REQUESTED,
        )
    return card


def _count(session: Session, model: type[Any], *where: ColumnElement[bool]) -> int:
    """How many rows of `model` match."""
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
