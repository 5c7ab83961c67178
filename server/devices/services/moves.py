"""Moving a device's home: asked for by staff, decided by the SBM (P-REG-2)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import Role, User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.devices.models import (
    ChangeRequestStatus,
    Device,
    DeviceStatus,
    LocationChangeRequest,
)
from server.devices.services.register import Check, _check_home, add_event
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.schools.services.clock import plural
from server.waiting import Waiting


def request_home_change(
    session: Session,
    actor: User,
    device: Device,
    location_id: int,
    slot: int | None,
    reason: str,
) -> LocationChangeRequest:
    """Propose a new home; the SBM's own change applies at once, anyone else's waits for them."""
    if not reason.strip():
        raise ValidationFailed("Say why the device should live somewhere else.")
    if device.status is DeviceStatus.DISPOSED:
        raise ValidationFailed(f"{device.asset_tag} has been disposed of.")
    if device.home_location_id == location_id and device.home_slot == slot:
        raise Conflict(f"{device.asset_tag} already lives there.")
    if pending_move(session, device) is not None:
        raise Conflict(f"There is already a move waiting for the SBM for {device.asset_tag}.")
    check = Check()
    _check_home(session, device.school_id, location_id, slot, check, device)
    check.raise_if_errors()
    request = LocationChangeRequest(
        school_id=device.school_id,
        device_id=device.id,
        from_location_id=device.home_location_id,
        to_location_id=location_id,
        to_slot=slot,
        reason=reason.strip(),
        requested_by_id=actor.id,
    )
    session.add(request)
    session.flush()
    record(
        session,
        actor=actor,
        action="device.move_requested",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"to_location_id": location_id, "slot": slot, "request_id": request.id},
    )
    if actor.role is Role.SBM:
        _apply(session, actor, request, "Changed by the school business manager")
    else:
        add_event(
            session,
            device,
            kind="move_requested",
            summary=f"Move to {request.to_location.name} asked for; waiting for the SBM",
            actor=actor,
        )
        _tell(
            session,
            request,
            roles=[Role.SBM],
            kind="location_change",
            title=f"Move of {device.asset_tag} needs your approval",
            body=f"{actor.name} asks to move {device.asset_tag} to {request.to_location.name}: "
            f"{request.reason}",
            link="/devices/moves",
        )
    session.commit()
    return request


def _apply(session: Session, actor: User, request: LocationChangeRequest, why: str) -> None:
    device = request.device
    old = device.home_location.name if device.home_location else "nowhere"
    device.home_location_id = request.to_location_id
    device.home_slot = request.to_slot
    request.status = ChangeRequestStatus.APPROVED
    request.decided_by_id = actor.id
    request.decided_at = utcnow()
    request.decision_reason = request.decision_reason or why
    session.flush()
    session.refresh(device)
    add_event(
        session,
        device,
        kind="moved",
        summary=f"Now lives in {device.home_location.name if device.home_location else '?'}"
        f"{f', slot {device.home_slot}' if device.home_slot else ''} (was {old})",
        actor=actor,
        details={"request_id": request.id},
    )


def decide_home_change(
    session: Session, actor: User, request_id: int, *, approve: bool, reason: str = ""
) -> LocationChangeRequest:
    """The SBM approves (the register changes) or declines (with a reason) a proposed move."""
    if actor.role is not Role.SBM:
        raise Forbidden("Only the school business manager decides where devices live.")
    request = session.scalar(
        select(LocationChangeRequest).where(
            LocationChangeRequest.id == request_id,
            LocationChangeRequest.school_id == actor.school_id,
        )
    )
    if request is None:
        raise NotFound("No such move request in your school.")
    if request.status is not ChangeRequestStatus.PENDING:
        raise Conflict(f"This request was already {request.status.value}.")
    if approve and request.device.status is DeviceStatus.DISPOSED:
        raise Conflict(f"{request.device.asset_tag} has been disposed of since this was asked.")
    if approve:
        check = Check()
        _check_home(
            session, actor.school_id, request.to_location_id, request.to_slot, check, request.device
        )
        check.raise_if_errors()
        request.decision_reason = reason.strip() or None
        _apply(session, actor, request, "Approved by the school business manager")
    else:
        if not reason.strip():
            raise ValidationFailed("Say why the move is declined; the person who asked is told.")
        request.status = ChangeRequestStatus.DECLINED
        request.decided_by_id = actor.id
        request.decided_at = utcnow()
        request.decision_reason = reason.strip()
        add_event(
            session,
            request.device,
            kind="move_declined",
            summary=f"Move to {request.to_location.name} declined: {reason.strip()}",
            actor=actor,
        )
    record(
        session,
        actor=actor,
        action="device.move_" + ("approved" if approve else "declined"),
        school_id=actor.school_id,
        target_type="device",
        target_id=request.device.asset_tag,
        details={"request_id": request.id, "reason": reason.strip()},
    )
    _tell(
        session,
        request,
        users=[request.requested_by],
        kind="location_change.decided",
        title=f"Move of {request.device.asset_tag} {'approved' if approve else 'declined'}",
        body=(reason.strip() or "The register has been updated."),
        link=f"/devices/{request.device.asset_tag}",
    )
    session.commit()
    return request


def pending_move(session: Session, device: Device) -> LocationChangeRequest | None:
    """The move of this device waiting for the SBM, if there is one."""
    return session.scalar(
        select(LocationChangeRequest).where(
            LocationChangeRequest.school_id == device.school_id,
            LocationChangeRequest.device_id == device.id,
            LocationChangeRequest.status == ChangeRequestStatus.PENDING,
        )
    )


def moves_waiting(session: Session, school_id: int) -> int:
    """How many home moves are waiting for the SBM's decision."""
    return (
        session.scalar(
            select(func.count()).where(
                LocationChangeRequest.school_id == school_id,
                LocationChangeRequest.status == ChangeRequestStatus.PENDING,
            )
        )
        or 0
    )


