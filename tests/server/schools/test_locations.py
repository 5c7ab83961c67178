"""Editing the location tree: every rule for adding, renaming, resizing, moving and deleting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.devices import services as register
from server.devices.models import Device, DeviceStatus
from server.errors import Conflict, NotFound, ValidationFailed
from server.notifications.models import Notification
from server.schools import services
from server.schools.models import Location, LocationKind, School
from tests.server.schools.conftest import Estate

K = LocationKind


def trail(session: Session, action: str) -> list[ActivityEntry]:
    return list(
        session.scalars(
            select(ActivityEntry).where(ActivityEntry.action == action).order_by(ActivityEntry.seq)
        )
    )


def add(session: Session, actor: User, **values: object) -> Location:
    return services.create_location(session, actor=actor, **values)  # type: ignore[arg-type]


def test_safes_and_cupboards_are_places_devices_live_in(
    session: Session, sbm: User, estate: Estate
) -> None:
    """P-TROLLEY-3: class teachers' iPads in a safe or lockable cupboard, like any trolley."""
    safe = add(
        session, sbm, kind=K.SAFE, name="Head's safe", parent_id=estate.office.id, capacity=6
    )
    cupboard = add(
        session, sbm, kind=K.CUPBOARD, name="Year 4 cupboard", parent_id=estate.year4.id, capacity=3
    )
    assert safe.is_storage and cupboard.is_storage and safe.capacity == 6
    assert services.location_path(cupboard) == (
        "Oakfield Road › Main building › Year 4 classroom › Year 4 cupboard"
    )
    [entry, _] = trail(session, "location.created")[-2:]
    assert entry.actor_id == sbm.id and entry.details == {
        "kind": "safe",
        "name": "Head's safe",
        "parent_id": estate.office.id,
        "capacity": 6,
    }


@pytest.mark.parametrize(
    ("kind", "parent", "ok"),
    [
        (K.SITE, None, True),
        (K.SITE, "site", False),
        (K.BUILDING, "site", True),
        (K.BUILDING, None, False),
        (K.BUILDING, "building", False),
        (K.ROOM, None, True),  # a one-building school need not invent a site
        (K.ROOM, "site", True),
        (K.ROOM, "building", True),
        (K.ROOM, "year4", False),
        (K.TROLLEY, "year4", True),
        (K.TROLLEY, "building", True),
        (K.TROLLEY, None, False),
        (K.SAFE, "trolley", False),
        (K.CUPBOARD, "safe", False),
        (K.CUPBOARD, "site", True),
    ],
)
def test_kinds_sit_only_in_sensible_parents(
    session: Session, sbm: User, estate: Estate, kind: K, parent: str | None, ok: bool
) -> None:
    parent_id = getattr(estate, parent).id if parent else None
    capacity = 5 if kind in (K.TROLLEY, K.SAFE, K.CUPBOARD) else None
    values = {"kind": kind, "name": "New place", "parent_id": parent_id, "capacity": capacity}
    if ok:
        assert add(session, sbm, **values).parent_id == parent_id
    else:
        with pytest.raises(ValidationFailed, match=f"A {kind.value} can only sit inside"):
            add(session, sbm, **values)


def test_capacity_and_names_when_adding(session: Session, sbm: User, estate: Estate) -> None:
    office = estate.office.id
    for capacity in (None, 0, 201):
        with pytest.raises(ValidationFailed, match="capacity between 1 and 200"):
            add(session, sbm, kind=K.TROLLEY, name="T", parent_id=office, capacity=capacity)
    with pytest.raises(ValidationFailed, match="Only trolleys, safes and cupboards"):
        add(session, sbm, kind=K.ROOM, name="Hall", parent_id=estate.building.id, capacity=3)
    with pytest.raises(ValidationFailed, match="Give the location a name"):
        add(session, sbm, kind=K.ROOM, name="   ", parent_id=estate.building.id)
    with pytest.raises(Conflict, match="already a place called 'office safe' in School office"):
        add(session, sbm, kind=K.SAFE, name="office  safe", parent_id=office, capacity=2)
    with pytest.raises(ValidationFailed, match="does not exist in your school"):
        add(session, sbm, kind=K.ROOM, name="Hall", parent_id=999_999)
    add(session, sbm, kind=K.ROOM, name="Ystafell Ŵyn", parent_id=estate.building.id)
    with pytest.raises(Conflict, match="already a place called"):
        add(session, sbm, kind=K.ROOM, name="Ystafell Ŵyn", parent_id=estate.building.id)
    # The same name elsewhere in the tree is fine.
    assert add(session, sbm, kind=K.SAFE, name="Office safe", parent_id=estate.year4.id, capacity=2)


