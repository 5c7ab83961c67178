"""Home moves go through the SBM: asked, notified, approved or declined, and always recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices import services
from server.devices.models import ChangeRequestStatus, Device, DeviceStatus, LocationChangeRequest
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.notifications.models import Notification
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location
from tests.server.devices.conftest import activity, events


def notices(session: Session, user: User) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
        )
    )


@pytest.mark.parametrize("role", [Role.TEACHER, Role.TECHNICIAN, Role.COMPUTING_LEAD])
def test_a_staff_request_waits_for_the_sbm_who_is_told(
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
    role: Role,
) -> None:
    """P-REG-2 / P-TROLLEY-3: moving an iPad to the office safe needs the SBM; they are told."""
    sbm = make_user(Role.SBM)
    asker = make_user(role)
    device = make_device(home=trolley, home_slot=3)
    request = services.request_home_change(
        session, asker, device, safe.id, 1, "Class teacher's iPad; keep it locked away"
    )
    session.expire_all()
    assert request.status is ChangeRequestStatus.PENDING
    assert request.from_location_id == trolley.id and request.to_location_id == safe.id
    stored = session.get(Device, device.id)
    assert stored is not None and stored.home_location_id == trolley.id and stored.home_slot == 3
    [asked] = events(session, device, "move_requested")
    assert "Office safe" in asked.summary and "waiting for the SBM" in asked.summary
    [entry] = activity(session, "device.move_requested")
    assert entry.actor_id == asker.id and entry.details["request_id"] == request.id
    [notice] = notices(session, sbm)
    assert notice.kind == "location_change" and notice.link == "/devices/moves"
    assert device.asset_tag in notice.title and "Office safe" in notice.body
    assert "keep it locked away" in notice.body
    assert notices(session, asker) == []


def test_the_sbm_approves_and_the_register_changes(
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-REG-2: approval moves the device's home, writes its history and tells the requester."""
    device = make_device(home=trolley, home_slot=3)
    request = services.request_home_change(session, teacher, device, safe.id, 2, "Locked away")
    decided = services.decide_home_change(session, sbm, request.id, approve=True, reason="Fine")
    session.expire_all()
    stored = session.get(Device, device.id)
    assert stored is not None and stored.home_location_id == safe.id and stored.home_slot == 2
    assert decided.status is ChangeRequestStatus.APPROVED
    assert decided.decided_by_id == sbm.id and decided.decided_at is not None
    assert decided.decision_reason == "Fine"
    [moved] = events(session, device, "moved")
    assert moved.summary == "Now lives in Office safe, slot 2 (was Year 4 trolley)"
    assert moved.actor_id == sbm.id
    [entry] = activity(session, "device.move_approved")
    assert entry.actor_id == sbm.id and entry.target_id == device.asset_tag
    [told] = notices(session, teacher)
    assert told.title == f"Move of {device.asset_tag} approved"
    assert told.link == f"/devices/{device.asset_tag}"
    # A decided request cannot be decided again.
    with pytest.raises(Conflict, match="already approved"):
        services.decide_home_change(session, sbm, request.id, approve=False, reason="Oops")


