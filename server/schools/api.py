"""JSON API for the location tree and the school's terms."""

from __future__ import annotations

from collections.abc import Sequence

from server.auth.permissions import Permission
from server.devices.models import Device
from server.extensions import db_session
from server.openapi import current_api_user, endpoint
from server.schools import services
from server.schools.models import Location, Term
from server.schools.schemas import (
    Deleted,
    LocationDetail,
    LocationIn,
    LocationList,
    LocationOut,
    LocationPatch,
    PlacedDevice,
    SlotOut,
    TermList,
    TermOut,
    TermPatch,
)


def location_out(location: Location, counts: dict[int, tuple[int, int]]) -> LocationOut:
    home, here = counts.get(location.id, (0, 0))
    return LocationOut(
        id=location.id,
        name=location.name,
        kind=location.kind,
        parent_id=location.parent_id,
        path=services.location_path(location),
        capacity=location.capacity,
        code=location.code,
        devices_home=home,
        devices_here=here,
    )


def _placed(devices: Sequence[Device]) -> list[PlacedDevice]:
    return [
        PlacedDevice(
            asset_tag=d.asset_tag,
            model=d.model,
            status=d.status,
            home_location_id=d.home_location_id,
            home_slot=d.home_slot,
            current_location_id=d.current_location_id,
            holder=d.holder.name if d.holder else None,
        )
        for d in devices
    ]


@endpoint(
    "/locations",
    "GET",
    permission=Permission.LOCATIONS_READ,
    summary="Sites, rooms, trolleys, safes and cupboards",
    tag="locations",
    response=LocationList,
)
def list_locations() -> LocationList:
    session = db_session()
    school_id = current_api_user().school_id
    counts = services.storage_counts(session, school_id)
    return LocationList(
        items=[location_out(loc, counts) for loc in services.locations(session, school_id)]
    )


@endpoint(
    "/locations/<int:location_id>",
    "GET",
    permission=Permission.LOCATIONS_READ,
    summary="One place: its slots, the devices that live there and those there now",
    tag="locations",
    response=LocationDetail,
)
def get_location(location_id: int) -> LocationDetail:
    session = db_session()
    school_id = current_api_user().school_id
    location = services.get_location(session, school_id, location_id)
    counts = services.storage_counts(session, school_id)
    devices = services.location_devices(session, location)
    return LocationDetail(
        **location_out(location, counts).model_dump(),
        children=[location_out(c, counts) for c in services.children_of(session, location)],
        slots=[
            SlotOut(number=s.number, asset_tag=s.device.asset_tag if s.device else None)
            for s in devices.slots
        ],
        free_slots=devices.free_slots,
        living_here=_placed(devices.home),
        here_now=_placed(devices.here),
    )


@endpoint(
    "/locations",
    "POST",
    permission=Permission.LOCATIONS_WRITE,
    summary="Add a site, building, room, trolley, safe or cupboard",
    tag="locations",
    body=LocationIn,
    response=LocationOut,
    status=201,
)
def create_location(body: LocationIn) -> LocationOut:
    session = db_session()
    location = services.create_location(session, actor=current_api_user(), **body.model_dump())
    return location_out(location, {})


@endpoint(
    "/locations/<int:location_id>",
    "PATCH",
    permission=Permission.LOCATIONS_WRITE,
    summary="Rename a place, change its capacity or move it under another place",
    tag="locations",
    body=LocationPatch,
    response=LocationOut,
)
def edit_location(location_id: int, body: LocationPatch) -> LocationOut:
    session = db_session()
    user = current_api_user()
    location = services.edit_location(
        session, actor=user, location_id=location_id, changes=body.model_dump(exclude_unset=True)
    )
    return location_out(location, services.storage_counts(session, user.school_id))


@endpoint(
    "/locations/<int:location_id>",
    "DELETE",
    permission=Permission.LOCATIONS_WRITE,
    summary="Delete a place that is empty and has nothing inside it",
    tag="locations",
    response=Deleted,
)
def delete_location(location_id: int) -> Deleted:
    services.delete_location(db_session(), actor=current_api_user(), location_id=location_id)
    return Deleted(deleted=True, id=location_id)


def term_out(term: Term) -> TermOut:
    return TermOut(
        id=term.id,
        name=term.name,
        starts_on=term.starts_on,
        half_term_starts_on=term.half_term_starts_on,
        half_term_ends_on=term.half_term_ends_on,
        ends_on=term.ends_on,
    )


@endpoint(
    "/terms",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="The school's terms and half terms",
    tag="school",
    response=TermList,
)
def list_terms() -> TermList:
    items = services.terms(db_session(), current_api_user().school_id)
    return TermList(items=[term_out(t) for t in items])


@endpoint(
    "/terms/<int:term_id>",
    "PATCH",
    permission=Permission.TERMS_MANAGE,
    summary="Correct a term's dates",
    tag="school",
    body=TermPatch,
    response=TermOut,
)
def edit_term(term_id: int, body: TermPatch) -> TermOut:
    term = services.update_term(
        db_session(),
        actor=current_api_user(),
        term_id=term_id,
        changes=body.model_dump(exclude_none=True),
    )
    return term_out(term)


@endpoint(
    "/terms/next-year",
    "POST",
    permission=Permission.TERMS_MANAGE,
    summary="Add next academic year's terms with the usual English dates",
    tag="school",
    response=TermList,
    status=201,
)
def add_next_year() -> TermList:
    added = services.add_next_year_terms(db_session(), actor=current_api_user())
    return TermList(items=[term_out(t) for t in added])
