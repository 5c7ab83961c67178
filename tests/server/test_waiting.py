"""What waits for a person: the home panel, the count in the nav and the notice when it starts
waiting, for every approval this person may give and none they may not."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.commands import services as commands
from server.dashboard.services import waiting_for
from server.db import utcnow
from server.devices.models import Device
from server.notifications.models import EmailMessage, Notification
from server.schools.models import School
from tests.server.commands.test_budget import add_fleet
from tests.server.conftest import log_in_as, settle


def test_an_84_device_wipe_waits_for_the_technician_and_says_so(
    client: FlaskClient, session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: the approver sees it on the home page, in the nav and in a notice; the person
    who asked, and an approver who is not independent, do not."""
    fleet: list[Device] = add_fleet(session, school.id, 84)
    lead = make_user(Role.COMPUTING_LEAD)
    tech = settle(make_user(Role.TECHNICIAN))
    head = settle(make_user(Role.HEADTEACHER))
    unsettled = make_user(Role.TECHNICIAN)  # too new to approve (and no second factor)
    session.commit()
    assert waiting_for(session, tech) == []

    (first, *_rest) = commands.issue(session, lead, fleet, "wipe_photos", {}, reason="Trip")
    assert first.status.value == "pending_approval"

    mine = waiting_for(session, tech)
    assert [(w.what, w.count, w.link) for w in mine] == [
        (f"Wipe photos of 84 devices, asked by {lead.name}", 84, "/commands")
    ]
    assert len(waiting_for(session, head)) == 1
    assert waiting_for(session, lead) == [] and waiting_for(session, unsettled) == []

    told = session.scalars(
        select(Notification).where(Notification.kind == "commands.approval_waiting")
    ).all()
    # The headteacher has the budget's own alert about it; every other approver this notice.
    assert {n.user_id for n in told} == {tech.id}
    assert "84 devices" in told[0].title
    assert session.scalar(
        select(Notification).where(
            Notification.kind == "commands.budget", Notification.user_id == head.id
        )
    )
    mails = session.scalars(
        select(EmailMessage).where(EmailMessage.subject.contains("waiting for your approval"))
    ).all()
    assert {m.to_address for m in mails} == {tech.email}
    assert all(lead.name not in m.body_text and "Trip" not in m.body_text for m in mails)

    log_in_as(client, tech)
    home = client.get("/").get_data(as_text=True)
    assert "Waiting for you (1)" in home
    assert f"Wipe photos of 84 devices, asked by {lead.name}" in home
    assert '1<span class="visually-hidden"> waiting for you</span>' in home
    assert "Nothing new" not in home
    other = client.application.test_client()
    log_in_as(other, lead)
    assert "waiting-count" not in other.get("/").get_data(as_text=True)

    commands.approve(session, tech, batch_id=first.batch_id, stepped_up_at=utcnow())
    assert waiting_for(session, head) == []
    assert "waiting-count" not in client.get("/").get_data(as_text=True)