def test_the_sbm_declines_with_a_reason_that_the_requester_is_told(
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-REG-2: a declined move leaves the register alone, with the reason kept and sent."""
    device = make_device(home=trolley, home_slot=3)
    request = services.request_home_change(session, teacher, device, safe.id, None, "Safer")
    with pytest.raises(ValidationFailed, match="Say why the move is declined"):
        services.decide_home_change(session, sbm, request.id, approve=False, reason="  ")
    session.rollback()
    services.decide_home_change(
        session, sbm, request.id, approve=False, reason="The safe is for the office laptops"
    )
    session.expire_all()
    stored = session.get(Device, device.id)
    assert stored is not None and stored.home_location_id == trolley.id
    declined = session.get(LocationChangeRequest, request.id)
    assert declined is not None and declined.status is ChangeRequestStatus.DECLINED
    assert declined.decision_reason == "The safe is for the office laptops"
    [event] = events(session, device, "move_declined")
    assert "office laptops" in event.summary
    [told] = notices(session, teacher)
    assert told.title.endswith("declined") and told.body == "The safe is for the office laptops"
    assert activity(session, "device.move_declined")[0].details["reason"] == (
        "The safe is for the office laptops"
    )


def test_the_sbms_own_change_applies_at_once_and_is_recorded(
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-REG-2: the SBM is the one who decides, so their move needs nobody, but leaves history."""
    other_sbm = make_user(Role.SBM)
    device = make_device(home=trolley)
    request = services.request_home_change(session, sbm, device, safe.id, 1, "Year 6 teacher")
    session.expire_all()
    assert request.status is ChangeRequestStatus.APPROVED and request.decided_by_id == sbm.id
    assert request.decision_reason == "Changed by the school business manager"
    stored = session.get(Device, device.id)
    assert stored is not None and stored.home_location_id == safe.id and stored.home_slot == 1
    assert [e.kind for e in events(session, device)] == ["moved"]
    assert len(activity(session, "device.move_requested")) == 1
    assert notices(session, sbm) == [] and notices(session, other_sbm) == []


def test_only_the_sbm_decides(
    session: Session,
    make_user: Callable[..., User],
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    make_user(Role.SBM)
    head = make_user(Role.HEADTEACHER)
    request = services.request_home_change(
        session, teacher, make_device(home=trolley), safe.id, None, "Safer"
    )
    for person in (teacher, head):
        with pytest.raises(Forbidden):
            services.decide_home_change(session, person, request.id, approve=True)


def test_one_waiting_request_per_device(
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
    office: Location,
) -> None:
    device = make_device(home=trolley)
    services.request_home_change(session, teacher, device, safe.id, None, "Safer")
    with pytest.raises(Conflict, match="already a move waiting"):
        services.request_home_change(session, teacher, device, office.id, None, "Or here")
    session.rollback()
    assert session.query(LocationChangeRequest).count() == 1


def test_approval_checks_the_room_again(
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-TROLLEY-3: a safe holds what it holds; a request that no longer fits is not approved."""
    waiting = [make_device(home=trolley) for _ in range(2)]
    requests = [
        services.request_home_change(session, teacher, d, safe.id, None, "Safer") for d in waiting
    ]
    services.request_home_change(session, sbm, make_device(home=trolley), safe.id, 1, "Mine")
    services.decide_home_change(session, sbm, requests[0].id, approve=True)
    with pytest.raises(ValidationFailed) as caught:
        services.decide_home_change(session, sbm, requests[1].id, approve=True)
    assert caught.value.details == [
        {"field": "home_location_id", "message": "Office safe is full (2 devices live there)."}
    ]
    session.rollback()
    still = session.get(LocationChangeRequest, requests[1].id)
    assert still is not None and still.status is ChangeRequestStatus.PENDING


def test_a_request_is_checked_when_asked(
    session: Session,
    sbm: User,
    teacher: User,
    other_school: School,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    device = make_device(home=trolley, home_slot=3)
    theirs = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.ROOM, name="Hall"
    )
    session.commit()
    cases: list[tuple[int, int | None, str, type[Exception], str]] = [
        (safe.id, None, " ", ValidationFailed, "Say why"),
        (trolley.id, 3, "Same", Conflict, "already lives there"),
        (safe.id, 3, "Slot", ValidationFailed, "Slots in Office safe run from 1 to 2"),
        (theirs.id, None, "Theirs", ValidationFailed, "does not exist in your school"),
        (999_999, None, "Nowhere", ValidationFailed, "does not exist in your school"),
    ]
    for location_id, slot, reason, error, words in cases:
        with pytest.raises(error) as caught:
            services.request_home_change(session, teacher, device, location_id, slot, reason)
        session.rollback()
        text = caught.value.message + str(getattr(caught.value, "details", ""))
        assert words in text, (location_id, text)
    disposed = make_device(status=DeviceStatus.DISPOSED)
    with pytest.raises(ValidationFailed, match="disposed"):
        services.request_home_change(session, teacher, disposed, safe.id, None, "Reuse")


def test_a_device_disposed_while_waiting_is_not_moved(
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    device = make_device(home=trolley, status=DeviceStatus.IN_REPAIR)
    request = services.request_home_change(session, teacher, device, safe.id, None, "Safer")
    services.change_status(
        session, sbm, device, DeviceStatus.DISPOSED, "Beyond repair", in_disposal_batch=True
    )
    with pytest.raises(Conflict, match="disposed of since"):
        services.decide_home_change(session, sbm, request.id, approve=True)


def test_requests_are_listed_and_decided_only_within_the_school(
    session: Session,
    sbm: User,
    teacher: User,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-SEC-1: one school's SBM never sees or decides another school's moves."""
    request = services.request_home_change(
        session, teacher, make_device(home=trolley), safe.id, None, "Safer"
    )
    their_sbm = make_user(Role.SBM, in_school=other_school)
    assert services.move_requests(session, other_school.id) == []
    with pytest.raises(NotFound):
        services.decide_home_change(session, their_sbm, request.id, approve=True)
    mine = services.move_requests(session, sbm.school_id, status=ChangeRequestStatus.PENDING)
    assert [r.id for r in mine] == [request.id]
    assert services.pending_move(session, request.device) is not None
