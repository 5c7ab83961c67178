"""Possible losses: offered to the headteacher, reported in one action, dismissed with a reason,
settled when the device turns up (P-LOSS-1, P-TROLLEY-2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.devices.models import Device
from server.devices.services import add_event
from server.errors import Conflict, Forbidden, ValidationFailed
from server.losses import services
from server.losses.models import PossibleLossSource
from tests.server.losses.conftest import NOW


def _offer(session: Session, device: Device) -> int:
    (offer,) = services.offer_possible_losses(
        session,
        device.school_id,
        [
            services.Offer(
                device=device,
                source=PossibleLossSource.NOT_BACK,
                source_id=7,
                last_seen_at=NOW - timedelta(hours=20),
                last_seen_where="Taken out of Year 4 trolley",
                circumstances="Not back in its trolley at the end of the day.",
            )
        ],
        now=NOW,
    )
    session.commit()
    return offer.id


def test_an_offer_is_made_once_per_device(session: Session, head: User, device: Device) -> None:
    _offer(session, device)
    again = services.offer_possible_losses(
        session,
        device.school_id,
        [
            services.Offer(
                device=device,
                source=PossibleLossSource.AUDIT,
                source_id=1,
                last_seen_at=None,
                last_seen_where="Lives in Year 4 trolley",
                circumstances="Not found in the audit.",
            )
        ],
        now=NOW,
    )
    assert again == [] and len(services.possible_losses(session, head.school_id)) == 1


def test_only_the_headteacher_acts_on_an_offer_and_a_dismissal_needs_a_reason(
    session: Session, head: User, teacher: User, device: Device
) -> None:
    offer_id = _offer(session, device)
    with pytest.raises(Forbidden):
        services.report_possible_loss(session, teacher, offer_id, now=NOW)
    with pytest.raises(ValidationFailed, match="Say why"):
        services.dismiss_possible_loss(session, head, offer_id, note="  ", now=NOW)
    services.dismiss_possible_loss(
        session, head, offer_id, note="In the head's office for repair", now=NOW
    )
    assert services.possible_losses(session, head.school_id) == []
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "loss.possible_dismissed")
    )
    assert entry is not None and entry.target_id == device.asset_tag
    with pytest.raises(Conflict, match="already"):
        services.report_possible_loss(session, head, offer_id, now=NOW)


def test_a_device_seen_in_someones_hands_settles_its_offer(
    session: Session,
    head: User,
    teacher: User,
    device: Device,
    run_job: Callable[..., object],
) -> None:
    offer_id = _offer(session, device)
    run_job("losses.possible", NOW + timedelta(minutes=1))
    assert len(services.possible_losses(session, head.school_id)) == 1
    event = add_event(
        session, device, kind="loan_return", summary="Returned to Year 4 trolley", actor=teacher
    )
    event.at = NOW + timedelta(minutes=2)
    session.commit()
    run_job("losses.possible", NOW + timedelta(minutes=3))
    assert services.possible_losses(session, head.school_id) == []
    with pytest.raises(Conflict, match="already"):
        services.report_possible_loss(session, head, offer_id, now=NOW)


def test_possible_losses_over_the_api(
    client: object,
    session: Session,
    head: User,
    teacher: User,
    device: Device,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    from flask.testing import FlaskClient

    assert isinstance(client, FlaskClient)
    offer_id = _offer(session, device)
    assert client.get("/api/v1/losses/possible", headers=token_for(teacher)).status_code == 403
    auth = token_for(head)
    (listed,) = client.get("/api/v1/losses/possible", headers=auth).get_json()["items"]
    assert (listed["id"], listed["asset_tag"], listed["source"]) == (
        offer_id,
        device.asset_tag,
        "not_back",
    )
    made = client.post(f"/api/v1/losses/possible/{offer_id}/report", headers=auth)
    assert made.status_code == 201 and made.get_json()["asset_tag"] == device.asset_tag
    again = client.post(f"/api/v1/losses/possible/{offer_id}/report", headers=auth)
    assert again.status_code == 409
    assert client.get("/api/v1/losses/possible", headers=auth).get_json()["items"] == []
