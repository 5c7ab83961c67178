"""The school's location tree: sites, rooms, trolleys and what lives in them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import Role, User
from server.devices.models import ChangeRequestStatus, Device, DeviceStatus, LocationChangeRequest
from server.errors import Conflict, NotFound, ValidationFailed
from server.notifications import services as notifications
from server.schools.models import (
    ALLOWED_PARENTS,
    STORAGE_KINDS,
    Location,
    LocationKind,
)

log = logging.getLogger(__name__)

MAX_CAPACITY = 200


def add_location(
    session: Session,
    *,
    actor: User | None,
    school_id: int,
    kind: LocationKind,
    name: str,
    parent: Location | None = None,
    capacity: int | None = None,
    code: str | None = None,
) -> Location:
    """Add a place, keeping kinds in sensible parents (joins the caller's transaction)."""
    name = _check_name(name)
    if parent is not None and parent.school_id != school_id:
        raise NotFound("That parent location does not exist.")
    _check_parent_kind(kind, parent)
    _check_capacity_range(kind, capacity)
    _check_name_free(session, school_id, parent, name)
    location = Location(
        school_id=school_id,
        kind=kind,
        name=name,
        parent=parent,
        capacity=capacity,
        code=_clean_code(code),
    )
    session.add(location)
    session.flush()
    record(
        session,
        actor=actor,
        action="location.created",
        school_id=school_id,
        target_type="location",
        target_id=location.id,
        details={
            "kind": kind.value,
            "name": name,
            "parent_id": parent.id if parent else None,
            "capacity": capacity,
        },
    )
    return location


def create_location(
    session: Session,
    *,
    actor: User,
    kind: LocationKind,
    name: str,
    parent_id: int | None = None,
    capacity: int | None = None,
    code: str | None = None,
) -> Location:
    """Add a place in the actor's school (a trolley, safe or cupboard with its slots)."""
    parent = _parent_in_school(session, actor.school_id, parent_id)
    location = add_location(
        session,
        actor=actor,
        school_id=actor.school_id,
        kind=kind,
        name=name,
        parent=parent,
        capacity=capacity,
        code=code,
    )
    session.commit()
    log.info("location %s (%s) added in school %s", location.id, kind.value, actor.school_id)
    return location


# --- the rules every change of the tree keeps ---------------------------------------------------


def _check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationFailed("Give the location a name, such as 'Year 4 trolley'.")
    if len(name) > 120:
        raise ValidationFailed("A location's name can be up to 120 characters.")
    return name


def _clean_code(code: str | None) -> str | None:
    code = (code or "").strip()
    if len(code) > 32:
        raise ValidationFailed("A location's short code can be up to 32 characters.")
    return code or None


def _check_parent_kind(kind: LocationKind, parent: Location | None) -> None:
    parent_kind = parent.kind if parent else None
    if parent_kind not in ALLOWED_PARENTS[kind]:
        allowed = ", ".join(
            sorted(k.value if k else "the top level" for k in ALLOWED_PARENTS[kind])
        )
        raise ValidationFailed(f"A {kind.value} can only sit inside: {allowed}.")


def _check_capacity_range(kind: LocationKind, capacity: int | None) -> None:
    if kind in STORAGE_KINDS:
        if capacity is None or not 1 <= capacity <= MAX_CAPACITY:
            raise ValidationFailed(
                f"A {kind.value} needs a capacity between 1 and {MAX_CAPACITY} slots."
            )
    elif capacity is not None:
        raise ValidationFailed(
            f"Only trolleys, safes and cupboards have a capacity, not a {kind.value}."
        )


def _check_name_free(
    session: Session,
    school_id: int,
    parent: Location | None,
    name: str,
    existing: Location | None = None,
) -> None:
    """Two places with the same name side by side would be impossible to tell apart."""
    query = select(Location.id).where(
        Location.school_id == school_id,
        # SQLite's lower() knows only ASCII: the exact name is checked as well.
        or_(Location.name == name, func.lower(Location.name) == name.lower()),
        Location.parent_id == parent.id if parent else Location.parent_id.is_(None),
    )
    if existing is not None:
        query = query.where(Location.id != existing.id)
    if session.scalar(query) is not None:
        where = f"in {parent.name}" if parent else "at the top level"
        raise Conflict(f"There is already a place called {name!r} {where}.")


def _parent_in_school(session: Session, school_id: int, parent_id: int | None) -> Location | None:
    if parent_id is None:
        return None
    parent = session.scalar(
        select(Location).where(Location.id == parent_id, Location.school_id == school_id)
    )
    if parent is None:
        raise ValidationFailed(
            "That parent location does not exist in your school.",
            details=[{"field": "parent_id", "message": "No such place."}],
        )
    return parent


def _living_here(session: Session, location: Location) -> tuple[int, int | None]:
    """(devices that live here and are not disposed, the highest slot one of them uses)."""

    count, top_slot = session.execute(
        select(func.count(), func.max(Device.home_slot)).where(
            Device.school_id == location.school_id,
            Device.home_location_id == location.id,
            Device.status != DeviceStatus.DISPOSED,
        )
    ).one()
    return int(count or 0), top_slot


def _check_new_capacity(session: Session, location: Location, capacity: int | None) -> None:
    _check_capacity_range(location.kind, capacity)
    if capacity is None:
        return
    living, top_slot = _living_here(session, location)
    if capacity < living:
        raise ValidationFailed(
            f"{living} devices live in {location.name}, so it needs at least {living} slots. "
            "Move some devices first."
        )
    if top_slot is not None and capacity < top_slot:
        raise ValidationFailed(
            f"Slot {top_slot} in {location.name} is in use, so it needs at least {top_slot} "
            "slots. Move that device to a lower slot first."
        )


def _check_no_cycle(location: Location, parent: Location | None) -> None:
    node = parent
    while node is not None:
        if node.id == location.id:
            raise ValidationFailed(
                f"{location.name} cannot go inside itself or inside one of its own places."
            )
        node = node.parent


def _plain(value: object) -> object:
    return value.value if isinstance(value, LocationKind) else value


# --- editing and deleting -----------------------------------------------------------------------

LOCATION_EDITABLE = frozenset({"name", "capacity", "parent_id", "code"})


def edit_location(
    session: Session, *, actor: User, location_id: int, changes: Mapping[str, Any]
) -> Location:
    """Rename, resize or move a place under another parent; the tree's rules still hold."""
    unknown = set(changes) - LOCATION_EDITABLE
    if unknown:
        raise ValidationFailed(
            "Only the name, capacity, parent and code of a place can be changed.",
            details=[{"field": name, "message": "not editable"} for name in sorted(unknown)],
        )
    location = get_location(session, actor.school_id, location_id)
    before = {key: getattr(location, key) for key in changes}
    name = _check_name(changes["name"]) if "name" in changes else location.name
    code = _clean_code(changes["code"]) if "code" in changes else location.code
    parent = (
        _parent_in_school(session, actor.school_id, changes["parent_id"])
        if "parent_id" in changes
        else location.parent
    )
    if "parent_id" in changes:
        _check_no_cycle(location, parent)
        _check_parent_kind(location.kind, parent)
    if "capacity" in changes:
        _check_new_capacity(session, location, changes["capacity"])
    if "name" in changes or "parent_id" in changes:
        _check_name_free(session, actor.school_id, parent, name, existing=location)
    location.name = name
    location.code = code
    location.parent = parent
    if "capacity" in changes:
        location.capacity = changes["capacity"]
    session.flush()
    changed = {
        key: [_plain(before[key]), _plain(getattr(location, key))]
        for key in changes
        if before[key] != getattr(location, key)
    }
    if changed:
        record(
            session,
            actor=actor,
            action="location.edited",
            school_id=actor.school_id,
            target_type="location",
            target_id=location.id,
            details={"name": location.name, "changes": changed},
        )
        if "parent_id" in changed:
            _tell_sbm_of_move(session, actor, location)
    session.commit()
    return location


def _tell_sbm_of_move(session: Session, actor: User, location: Location) -> None:
    """Moving a trolley or safe moves the devices in it: the SBM is told (P-REG-2)."""

    if actor.role is Role.SBM:
        return
    inside = {location.id} | descendant_ids(session, location)
    living = (
        session.scalar(
            select(func.count()).where(
                Device.school_id == location.school_id,
                Device.home_location_id.in_(inside),
                Device.status != DeviceStatus.DISPOSED,
            )
        )
        or 0
    )
    if not living:
        return

    where = location.parent.name if location.parent else "the top level"
    notifications.notify_roles(
        session,
        school_id=location.school_id,
        roles=[Role.SBM],
        kind="location.moved",
        title=f"{location.name} has moved",
        body=f"{actor.name} moved {location.name} ({living} device"
        f"{'' if living == 1 else 's'} live there) to {where}.",
        link=f"/locations/{location.id}",
    )


def descendant_ids(session: Session, location: Location) -> set[int]:
    """Every place inside this one, however deep (one query per level; trees are shallow)."""
    found: set[int] = set()
    frontier = {location.id}
    while frontier:
        frontier = (
            set(
                session.scalars(
                    select(Location.id).where(
                        Location.school_id == location.school_id, Location.parent_id.in_(frontier)
                    )
                )
            )
            - found
        )
        found |= frontier
    return found


def delete_location(session: Session, *, actor: User, location_id: int) -> None:
    """Remove a place that nothing lives in, nothing is in now and that has no places inside."""

    location = get_location(session, actor.school_id, location_id)
    children = session.scalar(select(func.count()).where(Location.parent_id == location.id))
    if children:
        raise Conflict(
            f"{location.name} has {children} place{'' if children == 1 else 's'} inside it; "
            "move or delete those first."
        )
    living = session.scalar(
        select(func.count()).where(
            Device.school_id == location.school_id, Device.home_location_id == location.id
        )
    )
    if living:
        raise Conflict(
            f"{living} device{'' if living == 1 else 's'} (disposed ones included) "
            f"{'lives' if living == 1 else 'live'} in {location.name}; give "
            f"{'it' if living == 1 else 'them'} another home first, or rename the place."
        )
    here = session.scalar(
        select(func.count()).where(
            Device.school_id == location.school_id, Device.current_location_id == location.id
        )
    )
    if here:
        raise Conflict(
            f"{here} device{'' if here == 1 else 's'} {'is' if here == 1 else 'are'} in "
            f"{location.name} now; put {'it' if here == 1 else 'them'} back first."
        )
    waiting = session.scalar(
        select(func.count()).where(
            LocationChangeRequest.to_location_id == location.id,
            LocationChangeRequest.status == ChangeRequestStatus.PENDING,
        )
    )
    if waiting:
        raise Conflict(
            f"A move to {location.name} is waiting for the school business manager; "
            "it must be decided first."
        )
    details = {
        "kind": location.kind.value,
        "name": location.name,
        "parent_id": location.parent_id,
        "capacity": location.capacity,
    }
    try:
        with session.begin_nested():
            session.delete(location)
            session.flush()
    except IntegrityError:
        # Past moves, loans or audits still name it: history must keep pointing somewhere.
        raise Conflict(
            f"Records such as past moves, loans or audits still refer to {location.name}, "
            "so it cannot be deleted. You can rename it instead."
        ) from None
    record(
        session,
        actor=actor,
        action="location.deleted",
        school_id=actor.school_id,
        target_type="location",
        target_id=location_id,
        details=details,
    )
    session.commit()


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One numbered slot of a trolley, safe or cupboard and the device whose place it is."""

    number: int
    device: Device | None


@dataclass(frozen=True)
class LocationDevices:
    """Devices that live in a place (its register home) and those that are in it now."""

    home: Sequence[Device]
    here: Sequence[Device]
    slots: Sequence[Slot]

    @property
    def free_slots(self) -> list[int]:
        return [slot.number for slot in self.slots if slot.device is None]


def location_devices(session: Session, location: Location, limit: int = 500) -> LocationDevices:
    """Home vs here now for one place, with its numbered slots (disposed devices left out)."""

    def devices(column: Any) -> Sequence[Device]:
        return session.scalars(
            select(Device)
            .where(
                Device.school_id == location.school_id,
                column == location.id,
                Device.status != DeviceStatus.DISPOSED,
            )
            .options(
                joinedload(Device.home_location),
                joinedload(Device.current_location),
                joinedload(Device.holder),
            )
            .order_by(Device.asset_tag)
            .limit(limit)
        ).all()

    home = devices(Device.home_location_id)
    by_slot = {d.home_slot: d for d in home if d.home_slot is not None}
    slots = [Slot(n, by_slot.get(n)) for n in range(1, (location.capacity or 0) + 1)]
    return LocationDevices(home=home, here=devices(Device.current_location_id), slots=slots)


def children_of(session: Session, location: Location) -> Sequence[Location]:
    return session.scalars(
        select(Location)
        .where(Location.school_id == location.school_id, Location.parent_id == location.id)
        .order_by(Location.kind, Location.name)
    ).all()


def locations(session: Session, school_id: int) -> Sequence[Location]:
    return session.scalars(
        select(Location)
        .where(Location.school_id == school_id)
        .order_by(Location.kind, Location.name)
    ).all()


def get_location(session: Session, school_id: int, location_id: int) -> Location:
    location = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if location is None:
        raise NotFound("No such location in your school.")
    return location


def location_path(location: Location) -> str:
    parts = []
    node: Location | None = location
    while node is not None:
        parts.append(node.name)
        node = node.parent
    return " › ".join(reversed(parts))


def storage_counts(session: Session, school_id: int) -> dict[int, tuple[int, int]]:
    """For each trolley/safe/cupboard: (devices that live there, devices there now)."""

    homes = dict(
        session.execute(
            select(Device.home_location_id, func.count())
            .where(Device.school_id == school_id, Device.home_location_id.is_not(None))
            .group_by(Device.home_location_id)
        ).all()
    )
    here = dict(
        session.execute(
            select(Device.current_location_id, func.count())
            .where(Device.school_id == school_id, Device.current_location_id.is_not(None))
            .group_by(Device.current_location_id)
        ).all()
    )
    return {
        int(loc): (homes.get(loc, 0), here.get(loc, 0))
        for loc in set(homes) | set(here)
        if loc is not None
    }
