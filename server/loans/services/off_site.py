"""A device seen on a network outside school without an approved home loan (P-TROLLEY-2)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session

from server.auth.models import Role
from server.devices.services import NetworkChange, add_event, record_networks
from server.events import NetworkSighting
from server.loans.services.home_loans import is_on_home_loan
from server.notifications import services as notifications
from server.schools.models import School
from server.schools.services.clock import when

log = logging.getLogger(__name__)

# Who is told at once: the SBM keeps the register, the head answers for losses.
TOLD = (Role.SBM, Role.HEADTEACHER)
SAID_BY = {"device": "It reported", "google": "Google saw it on"}


def seen_on_networks(
    session: Session, sightings: Sequence[NetworkSighting], *, extra_ranges: tuple[str, ...] = ()
) -> list[bool]:
    """Record the networks; tell the SBM and the head the first time a device is outside school.

    Returns, for each sighting, whether they were told (joins the caller's transaction). A
    device on an approved home loan is expected off-site, and a network nobody can judge is
    never called off-site.
    """
    changes = record_networks(session, sightings, extra_ranges=extra_ranges)
    return [_tell(session, s, change) for s, change in zip(sightings, changes, strict=True)]


def _tell(session: Session, sighting: NetworkSighting, change: NetworkChange) -> bool:
    """Flag a device that has just gone off-site, by the facts its verdict was made on."""
    device, source, at = sighting.device, sighting.source, sighting.at
    if not change.went_off_site or is_on_home_loan(session, device):
        return False
    # The address judged may be an earlier check-in's on the same network: say which, and when.
    address, address_at = change.public_address, change.public_address_at
    where = sighting.ssid or address or "an unknown network"
    said = SAID_BY.get(source, "It was seen on")
    seen = when(at, session.get_one(School, device.school_id))
    add_event(
        session,
        device,
        kind="off_site",
        summary=f"{said} a network outside school ({where}), and it is not on an approved "
        "home loan",
        actor=None,
        details={
            "source": source,
            "ssid": sighting.ssid,
            "public_address": address,
            "public_address_at": address_at.isoformat() if address_at else None,
        },
    )
    notifications.notify_roles(
        session,
        school_id=device.school_id,
        roles=TOLD,
        kind="loans.off_site",
        title=f"{device.asset_tag} seen outside school",
        body=f"{said} a network that is not one of the school's ({where}) at {seen}, and it "
        "is not on an approved home loan. Find out who has it.",
        link=f"/devices/{device.asset_tag}",
        devices=[device],
        at=at,
    )
    log.info("device %s seen off-site (%s)", device.id, source)
    return True
