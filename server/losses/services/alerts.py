"""A missing device turns up: it came online, or its label was scanned (joins the caller's work)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device
from server.losses.models import LossEvent, LossReport
from server.losses.services.common import _event, _school
from server.losses.services.remote import lost_mode
from server.losses.services.reporting import open_loss_for
from server.losses.services.telling import _alert
from server.schools.models import Location
from server.schools.services import when

log = logging.getLogger(__name__)

# A device on a poor connection can come and go; one "it is online" alert per half hour is enough.
ONLINE_ALERT_QUIET = timedelta(minutes=30)


def device_seen_online(session: Session, device: Device, now: datetime) -> LossReport | None:
    """The command engine saw the device come online: alert the reporter and the head (joins)."""
    loss = open_loss_for(session, device)
    if loss is None:
        return None
    last = session.scalar(
        select(LossEvent.at)
        .where(LossEvent.loss_id == loss.id, LossEvent.kind == "seen_online")
        .order_by(LossEvent.at.desc())
        .limit(1)
    )
    school = _school(session, loss)
    summary = f"{device.asset_tag} came online at {when(now, school)}"
    if last is not None and now - last < ONLINE_ALERT_QUIET:
        _event(session, loss, kind="online_again", summary=summary, actor=None, at=now)
        return loss
    _event(session, loss, kind="seen_online", summary=summary, actor=None, at=now)
    _alert(
        session,
        loss,
        kind="loss.seen_online",
        title=f"{device.asset_tag}, reported {loss.kind.value}, is online at {when(now, school)}",
        body=f"{summary}. It was reported {loss.kind.value} {when(loss.reported_at, school)}. "
        f"Lost mode: {lost_mode(session, loss).label}.",
        at=now,
    )
    log.info("loss %s: %s came online", loss.id, device.asset_tag)
    return loss


def device_scanned(
    session: Session,
    device: Device,
    *,
    location: Location | str | None,
    actor: User | None,
    now: datetime,
) -> LossReport | None:
    """Loans or audits scanned a lost device's label: alert the reporter and the head (joins)."""
    loss = open_loss_for(session, device)
    if loss is None:
        return None
    school = _school(session, loss)
    if isinstance(location, Location):
        where = f" into the {location.name}"
    elif location:
        where = f" at {location}"
    else:
        where = ""
    who = f" by {actor.name}" if actor is not None else ""
    summary = f"{device.asset_tag} was scanned{where}{who} at {when(now, school)}"
    _event(session, loss, kind="scanned", summary=summary, actor=actor, at=now)
    _alert(
        session,
        loss,
        kind="loss.scanned",
        title=f"{device.asset_tag}, reported {loss.kind.value}, was scanned{where}",
        body=f"{summary}. If it is back for good, close the loss report as found.",
        at=now,
    )
    log.info("loss %s: %s scanned", loss.id, device.asset_tag)
    return loss
