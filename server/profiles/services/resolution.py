"""Which profile applies to a device, and why, in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.profiles.models import (
    DeviceGroup,
    DeviceGroupMember,
    ProfileAssignment,
    ProfileVersion,
    TargetType,
)
from server.profiles.pages import Resolution
from server.profiles.services.lookups import _ancestors, _places
from server.schools.models import Location


@dataclass
class _Plan:
    """Everything resolution needs for one school, loaded in a handful of queries."""

    school_id: int
    assignments: dict[tuple[TargetType, int], ProfileAssignment]
    latest: dict[int, ProfileVersion]
    places: dict[int, Location]
    groups: dict[int, str]
    memberships: dict[int, list[int]] = field(default_factory=dict)

    def ancestors(self, location_id: int | None) -> list[Location]:
        """The place and the places it is in, nearest first."""
        return _ancestors(self.places, location_id)


def _plan(session: Session, school_id: int, device_ids: Sequence[int] | None) -> _Plan:
    assignments = {
        (a.target_type, a.target_id): a
        for a in session.scalars(
            select(ProfileAssignment).where(ProfileAssignment.school_id == school_id)
        )
    }
    profile_ids = {a.profile_id for a in assignments.values()}
    latest: dict[int, ProfileVersion] = {}
    if profile_ids:
        newest = (
            select(ProfileVersion.profile_id, func.max(ProfileVersion.number).label("n"))
            .where(ProfileVersion.profile_id.in_(profile_ids))
            .group_by(ProfileVersion.profile_id)
            .subquery()
        )
        for version in session.scalars(
            select(ProfileVersion).join(
                newest,
                and_(
                    ProfileVersion.profile_id == newest.c.profile_id,
                    ProfileVersion.number == newest.c.n,
                ),
            )
        ):
            latest[version.profile_id] = version
    places = _places(session, school_id)
    groups = dict(
        session.execute(
            select(DeviceGroup.id, DeviceGroup.name).where(DeviceGroup.school_id == school_id)
        ).all()
    )
    members = select(DeviceGroupMember.device_id, DeviceGroupMember.group_id).join(
        DeviceGroup, DeviceGroup.id == DeviceGroupMember.group_id
    )
    members = members.where(DeviceGroup.school_id == school_id)
    if device_ids is not None:
        members = members.where(DeviceGroupMember.device_id.in_(device_ids))
    memberships: dict[int, list[int]] = {}
    for device_id, group_id in session.execute(members):
        memberships.setdefault(device_id, []).append(group_id)
    return _Plan(school_id, assignments, latest, places, groups, memberships)


def _resolve(plan: _Plan, device_id: int, home_location_id: int | None) -> Resolution:
    """Most specific wins: device, then group, then the nearest place up the tree, then school."""
    chain: list[str] = []
    chosen: tuple[ProfileVersion, str, tuple[TargetType, int]] | None = None

    def consider(key: tuple[TargetType, int], level: str, reason: str) -> None:
        nonlocal chosen
        assignment = plan.assignments.get(key)
        version = plan.latest.get(assignment.profile_id) if assignment else None
        if version is None:
            chain.append(f"{level}: nothing assigned")
            return
        name = version.profile.name
        if chosen is None:
            chosen = (version, reason, key)
            chain.append(f"{level}: {name} (applies)")
        else:
            chain.append(f"{level}: {name} (a more specific profile wins)")

    consider((TargetType.DEVICE, device_id), "This device", "Assigned to this device itself")
    group_ids = sorted(plan.memberships.get(device_id, []), key=lambda g: plan.groups.get(g, ""))
    for group_id in group_ids:
        name = plan.groups.get(group_id, "?")
        consider(
            (TargetType.GROUP, group_id),
            f"Group {name}",
            f"Assigned to the group {name}, which this device is in",
        )
    if not group_ids:
        chain.append("Groups: this device is in none")
    places = plan.ancestors(home_location_id)
    if not places:
        chain.append("Home: not set, so no place applies")
    home = places[0] if places else None
    for index, place in enumerate(places):
        kind = place.kind.value
        if index == 0:
            level = f"{place.name} ({kind}, this device's home)"
            reason = f"Assigned to {place.name} (this device's home)"
        else:
            level = f"{place.name} ({kind})"
            reason = (
                f"Assigned to {place.name}, the {kind} that this device's home "
                f"({home.name if home else '?'}) is in"
            )
        consider((TargetType.LOCATION, place.id), level, reason)
    consider((TargetType.SCHOOL, plan.school_id), "Whole school", "The school's default profile")
    if chosen is None:
        return Resolution(
            None,
            "No profile is assigned to this device, its groups, its places or the school.",
            chain,
        )
    version, reason, key = chosen
    return Resolution(version, reason, chain, key)


def resolve(session: Session, device: Device) -> Resolution:
    """Which profile applies to a device and why."""
    plan = _plan(session, device.school_id, [device.id])
    return _resolve(plan, device.id, device.home_location_id)
