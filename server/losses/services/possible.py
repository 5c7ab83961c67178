"""Possible losses: devices other domains could not find, offered to the headteacher at once."""

# P-LOSS-1: a loss "MUST be notified to the Headteacher immediately". A device not back at the
# end of the day and still not found next morning (loans), or missing when an audit is signed
# off (audits), may be lost: the headteacher is told and reports it in one action, or says why
# it is not lost. An offer settles itself once a person has the device in hand again.

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import SCAN_KINDS, Device, DeviceEvent
from server.devices.services import add_event
from server.errors import Conflict, NotFound, ValidationFailed
from server.losses.models import (
    LossKind,
    LossReport,
    PossibleLoss,
    PossibleLossOutcome,
    PossibleLossSource,
)
from server.losses.services.common import _clean, _require_manager
from server.losses.services.reporting import open_loss_for, report_loss, settle_for_loss
from server.losses.services.telling import _heads
from server.notifications import services as notifications
from server.schools.models import School
from server.schools.services import plural, when

log = logging.getLogger(__name__)

KIND = "loss.possible"
LINK = "/losses#possible"


@dataclass(frozen=True)
class Offer:
    """What the domain that could not find a device knows about it."""

    device: Device
    source: PossibleLossSource
    source_id: int
    last_seen_at: datetime | None
    last_seen_where: str
    circumstances: str


def possible_losses(session: Session, school_id: int) -> list[PossibleLoss]:
    """The school's open offers, oldest first."""
    return list(
        session.scalars(
            select(PossibleLoss)
            .where(PossibleLoss.school_id == school_id, PossibleLoss.resolved_at.is_(None))
            .options(joinedload(PossibleLoss.device))
            .order_by(PossibleLoss.raised_at, PossibleLoss.id)
        )
    )