def test_rename_and_code_are_recorded(session: Session, sbm: User, estate: Estate) -> None:
    renamed = services.edit_location(
        session,
        actor=sbm,
        location_id=estate.trolley.id,
        changes={"name": " Year 4  iPad trolley ", "code": "T4"},
    )
    assert renamed.name == "Year 4 iPad trolley" and renamed.code == "T4"
    [entry] = trail(session, "location.edited")
    assert entry.details["changes"] == {
        "name": ["Year 4 trolley", "Year 4 iPad trolley"],
        "code": [None, "T4"],
    }
    for name, error in [("", ValidationFailed), ("x" * 121, ValidationFailed)]:
        with pytest.raises(error):
            services.edit_location(
                session, actor=sbm, location_id=estate.safe.id, changes={"name": name}
            )
    with pytest.raises(Conflict, match="already a place called"):
        services.edit_location(
            session, actor=sbm, location_id=estate.safe.id, changes={"name": "Stock Cupboard"}
        )
    with pytest.raises(ValidationFailed, match="Only the name, capacity, parent and code"):
        services.edit_location(
            session, actor=sbm, location_id=estate.safe.id, changes={"kind": "room"}
        )
    # Nothing changed: nothing recorded.
    services.edit_location(session, actor=sbm, location_id=estate.safe.id, changes={"code": None})
    assert len(trail(session, "location.edited")) == 1


def test_capacity_never_drops_below_what_lives_there(
    session: Session, sbm: User, estate: Estate, make_device: Callable[..., Device]
) -> None:
    """P-TROLLEY-3: a safe cannot be made smaller than the devices kept in it."""
    safe = estate.safe
    make_device(home=safe, home_slot=1)
    make_device(home=safe, home_slot=3)
    make_device(home=safe, status=DeviceStatus.DISPOSED)  # gone: does not count

    def resize(capacity: int | None) -> Location:
        return services.edit_location(
            session, actor=sbm, location_id=safe.id, changes={"capacity": capacity}
        )

    with pytest.raises(ValidationFailed, match="2 devices live in Office safe"):
        resize(1)
    with pytest.raises(ValidationFailed, match="Slot 3 in Office safe is in use"):
        resize(2)
    with pytest.raises(ValidationFailed, match="capacity between 1 and 200"):
        resize(None)
    assert resize(3).capacity == 3
    [entry] = trail(session, "location.edited")
    assert entry.details["changes"] == {"capacity": [4, 3]}
    with pytest.raises(ValidationFailed, match="Only trolleys, safes and cupboards"):
        services.edit_location(
            session, actor=sbm, location_id=estate.office.id, changes={"capacity": 5}
        )


def test_moving_a_place_keeps_the_tree_sound(
    session: Session, sbm: User, estate: Estate, other_school: School
) -> None:
    def move(location: Location, parent: Location | int | None) -> Location:
        parent_id = parent.id if isinstance(parent, Location) else parent
        return services.edit_location(
            session, actor=sbm, location_id=location.id, changes={"parent_id": parent_id}
        )

    moved = move(estate.trolley, estate.office)
    assert moved.parent_id == estate.office.id
    assert services.location_path(moved) == "Oakfield Road › Main building › School office › " + (
        "Year 4 trolley"
    )
    [entry] = trail(session, "location.edited")
    assert entry.details["changes"] == {"parent_id": [estate.year4.id, estate.office.id]}
    with pytest.raises(ValidationFailed, match="cannot go inside itself"):
        move(estate.office, estate.office)
    with pytest.raises(ValidationFailed, match="cannot go inside itself"):
        move(estate.site, estate.building)
    with pytest.raises(ValidationFailed, match="A room can only sit inside"):
        move(estate.office, estate.year4)
    with pytest.raises(ValidationFailed, match="A safe can only sit inside"):
        move(estate.safe, estate.trolley)
    with pytest.raises(ValidationFailed, match="A safe can only sit inside"):
        move(estate.safe, None)
    theirs = services.add_location(
        session, actor=None, school_id=other_school.id, kind=K.ROOM, name="Their hall"
    )
    session.commit()
    with pytest.raises(ValidationFailed, match="does not exist in your school"):
        move(estate.safe, theirs.id)
    services.add_location(
        session,
        actor=None,
        school_id=sbm.school_id,
        kind=K.SAFE,
        name="Office safe",
        parent=estate.year4,
        capacity=1,
    )
    session.commit()
    with pytest.raises(Conflict, match="already a place called 'Office safe' in Year 4"):
        move(estate.safe, estate.year4)
    assert move(estate.office, None).parent_id is None  # a room may sit at the top


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.ADMIN, Role.SBM])
def test_moving_a_trolley_with_devices_tells_the_sbm(
    session: Session,
    make_user: Callable[..., User],
    estate: Estate,
    make_device: Callable[..., Device],
    role: Role,
) -> None:
    """P-REG-2: moving a trolley moves its devices, so the SBM is told (unless they did it)."""
    sbm = make_user(Role.SBM)
    mover = sbm if role is Role.SBM else make_user(role)
    make_device(home=estate.trolley)
    services.edit_location(
        session, actor=mover, location_id=estate.trolley.id, changes={"parent_id": estate.office.id}
    )
    told = session.scalars(select(Notification).where(Notification.user_id == sbm.id)).all()
    if role is Role.SBM:
        assert told == []
    else:
        [notice] = told
        assert notice.title == "Year 4 trolley has moved"
        assert "1 device live there" in notice.body and "School office" in notice.body
        assert notice.link == f"/locations/{estate.trolley.id}"
    # An empty place moves without a notice.
    services.edit_location(
        session, actor=mover, location_id=estate.cupboard.id, changes={"parent_id": estate.year4.id}
    )
    assert len(session.scalars(select(Notification)).all()) == len(told)


