"""Devices missing when an audit is signed off reach the headteacher as possible losses
(P-AUDIT-1, P-LOSS-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audits import services
from server.audits.models import Audit
from server.auth.models import User
from server.losses import services as losses
from server.losses.models import LossReport
from server.notifications.models import Notification
from tests.server.audits.conftest import BASE_URL, NOW, Fleet


def _scan(session: Session, user: User, audit: Audit, tag: str, fleet: Fleet) -> None:
    place = fleet.y4 if tag.startswith("Y4") else fleet.y3
    services.scan(session, user, audit.id, tag, location_id=place.id, base_url=BASE_URL, now=NOW)


def test_devices_missing_at_an_audits_close_are_offered_to_the_headteacher(
    session: Session, lead: User, head: User, teacher: User, fleet: Fleet
) -> None:
    """P-LOSS-1: a device missing at the audit never reached the headteacher."""
    audit = services.start_audit(session, lead, now=NOW)
    for tag in ("Y4-1", "Y4-2", "Y4-3", "Y3-1", "Y3-2"):
        _scan(session, teacher, audit, tag, fleet)
    services.close_audit(session, lead, audit.id, now=NOW + timedelta(hours=1))
    told = session.scalars(
        select(Notification).where(
            Notification.user_id == head.id, Notification.kind == "loss.possible"
        )
    ).all()
    assert len(told) == 1 and "Y4-4" in told[0].body and "Y3-3" in told[0].body
    offers = losses.possible_losses(session, head.school_id)
    assert sorted(o.device.asset_tag for o in offers) == ["Y3-3", "Y4-4"]
    assert {(o.source.value, o.source_id) for o in offers} == {("audit", audit.id)}
    loss = losses.report_possible_loss(session, head, offers[0].id, now=NOW + timedelta(hours=2))
    assert "Not found in the Spring 2025/26 termly audit" in loss.circumstances
    assert len(losses.possible_losses(session, head.school_id)) == 1
    # The computing lead's follow-ups find the report already made and raise no second one.
    done = services.raise_follow_ups(session, lead, audit.id, now=NOW + timedelta(hours=3))
    assert [tag for tag, _id in done.already_reported] == [offers[0].device.asset_tag]
    assert session.scalars(select(LossReport)).all().__len__() == 2
    assert losses.possible_losses(session, head.school_id) == []


def test_a_device_already_reported_lost_is_not_offered_again(
    session: Session,
    lead: User,
    head: User,
    teacher: User,
    fleet: Fleet,
    make_device: Callable[..., object],
) -> None:
    from server.losses.models import LossKind

    losses.report_loss(
        session,
        teacher,
        asset_tag="Y4-4",
        kind=LossKind.LOST,
        last_seen_at=NOW - timedelta(days=3),
        last_seen_where="Hall",
        circumstances="Left after assembly.",
        now=NOW - timedelta(days=2),
    )
    audit = services.start_audit(session, lead, now=NOW)
    for tag in ("Y4-1", "Y4-2", "Y4-3", "Y3-1", "Y3-2", "Y3-3"):
        _scan(session, teacher, audit, tag, fleet)
    services.close_audit(session, lead, audit.id, now=NOW + timedelta(hours=1))
    assert losses.possible_losses(session, head.school_id) == []
