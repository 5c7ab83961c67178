"""A device not back at the end of the day and still not found next morning reaches the
headteacher as a possible loss, reported in one action (P-TROLLEY-2, P-LOSS-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device, DeviceStatus
from server.loans import services
from server.losses import services as losses
from server.losses.models import LossReport
from server.notifications.models import EmailMessage, Notification
from server.schools.models import Location
from tests.server.conftest import csrf_token, log_in_as
from tests.server.loans.conftest import TUESDAY_1020, scan

END_OF_DAY = TUESDAY_1020.replace(hour=15, minute=31)
WEDNESDAY = TUESDAY_1020 + timedelta(days=1)


def _offers_told(session: Session, user: User) -> list[Notification]:
    session.expire_all()
    return list(
        session.scalars(
            select(Notification).where(
                Notification.user_id == user.id, Notification.kind == "loss.possible"
            )
        )
    )


def test_a_device_still_not_found_next_morning_is_offered_to_the_headteacher(
    client: FlaskClient,
    session: Session,
    teacher: User,
    head: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """P-LOSS-1: a device not back at the end of the day never reached the headteacher."""
    scan(session, teacher, fleet[0], trolley, class_label="Year 4 Oak")
    scan(session, teacher, fleet[1], trolley, class_label="Year 4 Oak")
    services.run_reconciliation(session, now=END_OF_DAY)  # the lead and SBM hear at 15:30
    session.commit()
    assert _offers_told(session, head) == []
    # Found before school next day: back in its trolley, so nothing is offered for it.
    scan(session, teacher, fleet[1], trolley, "in", now=WEDNESDAY.replace(hour=8))
    services.run_reconciliation(session, now=WEDNESDAY.replace(hour=8, minute=59))
    session.commit()
    assert _offers_told(session, head) == []
    services.run_reconciliation(session, now=WEDNESDAY.replace(hour=9, minute=1))
    session.commit()
    (told,) = _offers_told(session, head)
    assert fleet[0].asset_tag in told.title and told.link == "/losses#possible"
    (mail,) = session.scalars(
        select(EmailMessage).where(EmailMessage.notification_id == told.id)
    ).all()
    assert fleet[0].asset_tag in mail.body_text and teacher.name not in mail.body_text
    (offer,) = losses.possible_losses(session, head.school_id)
    assert offer.device_id == fleet[0].id and offer.source.value == "not_back"
    services.run_reconciliation(session, now=WEDNESDAY.replace(hour=9, minute=5))
    session.commit()
    assert len(_offers_told(session, head)) == 1  # offered once
    # One action on the losses page reports it, with what Trolley knows already filled in.
    log_in_as(client, head)
    page = client.get("/losses").get_data(as_text=True)
    assert 'id="possible"' in page and fleet[0].asset_tag in page
    token = csrf_token(client, "/losses")
    done = client.post(
        f"/losses/possible/{offer.id}/report", data={"csrf_token": token}, follow_redirects=True
    )
    assert done.status_code == 200
    loss = session.scalar(select(LossReport).where(LossReport.device_id == fleet[0].id))
    assert loss is not None and loss.reported_by_id == head.id
    assert "not back in its trolley at the end of the day" in loss.circumstances
    session.expire_all()
    assert session.get(Device, fleet[0].id).status is DeviceStatus.LOST  # type: ignore[union-attr]
    assert losses.possible_losses(session, head.school_id) == []


def test_home_loans_are_not_offered_as_losses(
    session: Session,
    teacher: User,
    head: User,
    sbm: User,
    fleet: list[Device],
    trolley: Location,
    make_device: Callable[..., Device],
) -> None:
    """An approved home loan is P-TROLLEY-2's one exception: not a loss while it is due."""
    loan = services.request_home_loan(
        session,
        teacher,
        asset_tags=[fleet[0].asset_tag],
        return_by=(WEDNESDAY + timedelta(days=3)).date(),
        reason="Learning at home",
        base_url="http://127.0.0.1:5000",
        now=TUESDAY_1020,
    )
    services.decide_home_loan(session, sbm, loan.id, approve=True, now=TUESDAY_1020)
    services.run_reconciliation(session, now=END_OF_DAY)
    services.run_reconciliation(session, now=WEDNESDAY.replace(hour=9, minute=1))
    session.commit()
    assert _offers_told(session, head) == []
