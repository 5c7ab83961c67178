"""Follow-ups after sign-off: loss reports for the missing, repairs for the damaged."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.audits.models import Audit, AuditItem, AuditState
from server.audits.services.locking import _locked
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import DeviceStatus
from server.devices.services import TRANSITIONS, add_event, change_status
from server.errors import Conflict, TrolleyError
from server.losses import services as losses
from server.losses.models import LossKind, PossibleLossSource
from server.notifications import services as notifications
from server.schools.models import Location, School
from server.schools.services.clock import plural, when

log = logging.getLogger(__name__)


@dataclass
class FollowUps:
    losses: list[tuple[str, int]]
    already_reported: list[tuple[str, int]]
    repairs: list[str]
    skipped: list[tuple[str, str]]

    @property
    def message(self) -> str:
        parts = []
        if self.losses:
            parts.append(f"{plural(len(self.losses), 'loss report')} raised")
        if self.already_reported:
            parts.append(f"{len(self.already_reported)} already reported")
        if self.repairs:
            parts.append(f"{plural(len(self.repairs), 'device')} sent for repair")
        if self.skipped:
            parts.append(f"{len(self.skipped)} left for you to deal with (see below)")
        return (", ".join(parts) or "Nothing needed following up") + "."


def _missing_facts(session: Session, audit: Audit, item: AuditItem, now: datetime) -> losses.Offer:
    """What the audit knows of a missing device, as a loss report would need it."""
    school = session.get(School, audit.school_id)
    assert school is not None
    lives = session.get(Location, item.expected_location_id) if item.expected_location_id else None
    seen = [t for t in (item.last_scan_at, item.last_seen_at) if t is not None and t <= now]
    return losses.Offer(
        device=item.device,
        source=PossibleLossSource.AUDIT,
        source_id=audit.id,
        last_seen_at=max(seen) if seen else audit.started_at,
        last_seen_where=(
            item.last_scan_note or (f"Lives in {lives.name}" if lives else "Not known")
        )[:200],
        circumstances=(
            f"Not found in the {audit.term.name} termly audit, signed off by "
            f"{audit.closed_by.name if audit.closed_by else 'the computing lead'} "
            f"{when(audit.closed_at, school, missing='never')}."
            + (f" It lives in {lives.name}." if lives else "")
        ),
    )


def offer_missing(session: Session, audit: Audit, now: datetime) -> int:
    """P-LOSS-1: each device still missing at sign-off is offered to the head as lost."""
    missing = session.scalars(
        select(AuditItem)
        .where(
            AuditItem.audit_id == audit.id,
            AuditItem.expected.is_(True),
            AuditItem.state == AuditState.MISSING,
        )
        .options(joinedload(AuditItem.device))
        .order_by(AuditItem.asset_tag)
        .execution_options(populate_existing=True)
    ).all()
    offers = [_missing_facts(session, audit, item, now) for item in missing]
    return len(losses.offer_possible_losses(session, audit.school_id, offers, now=now))


def report_missing_as_lost(
    session: Session, actor: User, audit: Audit, item: AuditItem, now: datetime
) -> tuple[str, int | str]:
    """("raised" | "existing", loss id) or ("skipped", why) for one missing device's loss report."""
    # The losses service commits each report on its own.
    device = item.device
    existing = losses.open_loss_for(session, device)
    if existing is not None:
        return "existing", int(existing.id)
    facts = _missing_facts(session, audit, item, now)
    try:
        loss = losses.report_loss(
            session,
            actor,
            asset_tag=device.asset_tag,
            kind=LossKind.LOST,
            last_seen_at=facts.last_seen_at or audit.started_at,
            last_seen_where=facts.last_seen_where,
            circumstances=facts.circumstances,
            now=now,
        )
    except Conflict as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        if "loss_id" in details:
            return "existing", int(details["loss_id"])
        session.rollback()
        return "skipped", exc.message
    except TrolleyError as exc:
        session.rollback()
        return "skipped", exc.message
    return "raised", int(loss.id)