def move_requests(
    session: Session, school_id: int, *, status: ChangeRequestStatus | None = None
) -> Sequence[LocationChangeRequest]:
    query = select(LocationChangeRequest).where(LocationChangeRequest.school_id == school_id)
    if status is not None:
        query = query.where(LocationChangeRequest.status == status)
    return session.scalars(
        query.options(
            joinedload(LocationChangeRequest.device),
            joinedload(LocationChangeRequest.to_location),
            joinedload(LocationChangeRequest.requested_by),
        ).order_by(LocationChangeRequest.requested_at.desc())
    ).all()


def _tell(
    session: Session,
    request: LocationChangeRequest,
    *,
    kind: str,
    title: str,
    body: str,
    link: str,
    roles: Sequence[Role] = (),
    users: Sequence[User] = (),
) -> None:
    """Notify people in the app, and by an e-mail naming only the device and request number."""
    from server.notifications import services as notifications

    if roles:
        notifications.notify_roles(
            session,
            school_id=request.school_id,
            roles=roles,
            kind=kind,
            title=title,
            body=body,
            link=link,
            devices=[request.device],
            case_id=request.id,
        )
    if users:
        notifications.notify(
            session,
            school_id=request.school_id,
            users=users,
            kind=kind,
            title=title,
            body=body,
            link=link,
            devices=[request.device],
            case_id=request.id,
        )


def moves_waiting_for(session: Session, user: User) -> list[Waiting]:
    """Home moves waiting for `user`'s decision, if they decide moves."""
    if not has_permission(user.role, Permission.LOCATIONS_APPROVE):
        return []
    count, since = session.execute(
        select(func.count(), func.min(LocationChangeRequest.requested_at)).where(
            LocationChangeRequest.school_id == user.school_id,
            LocationChangeRequest.status == ChangeRequestStatus.PENDING,
        )
    ).one()
    if not count:
        return []
    return [
        Waiting(
            what=f"{plural(count, 'device move')} to a new home",
            count=count,
            since=since,
            link="/devices/moves",
        )
    ]
