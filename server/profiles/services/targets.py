"""What a profile or an exception can be given to: the school, its places, groups and devices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.devices.models import Device
from server.devices.services import get_device
from server.errors import Conflict, NotFound, ValidationFailed
from server.profiles.models import DeviceGroup, DeviceGroupMember, TargetType
from server.profiles.services.lookups import (
    _ancestors,
    _commit,
    _in_school,
    _places,
    _require_manage,
    _require_staff,
)
from server.profiles.services.outbox import recompute_desired
from server.schools.models import Location
from server.schools.services import location_path


def device_by_tag(session: Session, school_id: int, asset_tag: str) -> Device:
    """A device of the school by its asset tag (404 otherwise)."""
    return get_device(session, school_id, asset_tag.strip())


def get_group(session: Session, school_id: int, group_id: int) -> DeviceGroup:
    """One of the school's device groups (404 otherwise)."""
    return _in_school(
        session, DeviceGroup, school_id, group_id, "There is no such device group in your school."
    )


def _device(session: Session, school_id: int, device_id: int) -> Device:
    return _in_school(
        session, Device, school_id, device_id, "There is no such device in your school."
    )


def describe_target(
    session: Session, school_id: int, target_type: TargetType, target_id: int
) -> str:
    """A target in words, checking it belongs to the school (404 otherwise)."""
    if target_type is TargetType.SCHOOL:
        if target_id != school_id:
            raise NotFound("That is not your school.")
        return "the whole school"
    if target_type is TargetType.LOCATION:
        place = _in_school(
            session, Location, school_id, target_id, "There is no such place in your school."
        )
        return location_path(place)
    if target_type is TargetType.GROUP:
        return f"the group {get_group(session, school_id, target_id).name}"
    return f"device {_device(session, school_id, target_id).asset_tag}"


def target_labels(
    session: Session, school_id: int, targets: Iterable[tuple[TargetType, int]]
) -> dict[tuple[TargetType, int], str]:
    """Words for many targets in three queries (lists of assignments and exceptions)."""
    wanted = set(targets)
    ids = {kind: {i for k, i in wanted if k is kind} for kind in TargetType}
    labels: dict[tuple[TargetType, int], str] = {}
    if ids[TargetType.LOCATION]:
        places = _places(session, school_id)
        for location_id in ids[TargetType.LOCATION]:
            if location_id in places:
                labels[(TargetType.LOCATION, location_id)] = _path(places, location_id)
    if ids[TargetType.GROUP]:
        for group_id, name in session.execute(
            select(DeviceGroup.id, DeviceGroup.name).where(
                DeviceGroup.school_id == school_id, DeviceGroup.id.in_(ids[TargetType.GROUP])
            )
        ):
            labels[(TargetType.GROUP, group_id)] = f"the group {name}"
    if ids[TargetType.DEVICE]:
        for device_id, tag in session.execute(
            select(Device.id, Device.asset_tag).where(
                Device.school_id == school_id, Device.id.in_(ids[TargetType.DEVICE])
            )
        ):
            labels[(TargetType.DEVICE, device_id)] = f"device {tag}"
    for target in wanted:
        if target[0] is TargetType.SCHOOL:
            labels[target] = "the whole school"
        labels.setdefault(target, "(removed)")
    return labels


def _path(places: dict[int, Location], location_id: int) -> str:
    return " › ".join(reversed([place.name for place in _ancestors(places, location_id)]))


def assignable_places(session: Session, school_id: int) -> list[tuple[int, str]]:
    """Every place of the school with its full path, for the assignment and exception forms."""
    places = _places(session, school_id)
    return sorted(((i, _path(places, i)) for i in places), key=lambda pair: pair[1])


def _affected(session: Session, kind: TargetType, target_id: int) -> list[int] | None:
    """The devices a change at a target can touch; None means "the whole school"."""
    if kind is TargetType.DEVICE:
        return [target_id]
    if kind is TargetType.GROUP:
        return list(
            session.scalars(
                select(DeviceGroupMember.device_id).where(DeviceGroupMember.group_id == target_id)
            )
        )
    return None


