"""The personal link for a leaver without an account: one case only, expiring, CSRF-protected."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.devices.models import Device
from server.errors import NotFound
from server.escrow import services as escrow
from server.escrow.models import CredentialEscrow
from server.leavers import services
from server.leavers.models import HandoverRoute
from tests.server.conftest import csrf_token, post_confirmed
from tests.server.leavers.conftest import BASE, PIN, People


def _opened(
    make_device: Callable[..., Device], open_case: Callable[..., services.Opened], name: str
) -> tuple[services.Opened, str]:
    opened = open_case(
        leaver_id=None,
        leaver_name=name,
        leaver_email=f"{name.split()[0].lower()}@home.example",
        asset_tags=[make_device().asset_tag],
    )
    assert opened.link is not None
    return opened, opened.link.removeprefix(BASE)


def test_the_link_opens_that_one_checklist_without_a_log_in(
    client: FlaskClient,
    session: Session,
    box: Any,
    people: People,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: a leaver without an account completes their checklist from the link."""
    opened, path = _opened(make_device, open_case, "Jo Bloggs")
    other, _other_path = _opened(make_device, open_case, "Sam Other")
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Your leaving checklist" in text
    assert opened.case.items[0].description in text
    assert other.case.items[0].description not in text
    token = csrf_token(client, path)
    mine, theirs = opened.case.items[0], other.case.items[0]
    # The link acts on its own case only: another case's item id is not found through it.
    refused = client.post(
        f"{path}/items/{theirs.id}/credentials", data={"csrf_token": token, "passcode": PIN}
    )
    assert refused.status_code == 404
    # CSRF still applies to the link's forms.
    assert (
        client.post(f"{path}/items/{mine.id}/credentials", data={"passcode": PIN}).status_code
        == 400
    )
    kept = client.post(
        f"{path}/items/{mine.id}/credentials", data={"csrf_token": token, "passcode": PIN}
    )
    assert kept.status_code == 302 and kept.headers["Location"].endswith(path)
    session.expire_all()
    assert mine.route is HandoverRoute.CREDENTIALS
    (entry,) = session.scalars(select(CredentialEscrow)).all()
    assert entry.device_id == mine.device_id and entry.deposited_by_id is None
    assert escrow.reveal(session, box, people.tech, entry.id, reason="reset")[1] == PIN
    trail = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "escrow.deposited")
    ).one()
    assert trail.actor_id is None and "jo@home.example" in trail.actor_label
    assert theirs.route is None


def test_a_bad_or_expired_link_sends_people_to_log_in(
    client: FlaskClient,
    session: Session,
    people: People,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    opened, path = _opened(make_device, open_case, "Jo Bloggs")
    token = path.rsplit("/", 1)[1]
    bad = client.get("/leavers/link/not-a-real-token")
    assert bad.status_code == 302 and "/login" in bad.headers["Location"]
    case = opened.case
    expires = case.link_expires_at
    assert expires is not None
    # It works until a week after the last day, in the school's own time.
    last_local = datetime.combine(case.last_day + timedelta(days=7), time(23, 59))
    zone = services.zone(case.school)
    assert services.case_for_link(
        session, token, now=last_local.replace(tzinfo=zone).astimezone(UTC)
    )
    with pytest.raises(NotFound):
        services.case_for_link(session, token, now=expires)
    # A new link replaces the old one.
    _case, fresh = services.issue_link(session, people.sbm, case.id, base_url=BASE)
    with pytest.raises(NotFound):
        services.case_for_link(session, token)
    assert client.get(fresh.removeprefix(BASE)).status_code == 200
    assert client.get(path).status_code == 302


def test_the_leaver_signs_with_the_link_and_the_link_ends_with_the_case(
    client: FlaskClient,
    session: Session,
    box: Any,
    people: People,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    opened, path = _opened(make_device, open_case, "Jo Bloggs")
    case = opened.case
    item = case.items[0]
    token = csrf_token(client, path)
    client.post(f"{path}/items/{item.id}/meeting", data={"csrf_token": token})
    session.expire_all()
    assert item.route is HandoverRoute.MEETING
    starts = datetime.combine(case.last_day, time(15, 0)).strftime("%Y-%m-%dT%H:%M")
    booked = client.post(
        f"{path}/meeting",
        data={"csrf_token": token, "starts_at": starts, "minutes": "30", "place": "IT office"},
    )
    assert booked.status_code == 302
    session.expire_all()
    assert case.meeting_starts_at is not None
    ics = client.get(f"{path}/meeting.ics")
    assert ics.status_code == 200 and ics.mimetype == "text/calendar"
    assert b'ATTENDEE;CN="Jo Bloggs"' in ics.data
    services.return_device(session, people.tech, case.id, item.device.asset_tag, base_url=BASE)
    services.confirm_reset(session, people.tech, case.id, item.id, "Reset in the meeting, wiped")
    asked = client.post(f"{path}/sign", data={"csrf_token": token})
    assert "Sign your leaving checklist?" in asked.get_data(as_text=True)
    session.expire_all()
    assert case.leaver_signed_at is None  # asked first, nothing signed yet
    assert post_confirmed(client, f"{path}/sign", {"csrf_token": token}).status_code == 302
    session.expire_all()  # the page signed in its own session
    services.sign(session, people.manager, case.id)
    services.sign(session, people.tech, case.id)
    session.expire_all()
    assert case.leaver_signed_via == "link" and not case.is_open
    assert case.link_token_hash is None
    assert client.get(path).status_code == 302


def test_the_leaver_is_e_mailed_their_link(
    session: Session,
    people: People,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: someone without an account receives their own link, and a new link too."""
    from server.notifications.models import EmailMessage

    opened, path = _opened(make_device, open_case, "Jo Bloggs")
    sent = session.scalars(
        select(EmailMessage).where(EmailMessage.to_address == "jo@home.example")
    ).all()
    assert [m.link for m in sent] == [path]
    assert "leaving checklist" in sent[0].subject and "do not forward" in sent[0].body_text
    _case, fresh = services.issue_link(session, people.sbm, opened.case.id, base_url=BASE)
    again = session.scalars(
        select(EmailMessage.link)
        .where(EmailMessage.to_address == "jo@home.example")
        .order_by(EmailMessage.id)
    ).all()
    assert again == [path, fresh.removeprefix(BASE)]
