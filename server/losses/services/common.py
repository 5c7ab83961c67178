"""What every step of a loss case shares: who may act, the case's own log and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.errors import Conflict, Forbidden, ValidationFailed
from server.losses.models import LossEvent, LossReport
from server.schools.models import School


def _clean(text: str | None) -> str:
    return (text or "").strip()


def _refuse_if(problems: list[tuple[str, str]]) -> None:
    """Refuse with every (field, message) problem at once, so the form shows them all."""
    if problems:
        raise ValidationFailed(
            " ".join(message for _field, message in problems),
            details=[{"field": f, "message": m} for f, m in problems],
        )


def _require_manager(actor: User) -> None:
    if not has_permission(actor.role, Permission.LOSSES_MANAGE):
        raise Forbidden("Only the headteacher assesses and decides on a loss.")


def _require_open(loss: LossReport) -> None:
    if not loss.is_open:
        raise Conflict(
            f"Loss report {loss.id} is closed; it is kept as a record and cannot change."
        )


def _school(session: Session, loss: LossReport) -> School:
    """The school the loss belongs to, for its clocks and its return message."""
    school = session.get(School, loss.school_id)
    assert school is not None
    return school


def _event(
    session: Session,
    loss: LossReport,
    *,
    kind: str,
    summary: str,
    actor: User | None,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> LossEvent:
    event = LossEvent(
        loss_id=loss.id,
        at=at,
        kind=kind,
        summary=summary[:1000],
        actor_id=actor.id if actor else None,
        details=details or {},
    )
    session.add(event)
    return event


def _events(session: Session, loss: LossReport) -> Sequence[LossEvent]:
    return session.scalars(
        select(LossEvent)
        .where(LossEvent.loss_id == loss.id)
        .options(joinedload(LossEvent.actor))
        .order_by(LossEvent.at, LossEvent.id)
    ).all()


def _audit(
    session: Session, actor: User | None, loss: LossReport, action: str, **details: Any
) -> None:
    record(
        session,
        actor=actor,
        action=f"loss.{action}",
        school_id=loss.school_id,
        target_type="loss",
        target_id=loss.id,
        details={"asset_tag": loss.device.asset_tag, **details},
    )