def test_delete_only_what_is_empty(
    session: Session,
    sbm: User,
    estate: Estate,
    make_device: Callable[..., Device],
) -> None:
    def delete(location: Location) -> None:
        services.delete_location(session, actor=sbm, location_id=location.id)

    with pytest.raises(Conflict, match="has 2 places inside it"):
        delete(estate.office)
    device = make_device(home=estate.trolley)
    with pytest.raises(Conflict, match=r"1 device .* lives in Year 4 trolley"):
        delete(estate.trolley)
    device.status = DeviceStatus.DISPOSED
    session.commit()
    with pytest.raises(Conflict, match="disposed ones included"):
        delete(estate.trolley)
    visitor = make_device(home=estate.trolley)
    visitor.current_location_id = estate.safe.id
    session.commit()
    with pytest.raises(Conflict, match="1 device is in Office safe now"):
        delete(estate.safe)
    store = services.create_location(
        session, actor=sbm, kind=K.ROOM, name="Store", parent_id=estate.building.id
    )
    delete(store)
    assert session.get(Location, store.id) is None
    [gone] = trail(session, "location.deleted")
    assert gone.target_id == str(store.id) and gone.actor_id == sbm.id
    assert gone.details == {
        "kind": "room",
        "name": "Store",
        "parent_id": estate.building.id,
        "capacity": None,
    }


def test_a_place_named_in_past_moves_is_kept(
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    estate: Estate,
    make_device: Callable[..., Device],
) -> None:
    """P-REG-2: the history of moves keeps pointing at real places."""
    teacher = make_user(Role.TEACHER)
    device = make_device(home=estate.trolley)
    waiting = register.request_home_change(session, teacher, device, estate.safe.id, None, "Safe")
    with pytest.raises(Conflict, match="waiting for the school business manager"):
        services.delete_location(session, actor=sbm, location_id=estate.safe.id)
    register.decide_home_change(session, sbm, waiting.id, approve=True)
    register.request_home_change(session, sbm, device, estate.trolley.id, None, "Back again")
    device.current_location_id = estate.trolley.id
    session.commit()
    with pytest.raises(Conflict, match="past moves"):
        services.delete_location(session, actor=sbm, location_id=estate.safe.id)
    session.rollback()
    assert session.get(Location, estate.safe.id) is not None
    assert trail(session, "location.deleted") == []


def test_home_and_here_now_with_the_slots(
    session: Session, estate: Estate, make_device: Callable[..., Device], sbm: User
) -> None:
    """P-REG-3: for any place, which devices live there and which are there right now."""
    safe = estate.safe
    first = make_device(asset_tag="S-1", home=safe, home_slot=1)
    out = make_device(asset_tag="S-3", home=safe, home_slot=3)
    out.current_location_id = estate.trolley.id
    visitor = make_device(asset_tag="T-9", home=estate.trolley)
    visitor.current_location_id = safe.id
    make_device(asset_tag="S-X", home=safe, status=DeviceStatus.DISPOSED)
    session.commit()
    placed = services.location_devices(session, safe)
    assert [d.asset_tag for d in placed.home] == ["S-1", "S-3"]
    assert [d.asset_tag for d in placed.here] == ["S-1", "T-9"]
    assert [(s.number, s.device.asset_tag if s.device else None) for s in placed.slots] == [
        (1, "S-1"),
        (2, None),
        (3, "S-3"),
        (4, None),
    ]
    assert placed.free_slots == [2, 4]
    assert services.location_devices(session, estate.office).slots == []
    assert first.id and services.descendant_ids(session, estate.site) == {
        estate.building.id,
        estate.year4.id,
        estate.office.id,
        estate.trolley.id,
        estate.safe.id,
        estate.cupboard.id,
    }


def test_unknown_and_other_schools_places(
    session: Session, sbm: User, estate: Estate, other_school: School
) -> None:
    theirs = services.add_location(
        session, actor=None, school_id=other_school.id, kind=K.ROOM, name="Their hall"
    )
    session.commit()
    for location_id in (theirs.id, 999_999):
        with pytest.raises(NotFound):
            services.edit_location(
                session, actor=sbm, location_id=location_id, changes={"name": "Mine"}
            )
        with pytest.raises(NotFound):
            services.delete_location(session, actor=sbm, location_id=location_id)
        with pytest.raises(NotFound):
            services.get_location(session, sbm.school_id, location_id)