def offer_possible_losses(
    session: Session, school_id: int, offers: Sequence[Offer], *, now: datetime
) -> list[PossibleLoss]:
    """Offer devices to the head, in the app and by e-mail, skipping those already reported."""
    made: list[PossibleLoss] = []
    for offer in offers:
        device = offer.device
        if device.school_id != school_id:
            raise ValidationFailed("A possible loss can only name a device of the same school.")
        if open_loss_for(session, device) is not None:
            continue
        row = PossibleLoss(
            school_id=school_id,
            device_id=device.id,
            source=offer.source,
            source_id=offer.source_id,
            raised_at=now,
            last_seen_at=offer.last_seen_at,
            last_seen_where=offer.last_seen_where[:200],
            circumstances=offer.circumstances,
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            continue  # it already has an open offer (perhaps made a moment ago)
        event = add_event(
            session,
            device,
            kind="possible_loss",
            summary=f"Offered to the headteacher as a possible loss: {offer.source.label.lower()}",
            actor=None,
        )
        event.at = now
        made.append(row)
    if made:
        _tell(session, school_id, made, now)
    return made


def _tell(session: Session, school_id: int, made: list[PossibleLoss], now: datetime) -> None:
    """The headteacher at once; with no headteacher account, the SBM and administrators."""
    devices = [row.device for row in made]
    school = session.get(School, school_id)
    lines = [
        f"{row.device.asset_tag}: {row.source.label.lower()}. Last seen: {row.last_seen_where}"
        + (f", {when(row.last_seen_at, school)}" if row.last_seen_at and school else "")
        + "."
        for row in made
    ]
    body = (
        "\n".join(lines)
        + "\n\nIf a device is lost, report it from the Losses page in one action: lost mode is "
        "sent and the 72 hours for deciding on an ICO report start. If it is accounted for, "
        "say where."
    )
    title = f"Possibly lost: {', '.join(d.asset_tag for d in devices)}"[:200]
    heads = _heads(session, school_id)
    if heads:
        notifications.notify(
            session,
            school_id=school_id,
            users=heads,
            kind=KIND,
            title=title,
            body=body,
            link=LINK,
            devices=devices,
            at=now,
        )
    else:
        notifications.notify_roles(
            session,
            school_id=school_id,
            roles=[Role.SBM, Role.ADMIN],
            kind=KIND,
            title=title,
            body=body,
            link=LINK,
            devices=devices,
            at=now,
        )
    log.info("offered %s to school %s's head", plural(len(made), "possible loss"), school_id)


def _open_offer(session: Session, actor: User, offer_id: int) -> PossibleLoss:
    """The headteacher's open offer, locked until this transaction ends."""
    _require_manager(actor)
    query = select(PossibleLoss).where(
        PossibleLoss.id == offer_id, PossibleLoss.school_id == actor.school_id
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    offer = session.scalar(query)
    if offer is None:
        raise NotFound("No such possible loss in your school.")
    if offer.resolved_at is not None:
        assert offer.resolution is not None
        raise Conflict(
            f"{offer.device.asset_tag} was already dealt with ({offer.resolution.label.lower()} "
            f"{when(offer.resolved_at, actor.school)})."
        )
    return offer


def report_possible_loss(
    session: Session, actor: User, offer_id: int, *, now: datetime | None = None
) -> LossReport:
    """The one action: report the offered device lost with what Trolley already knows."""
    now = now or utcnow()
    offer = _open_offer(session, actor, offer_id)
    device, source = offer.device, offer.source
    loss = open_loss_for(session, device)
    if loss is None:
        # Commits, with the headteacher's alert and lost mode; it settles this offer too.
        loss = report_loss(
            session,
            actor,
            asset_tag=device.asset_tag,
            kind=LossKind.LOST,
            last_seen_at=min(offer.last_seen_at or offer.raised_at, now),
            last_seen_where=offer.last_seen_where or "Not known",
            circumstances=offer.circumstances,
            now=now,
        )
    else:
        settle_for_loss(session, loss, actor, now)
    record(
        session,
        actor=actor,
        action="loss.possible_reported",
        school_id=loss.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"offer_id": offer_id, "loss_id": loss.id, "source": source.value},
        at=now,
    )
    session.commit()
    return loss


def dismiss_possible_loss(
    session: Session, actor: User, offer_id: int, *, note: str, now: datetime | None = None
) -> PossibleLoss:
    """The headteacher says the device is not lost, and why (kept with the offer)."""
    now = now or utcnow()
    text = _clean(note)
    if not text:
        raise ValidationFailed(
            "Say why the device is not lost, for example where it is.",
            details=[{"field": "note", "message": "Say why it is not lost."}],
        )
    if len(text) > 500:
        raise ValidationFailed("Keep the reason to 500 characters or fewer.")
    offer = _open_offer(session, actor, offer_id)
    _resolve(offer, PossibleLossOutcome.DISMISSED, actor, now, note=text)
    event = add_event(
        session,
        offer.device,
        kind="possible_loss",
        summary=f"Not lost, said {actor.name}: {text}",
        actor=actor,
    )
    event.at = now
    record(
        session,
        actor=actor,
        action="loss.possible_dismissed",
        school_id=offer.school_id,
        target_type="device",
        target_id=offer.device.asset_tag,
        details={"offer_id": offer.id, "source": offer.source.value},
        at=now,
    )
    session.commit()
    return offer


def _resolve(
    offer: PossibleLoss,
    outcome: PossibleLossOutcome,
    actor: User | None,
    now: datetime,
    *,
    note: str | None = None,
    loss_id: int | None = None,
) -> None:
    offer.resolved_at = now
    offer.resolution = outcome
    offer.resolved_by_id = actor.id if actor else None
    offer.note = note
    offer.loss_report_id = loss_id


def settle_possible_losses(session: Session, now: datetime) -> int:
    """The job: offers whose device has since been reported, or been in someone's hands, close."""
    reported = (
        select(LossReport.id)
        .where(LossReport.device_id == PossibleLoss.device_id, LossReport.closed_at.is_(None))
        .limit(1)
        .scalar_subquery()
    )
    settled = session.execute(
        update(PossibleLoss)
        .where(PossibleLoss.resolved_at.is_(None), reported.is_not(None))
        .values(
            resolved_at=now,
            resolution=PossibleLossOutcome.REPORTED,
            loss_report_id=reported,
        )
        .execution_options(synchronize_session=False)
    )
    # A scan, take-out or return since the offer: a person has had the device in hand.
    seen = exists().where(
        DeviceEvent.device_id == PossibleLoss.device_id,
        DeviceEvent.kind.in_(SCAN_KINDS),
        DeviceEvent.at > PossibleLoss.raised_at,
    )
    found = session.execute(
        update(PossibleLoss)
        .where(PossibleLoss.resolved_at.is_(None), seen)
        .values(
            resolved_at=now,
            resolution=PossibleLossOutcome.FOUND,
            note="Scanned or returned since it was offered.",
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(settled, "rowcount", 0) or 0) + int(getattr(found, "rowcount", 0) or 0)


def open_offer_count(session: Session, school_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                PossibleLoss.school_id == school_id, PossibleLoss.resolved_at.is_(None)
            )
        )
        or 0
    )
