"""The network each device last said it was on, and whether that is one of the school's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device, DeviceNetwork
from server.events import NetworkSighting
from server.schools.services.networks import NetworkList, network_lists


@dataclass(frozen=True)
class NetworkChange:
    """What one report changed, and the public address (with its own time) it was judged by."""

    network: DeviceNetwork
    went_off_site: bool
    public_address: str | None = None  # None: no address current on this network
    public_address_at: datetime | None = None


def record_networks(
    session: Session, sightings: Sequence[NetworkSighting], *, extra_ranges: tuple[str, ...] = ()
) -> list[NetworkChange]:
    """Keep and judge, in order, the networks a batch of reports names (joins the transaction)."""
    if not sightings:
        return []
    # One query for the batch's rows and one for its schools' lists, not two per report.
    device_ids = sorted({sighting.device.id for sighting in sightings})
    rows = {
        row.device_id: row
        for row in session.scalars(
            select(DeviceNetwork).where(DeviceNetwork.device_id.in_(device_ids))
        )
    }
    lists = network_lists(session, {sighting.device.school_id for sighting in sightings})
    changes = []
    for sighting in sightings:
        device = sighting.device
        row = rows.get(device.id)
        if row is None:
            row = DeviceNetwork(
                device_id=device.id,
                school_id=device.school_id,
                reported_at=sighting.at,
                network_since=sighting.at,
            )
            session.add(row)
            rows[device.id] = row
        changes.append(_apply(row, sighting, lists[device.school_id], extra_ranges))
    session.flush()
    return changes


def _apply(
    row: DeviceNetwork,
    sighting: NetworkSighting,
    listed: NetworkList,
    extra_ranges: tuple[str, ...],
) -> NetworkChange:
    """One report's facts on its device's row, and the verdict they give."""
    if row.reported_at > sighting.at:
        return NetworkChange(row, False)  # an older report arriving late changes nothing
    was_off_site = bool(row.off_site)
    said = (sighting.source, sighting.ssid, sighting.gateway)
    if said != (row.source, row.ssid, row.gateway):
        row.network_since = sighting.at
    row.source, row.ssid, row.gateway = said
    row.reported_at = sighting.at
    # Only the server's own sight gives the address (a kiosk's broker report cannot carry it).
    if sighting.public_address is not None:
        row.public_address, row.public_address_at = sighting.public_address, sighting.at
    # The address belongs to the network it was seen on: once the device names another, it
    # says nothing about where the device is until the next check-in.
    current = row.public_address_at is not None and row.public_address_at >= row.network_since
    address = row.public_address if current else None
    verdict = listed.judge(ssid=row.ssid, public_address=address, extra_ranges=extra_ranges)
    row.off_site = None if verdict is None else not verdict
    if row.off_site and not was_off_site:
        row.off_site_since = sighting.at
    elif not row.off_site:
        row.off_site_since = None
    went_off_site = bool(row.off_site) and not was_off_site
    return NetworkChange(row, went_off_site, address, row.public_address_at if current else None)


def network_of(session: Session, device: Device) -> DeviceNetwork | None:
    """The network the device last said it was on (None: it never said)."""
    return session.scalar(select(DeviceNetwork).where(DeviceNetwork.device_id == device.id))