def raise_follow_ups(
    session: Session, actor: User, audit_id: int, *, now: datetime | None = None
) -> FollowUps:
    """One action after sign-off: loss reports for the missing, repairs for the damaged."""
    now = now or utcnow()
    audit = _locked(session, actor.school_id, audit_id)
    if audit.is_open:
        raise Conflict("Sign the audit off first; then raise its follow-ups.")
    done = FollowUps([], [], [], [])
    damaged = session.scalars(
        select(AuditItem)
        .where(
            AuditItem.audit_id == audit.id,
            AuditItem.damaged.is_(True),
            AuditItem.repair_raised_at.is_(None),
        )
        .options(joinedload(AuditItem.device))
    ).all()
    repaired = []
    for item in damaged:
        why = _send_for_repair(session, actor, audit, item, now)
        if why is None:
            done.repairs.append(item.device.asset_tag)
            repaired.append(item.device)
        else:
            done.skipped.append((item.device.asset_tag, why))
    if done.repairs:
        notifications.notify_roles(
            session,
            school_id=audit.school_id,
            roles=[Role.TECHNICIAN],
            kind="audit.repairs",
            title=f"{plural(len(done.repairs), 'device')} to repair after the termly audit",
            body=f"The {audit.term.name} audit found damage on: {', '.join(done.repairs)}. "
            "They are marked in repair; each device's history says what is wrong.",
            link=f"/audits/{audit.id}",
            devices=repaired,
            case_id=audit.id,
            at=now,
        )
    audit.follow_ups_at = now
    audit.follow_ups_by_id = actor.id
    record(
        session,
        actor=actor,
        action="audit.follow_ups",
        school_id=audit.school_id,
        target_type="audit",
        target_id=audit.id,
        details={"repairs": done.repairs},
        at=now,
    )
    session.commit()
    missing = session.scalars(
        select(AuditItem)
        .where(
            AuditItem.audit_id == audit.id,
            AuditItem.expected.is_(True),
            AuditItem.state == AuditState.MISSING,
            AuditItem.loss_report_id.is_(None),
        )
        .options(joinedload(AuditItem.device))
        .order_by(AuditItem.id)
    ).all()
    for item in missing:
        tag = item.device.asset_tag
        outcome, value = report_missing_as_lost(session, actor, audit, item, now)
        if outcome == "skipped":
            done.skipped.append((tag, str(value)))
            continue
        # Each loss report commits on its own; marking the row makes a second run skip it.
        fresh = session.get(AuditItem, item.id)
        assert fresh is not None
        fresh.loss_report_id = int(value)
        session.commit()
        (done.losses if outcome == "raised" else done.already_reported).append((tag, int(value)))
    log.info("audit %s follow-ups: %s", audit.id, done.message)
    return done


def _send_for_repair(
    session: Session, actor: User, audit: Audit, item: AuditItem, now: datetime
) -> str | None:
    """The device goes in for repair with a timeline entry; why not, if it cannot."""
    device = item.device
    problems = ", ".join(item.problems) or "damage"
    note = f": {item.condition_note}" if item.condition_note else ""
    if device.status is DeviceStatus.IN_REPAIR:
        item.repair_raised_at = now
        event = add_event(
            session,
            device,
            kind="audit",
            summary=f"Termly audit repair ticket ({problems}){note}; already in repair",
            actor=actor,
        )
        event.at = now
        return None
    if DeviceStatus.IN_REPAIR not in TRANSITIONS[device.status]:
        return f"it is {device.status.label.lower()}, so it cannot go in for repair"
    change_status(
        session,
        actor,
        device,
        DeviceStatus.IN_REPAIR,
        f"Termly audit ({audit.term.name}) found {problems}{note}",
        commit=False,
    )
    item.repair_raised_at = now
    return None