def list_groups(session: Session, actor: User) -> list[tuple[DeviceGroup, int]]:
    """The school's device groups with how many devices each holds."""
    _require_staff(actor)
    counts = (
        select(DeviceGroupMember.group_id, func.count().label("n"))
        .group_by(DeviceGroupMember.group_id)
        .subquery()
    )
    rows = session.execute(
        select(DeviceGroup, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == DeviceGroup.id)
        .where(DeviceGroup.school_id == actor.school_id)
        .order_by(DeviceGroup.name)
    ).all()
    return [(group, int(n)) for group, n in rows]


def group_members(session: Session, group: DeviceGroup) -> Sequence[Device]:
    """The devices in a group, by asset tag."""
    return session.scalars(
        select(Device)
        .join(DeviceGroupMember, DeviceGroupMember.device_id == Device.id)
        .where(DeviceGroupMember.group_id == group.id)
        .order_by(Device.asset_tag)
    ).all()


def create_group(session: Session, actor: User, name: str) -> DeviceGroup:
    """A new, empty device group."""
    _require_manage(actor)
    name = " ".join(name.split())
    if not name or len(name) > 120:
        raise ValidationFailed("Give the group a name of up to 120 characters.")
    exists = session.scalar(
        select(DeviceGroup.id).where(
            DeviceGroup.school_id == actor.school_id, DeviceGroup.name == name
        )
    )
    if exists is not None:
        raise Conflict(f"There is already a group called {name!r}.")
    group = DeviceGroup(school_id=actor.school_id, name=name)
    session.add(group)
    session.flush()
    record(
        session,
        actor=actor,
        action="device_group.created",
        school_id=actor.school_id,
        target_type="device_group",
        target_id=group.id,
        details={"name": name},
    )
    _commit(session)
    return group


def add_to_group(
    session: Session, actor: User, group: DeviceGroup, asset_tags: Iterable[str]
) -> int:
    """Add devices by asset tag; an unknown tag refuses the whole change. Returns how many new."""
    _require_manage(actor)
    if group.school_id != actor.school_id:
        raise NotFound("There is no such device group in your school.")
    tags = list(dict.fromkeys(t.strip() for t in asset_tags if t.strip()))
    if not tags:
        raise ValidationFailed("Give at least one asset tag.")
    if len(tags) > 500:
        raise ValidationFailed("Add at most 500 devices at a time.")
    found = dict(
        session.execute(
            select(Device.asset_tag, Device.id).where(
                Device.school_id == actor.school_id, Device.asset_tag.in_(tags)
            )
        ).all()
    )
    missing = [t for t in tags if t not in found]
    if missing:
        raise ValidationFailed(
            f"No device with these asset tags in your school: {', '.join(missing)}. "
            "Nothing was added."
        )
    present = set(
        session.scalars(
            select(DeviceGroupMember.device_id).where(
                DeviceGroupMember.group_id == group.id,
                DeviceGroupMember.device_id.in_(found.values()),
            )
        )
    )
    new_ids = [found[t] for t in tags if found[t] not in present]
    session.add_all(DeviceGroupMember(group_id=group.id, device_id=i) for i in new_ids)
    session.flush()
    if new_ids:
        record(
            session,
            actor=actor,
            action="device_group.devices_added",
            school_id=actor.school_id,
            target_type="device_group",
            target_id=group.id,
            details={"group": group.name, "asset_tags": [t for t in tags if found[t] in new_ids]},
        )
        recompute_desired(session, actor.school_id, new_ids)
    _commit(session)
    return len(new_ids)


def remove_from_group(session: Session, actor: User, group: DeviceGroup, device_id: int) -> None:
    """Take one device out of a group."""
    _require_manage(actor)
    if group.school_id != actor.school_id:
        raise NotFound("There is no such device group in your school.")
    member = session.get(DeviceGroupMember, (group.id, device_id))
    if member is None:
        raise NotFound("That device is not in this group.")
    device = _device(session, actor.school_id, device_id)
    session.delete(member)
    session.flush()
    record(
        session,
        actor=actor,
        action="device_group.device_removed",
        school_id=actor.school_id,
        target_type="device_group",
        target_id=group.id,
        details={"group": group.name, "asset_tag": device.asset_tag},
    )
    recompute_desired(session, actor.school_id, [device_id])
    _commit(session)
