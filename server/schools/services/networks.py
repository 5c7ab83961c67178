"""The school's own networks, by site: what "on site" means for a device's reported network."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import User
from server.errors import NotFound, ValidationFailed
from server.schools.models import Location, LocationKind, SchoolNetwork

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# An SSID is at most 32 bytes (IEEE 802.11).
MAX_SSID_BYTES = 32


def networks(session: Session, school_id: int) -> Sequence[SchoolNetwork]:
    """The school's networks, by site, then Wi-Fi name, then address range."""
    return session.scalars(
        select(SchoolNetwork)
        .where(SchoolNetwork.school_id == school_id)
        .options(joinedload(SchoolNetwork.site))
        .order_by(SchoolNetwork.site_id, SchoolNetwork.ssid, SchoolNetwork.public_range)
    ).all()


def parse_range(text: str) -> str:
    """A public address or range as the school types it ("81.2.69.160" or "81.2.69.0/24")."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValidationFailed(
            f"“{text.strip()}” is not an internet address or range, such as 81.2.69.0/24."
        ) from None


def add_network(
    session: Session,
    actor: User,
    *,
    site_id: int | None,
    ssid: str = "",
    public_range: str = "",
) -> SchoolNetwork:
    """List a Wi-Fi name or a public address range as the school's (commits)."""
    ssid = ssid.strip()
    if not ssid and not public_range.strip():
        raise ValidationFailed("Give the Wi-Fi name, the school's internet address, or both.")
    if len(ssid.encode()) > MAX_SSID_BYTES:
        raise ValidationFailed("A Wi-Fi name is at most 32 characters.")
    site = None
    if site_id is not None:
        site = session.get(Location, site_id)
        if site is None or site.school_id != actor.school_id or site.kind != LocationKind.SITE:
            raise NotFound("That site does not exist.")
    network = SchoolNetwork(
        school_id=actor.school_id,
        site=site,
        ssid=ssid or None,
        public_range=parse_range(public_range) if public_range.strip() else None,
    )
    session.add(network)
    session.flush()
    record(
        session,
        actor=actor,
        action="school_network.added",
        school_id=actor.school_id,
        target_type="school_network",
        target_id=network.id,
        details={"site_id": site_id, "ssid": network.ssid, "public_range": network.public_range},
    )
    session.commit()
    log.info("network %s listed for school %s", network.id, actor.school_id)
    return network


def remove_network(session: Session, actor: User, network_id: int) -> None:
    """Stop counting a network as the school's (commits)."""
    network = session.get(SchoolNetwork, network_id)
    if network is None or network.school_id != actor.school_id:
        raise NotFound("That network is not on the school's list.")
    record(
        session,
        actor=actor,
        action="school_network.removed",
        school_id=actor.school_id,
        target_type="school_network",
        target_id=network.id,
        details={"ssid": network.ssid, "public_range": network.public_range},
    )
    session.delete(network)
    session.commit()


@dataclass(frozen=True)
class NetworkList:
    """A school's listed Wi-Fi names and public ranges, loaded once to judge many reports."""

    names: frozenset[str]
    ranges: tuple[IPNetwork, ...]

    def judge(
        self,
        *,
        ssid: str | None = None,
        public_address: str | None = None,
        extra_ranges: Sequence[str] = (),
    ) -> bool | None:
        """Whether a reported network is one of the school's; None with nothing to judge by."""
        # A Wi-Fi name or a public address on the list is on site. With nothing listed of the
        # kind the device reported, the answer is not known, never "off-site".
        ranges = self.ranges + tuple(ipaddress.ip_network(r) for r in extra_ranges)
        verdicts: list[bool] = []
        if ssid and self.names:
            verdicts.append(ssid in self.names)
        if public_address and ranges:
            try:
                address = ipaddress.ip_address(public_address)
            except ValueError:
                address = None
            if address is not None:
                verdicts.append(any(address in r for r in ranges))
        if not verdicts:
            return None
        return any(verdicts)


def network_lists(session: Session, school_ids: Iterable[int]) -> dict[int, NetworkList]:
    """Each school's network list, in one query (a school listing none gets an empty list)."""
    wanted = sorted(set(school_ids))
    names: dict[int, set[str]] = {school_id: set() for school_id in wanted}
    ranges: dict[int, list[IPNetwork]] = {school_id: [] for school_id in wanted}
    rows = session.execute(
        select(SchoolNetwork.school_id, SchoolNetwork.ssid, SchoolNetwork.public_range).where(
            SchoolNetwork.school_id.in_(wanted)
        )
    )
    for school_id, ssid, public_range in rows:
        if ssid:
            names[school_id].add(ssid)
        if public_range:
            ranges[school_id].append(ipaddress.ip_network(public_range))
    return {
        school_id: NetworkList(frozenset(names[school_id]), tuple(ranges[school_id]))
        for school_id in wanted
    }


def on_school_network(
    session: Session,
    school_id: int,
    *,
    ssid: str | None = None,
    public_address: str | None = None,
    extra_ranges: Sequence[str] = (),
) -> bool | None:
    """Whether a reported network is one of the school's (see `NetworkList.judge`)."""
    listed = network_lists(session, [school_id])[school_id]
    return listed.judge(ssid=ssid, public_address=public_address, extra_ranges=extra_ranges)
