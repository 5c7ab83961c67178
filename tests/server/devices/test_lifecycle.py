"""The lifecycle: every allowed move works and is recorded; every other move says why not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import product

import pytest
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices import services
from server.devices.models import Device, DeviceStatus, Platform
from server.errors import Conflict, ValidationFailed
from server.schools.models import Location
from tests.server.devices.conftest import activity, events

S = DeviceStatus
ALLOWED = [
    (S.IN_STOCK, S.IN_SERVICE),
    (S.IN_STOCK, S.LOST),
    (S.IN_STOCK, S.STOLEN),
    (S.IN_STOCK, S.DISPOSED),
    (S.IN_SERVICE, S.IN_REPAIR),
    (S.IN_SERVICE, S.IN_STOCK),
    (S.IN_SERVICE, S.LOST),
    (S.IN_SERVICE, S.STOLEN),
    (S.IN_REPAIR, S.IN_SERVICE),
    (S.IN_REPAIR, S.LOST),
    (S.IN_REPAIR, S.STOLEN),
    (S.IN_REPAIR, S.DISPOSED),
    (S.LOST, S.IN_SERVICE),
    (S.LOST, S.STOLEN),
    (S.LOST, S.DISPOSED),
    (S.STOLEN, S.IN_SERVICE),
    (S.STOLEN, S.DISPOSED),
]
REFUSED = {
    (S.IN_STOCK, S.IN_REPAIR): "goes from stock into service first",
    (S.IN_SERVICE, S.DISPOSED): "Take it out of service first",
    (S.IN_REPAIR, S.IN_STOCK): "repaired device goes back into service first",
    (S.LOST, S.IN_STOCK): "turns up goes back into service first",
    (S.LOST, S.IN_REPAIR): "turns up goes back into service first",
    (S.STOLEN, S.IN_STOCK): "turns up goes back into service first",
    (S.STOLEN, S.IN_REPAIR): "turns up goes back into service first",
    (S.STOLEN, S.LOST): "stays stolen until it is found",
    **{(S.DISPOSED, new): "cannot change again" for new in S if new is not S.DISPOSED},
}


def test_the_table_covers_every_pair_of_statuses() -> None:
    pairs = {(a, b) for a, b in product(S, S) if a is not b}
    assert set(ALLOWED) | set(REFUSED) == pairs and not set(ALLOWED) & set(REFUSED)
    assert {(a, b) for a in S for b in services.TRANSITIONS[a]} == set(ALLOWED)


@pytest.mark.parametrize(("old", "new"), ALLOWED, ids=lambda s: s.value)
def test_each_allowed_move_is_made_and_recorded(
    session: Session, sbm: User, make_device: Callable[..., Device], old: S, new: S
) -> None:
    """P-REG-1: every change of status is in the device's timeline and the activity trail."""
    device = make_device(status=old)
    services.change_status(
        session, sbm, device, new, "  Checked by the SBM  ", in_disposal_batch=new is S.DISPOSED
    )
    session.expire_all()
    assert session.get(Device, device.id).status is new  # type: ignore[union-attr]
    [event] = events(session, device, "status")
    assert event.details == {"from": old.value, "to": new.value}
    assert event.summary == f"{old.label} → {new.label}: Checked by the SBM"
    assert event.actor_id == sbm.id
    [entry] = activity(session, "device.status_changed")
    assert entry.details == {"from": old.value, "to": new.value, "reason": "Checked by the SBM"}
    assert entry.target_id == device.asset_tag


@pytest.mark.parametrize(("old", "new"), list(REFUSED), ids=lambda s: s.value)
def test_each_other_move_is_refused_with_the_reason(
    session: Session, sbm: User, make_device: Callable[..., Device], old: S, new: S
) -> None:
    device = make_device(status=old)
    with pytest.raises(ValidationFailed) as caught:
        services.change_status(session, sbm, device, new, "Because")
    message = caught.value.message
    assert message.startswith(f"{device.asset_tag} cannot go from {old.label.lower()} to ")
    assert REFUSED[(old, new)] in message
    assert caught.value.code == "not_allowed"
    session.rollback()
    session.expire_all()
    assert session.get(Device, device.id).status is old  # type: ignore[union-attr]
    assert events(session, device) == [] and activity(session, "device.status_changed") == []


def test_a_reason_is_needed_and_the_same_status_is_no_change(
    session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    device = make_device(status=S.IN_SERVICE)
    with pytest.raises(ValidationFailed, match="Say why"):
        services.change_status(session, sbm, device, S.IN_REPAIR, "   ")
    session.rollback()
    with pytest.raises(Conflict, match="already in service"):
        services.change_status(session, sbm, device, S.IN_SERVICE, "Again")


def test_disposal_frees_the_slot_and_is_final(
    session: Session, sbm: User, trolley: Location
) -> None:
    """P-DISPOSE-1: a disposed device gives up its slot but keeps its history."""
    old, _check = services.create_device(
        session,
        sbm,
        services.DeviceFields(
            asset_tag="OAK-OLD",
            serial="DMPXK2AAAAAA",
            platform=Platform.IPADOS,
            make="Apple",
            model="iPad (6th generation)",
            home_location_id=trolley.id,
            home_slot=7,
        ),
    )
    services.change_status(session, sbm, old, S.IN_REPAIR, "Screen cracked")
    services.change_status(
        session, sbm, old, S.DISPOSED, "Beyond repair; collected by WEEE", in_disposal_batch=True
    )
    assert old.home_slot is None and old.home_location_id == trolley.id
    assert [e.kind for e in events(session, old)] == ["created", "status", "status"]
    # Slot 7 is free for its replacement.
    new, _check = services.create_device(
        session,
        sbm,
        replace(
            services.DeviceFields(
                asset_tag="OAK-NEW",
                serial="DMPXK2BBBBBB",
                platform=Platform.IPADOS,
                make="Apple",
                model="iPad (10th generation)",
            ),
            home_location_id=trolley.id,
            home_slot=7,
        ),
    )
    assert new.home_slot == 7
    for status in S:
        if status is not S.DISPOSED:
            with pytest.raises(ValidationFailed, match="cannot change again"):
                services.change_status(session, sbm, old, status, "Found it")


def test_a_caller_can_join_the_status_change_to_its_own_transaction(
    session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    """Disposal batches move many devices at once: nothing is committed until they commit."""
    device = make_device(status=S.IN_REPAIR)
    services.change_status(
        session, sbm, device, S.DISPOSED, "Batch 4", commit=False, in_disposal_batch=True
    )
    session.rollback()
    session.expire_all()
    assert session.get(Device, device.id).status is S.IN_REPAIR  # type: ignore[union-attr]
