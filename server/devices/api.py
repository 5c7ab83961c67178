"""JSON API for the register."""

from __future__ import annotations

from server.auth.permissions import Permission
from server.devices import services
from server.devices.models import Device, LocationChangeRequest
from server.devices.schemas import (
    DecisionIn,
    DeviceDetail,
    DeviceIn,
    DeviceList,
    DeviceOut,
    DevicePatch,
    DeviceQuery,
    DeviceSaved,
    EventOut,
    Issue,
    MoveIn,
    MoveList,
    MoveOut,
    PlaceOut,
    StatusIn,
)
from server.extensions import db_session
from server.openapi import current_api_user, endpoint


def _place(location: object) -> PlaceOut | None:
    if location is None:
        return None
    return PlaceOut(id=location.id, name=location.name, kind=location.kind.value)  # type: ignore[attr-defined]


def device_out(device: Device) -> DeviceOut:
    guard = device.reported_protection
    return DeviceOut(
        asset_tag=device.asset_tag,
        serial=device.serial,
        platform=device.platform,
        make=device.make,
        model=device.model,
        os_version=device.os_version,
        status=device.status,
        home_location=_place(device.home_location),
        home_slot=device.home_slot,
        current_location=_place(device.current_location),
        holder=device.holder.name if device.holder else None,
        purchase_date=device.purchase_date,
        purchase_cost_pence=device.purchase_cost_pence,
        supplier=device.supplier,
        warranty_until=device.warranty_until,
        last_seen_at=device.last_seen_at,
        photo_count=device.known_photo_count,
        photo_count_at=device.photo_count_at if device.known_photo_count is not None else None,
        passcode=guard.passcode if guard else None,
        storage_encrypted=guard.storage_encrypted if guard else None,
        protection_reported_at=guard.reported_at if guard else None,
        erased_at=device.erased_at,
    )


@endpoint(
    "/devices",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Search the register",
    tag="devices",
    query=DeviceQuery,
    response=DeviceList,
)
def list_devices(query: DeviceQuery) -> DeviceList:
    page = services.search_devices(db_session(), current_api_user().school_id, **query.model_dump())
    return DeviceList(
        items=[device_out(d) for d in page.items],
        total=page.total,
        total_exact=page.exact,
        page=page.page,
        per_page=page.per_page,
    )


@endpoint(
    "/devices/<asset_tag>",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="One device and its timeline",
    tag="devices",
    response=DeviceDetail,
)
def get_device(asset_tag: str) -> DeviceDetail:
    session = db_session()
    device = services.get_device(session, current_api_user().school_id, asset_tag)
    events = [
        EventOut(at=e.at, kind=e.kind, summary=e.summary, actor=e.actor.name if e.actor else None)
        for e in services.timeline(session, device)
    ]
    return DeviceDetail(**device_out(device).model_dump(), timeline=events)


def _saved(device: Device, check: services.Check) -> DeviceSaved:
    return DeviceSaved(device=device_out(device), warnings=[Issue(**w) for w in check.warnings])


@endpoint(
    "/devices",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Add a device to the register",
    tag="devices",
    body=DeviceIn,
    response=DeviceSaved,
    status=201,
)
def create_device(body: DeviceIn) -> DeviceSaved:
    device, check = services.create_device(
        db_session(), current_api_user(), services.DeviceFields(**body.model_dump())
    )
    return _saved(device, check)


@endpoint(
    "/devices/<asset_tag>",
    "PATCH",
    permission=Permission.DEVICES_WRITE,
    summary="Correct a device's details",
    tag="devices",
    body=DevicePatch,
    response=DeviceSaved,
)
def update_device(asset_tag: str, body: DevicePatch) -> DeviceSaved:
    session = db_session()
    user = current_api_user()
    device = services.get_device(session, user.school_id, asset_tag)
    device, check = services.update_device(
        session, user, device, body.model_dump(exclude_unset=True)
    )
    return _saved(device, check)


@endpoint(
    "/devices/<asset_tag>/status",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Move a device through its lifecycle",
    tag="devices",
    body=StatusIn,
    response=DeviceOut,
)
def change_status(asset_tag: str, body: StatusIn) -> DeviceOut:
    session = db_session()
    user = current_api_user()
    device = services.get_device(session, user.school_id, asset_tag)
    return device_out(services.change_status(session, user, device, body.status, body.reason))


def move_out(request: LocationChangeRequest) -> MoveOut:
    return MoveOut(
        id=request.id,
        asset_tag=request.device.asset_tag,
        from_location=request.from_location.name if request.from_location else None,
        to_location=request.to_location.name,
        to_slot=request.to_slot,
        reason=request.reason,
        status=request.status.value,
        requested_by=request.requested_by.name,
        requested_at=request.requested_at,
        decided_by=request.decided_by.name if request.decided_by else None,
        decided_at=request.decided_at,
        decision_reason=request.decision_reason,
    )


@endpoint(
    "/devices/<asset_tag>/move",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Ask for a device to live somewhere else (the SBM approves)",
    tag="devices",
    body=MoveIn,
    response=MoveOut,
    status=201,
)
def request_move(asset_tag: str, body: MoveIn) -> MoveOut:
    session = db_session()
    user = current_api_user()
    device = services.get_device(session, user.school_id, asset_tag)
    return move_out(
        services.request_home_change(
            session, user, device, body.location_id, body.slot, body.reason
        )
    )


@endpoint(
    "/moves",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Requested home moves and their history",
    tag="devices",
    response=MoveList,
)
def list_moves() -> MoveList:
    requests = services.move_requests(db_session(), current_api_user().school_id)
    return MoveList(items=[move_out(r) for r in requests])


@endpoint(
    "/moves/<int:request_id>/decision",
    "POST",
    permission=Permission.LOCATIONS_APPROVE,
    summary="Approve or decline a move (SBM)",
    tag="devices",
    body=DecisionIn,
    response=MoveOut,
)
def decide_move(request_id: int, body: DecisionIn) -> MoveOut:
    return move_out(
        services.decide_home_change(
            db_session(), current_api_user(), request_id, approve=body.approve, reason=body.reason
        )
    )
