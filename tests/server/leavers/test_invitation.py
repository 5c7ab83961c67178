"""The reset meeting's invitation: a unique, stable UID, cancellations, and e-mailed copies that
carry no names (P-SEC-5)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.config import load_settings
from server.devices.models import Device
from server.leavers import services
from server.leavers.models import LeaverCase
from server.leavers.services.invitation import meeting_uid
from server.notifications.models import EmailMessage
from server.notifications.services import build_mime
from tests.server.conftest import csrf_token, log_in_as
from tests.server.leavers.conftest import People
from tests.server.leavers.test_flow import _finish_items, _meeting_at


def _calendars(session: Session, status: str) -> list[str]:
    """The e-mailed calendar entries whose event has `status` (CONFIRMED or CANCELLED)."""
    emails = session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()
    found = []
    for email in emails:
        for item in email.attachments:
            text = base64.b64decode(item["content_b64"]).decode().replace("\r\n ", "")
            if f"STATUS:{status}\r\n" in text:
                found.append(text)
    return found


def _uid(ics: str) -> str:
    match = re.search(r"^UID:(\S+)\r?$", ics, re.M)
    assert match, ics
    return match.group(1)


def _book(session: Session, people: People, case: LeaverCase, hour: int = 15) -> None:
    services.book_meeting(
        session, people.tech, case.id, starts_at=_meeting_at(case, hour), minutes=30, place="IT"
    )


def test_invitation_uids_are_unique_and_stable_per_case(
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """RFC 5545: a UID is globally unique; a moved meeting keeps its UID, a new SEQUENCE."""
    case = open_case().case
    _book(session, people, case)
    first = _uid(services.meeting_ics(case))
    assert not first.startswith("leaver-case-")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}@trolley", first
    )
    _book(session, people, case, hour=14)
    again = services.meeting_ics(case)
    assert _uid(again) == first and "SEQUENCE:1" in again
    # Random, not counted: case 1 of school 1 has a different UID in every installation.
    assert meeting_uid(LeaverCase()) != meeting_uid(LeaverCase()) != first


def test_a_cancelled_meeting_sends_a_cancellation(
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    _book(session, people, case)
    (request,) = {_uid(t) for t in _calendars(session, "CONFIRMED")}
    services.cancel_meeting(session, people.tech, case.id)
    cancels = _calendars(session, "CANCELLED")
    assert len(cancels) == 3  # the leaver, the line manager and the technician
    assert _uid(cancels[0]) == request
    assert "STATUS:CANCELLED" in cancels[0] and "SEQUENCE:1" in cancels[0]
    assert case.meeting_starts_at is None


def test_closing_the_case_cancels_a_meeting_still_to_come(
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    _book(session, people, case)
    _finish_items(session, box, people, case)
    for person in (people.leaver, people.manager, people.tech):
        services.sign(session, person, case.id)
    cancels = _calendars(session, "CANCELLED")
    assert len(cancels) == 3 and "STATUS:CANCELLED" in cancels[0]


def test_the_emailed_invitation_is_a_calendar_entry_without_names(
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-SEC-5, iMIP (RFC 6047): calendars see the entry (an inline text/calendar part), but it
    is published, not a request: iTIP requests must name the organiser and every attendee, and
    names and addresses never go by e-mail. The full invitation is on the case page."""
    case = open_case().case
    _book(session, people, case)
    email = session.scalars(
        select(EmailMessage).where(
            EmailMessage.to_address == people.leaver.email,
            EmailMessage.subject.startswith("Device reset meeting"),
        )
    ).one()
    mime = build_mime(email, load_settings(env={}, overrides={"testing": True}))
    inline = [
        part
        for part in mime.walk()
        if part.get_content_type() == "text/calendar" and not part.is_attachment()
    ]
    assert len(inline) == 1, [(p.get_content_type(), p.is_attachment()) for p in mime.walk()]
    assert inline[0].get_param("method") == "PUBLISH"
    ics = inline[0].get_content()
    assert "METHOD:PUBLISH" in ics and _uid(ics) == _uid(services.meeting_ics(case))
    for private in ("ORGANIZER", "ATTENDEE", people.leaver.email, people.tech.name, "IT"):
        assert private not in ics.replace("Trolley", "")
    assert "METHOD:REQUEST" in services.meeting_ics(case)


def test_the_case_page_cancels_the_meeting(
    client: FlaskClient,
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    _book(session, people, case)
    log_in_as(client, people.tech)
    page = client.get(f"/leavers/{case.id}").get_data(as_text=True)
    assert "Cancel the meeting and tell everyone" in page
    token = csrf_token(client, f"/leavers/{case.id}")
    done = client.post(
        f"/leavers/{case.id}/meeting/cancel", data={"csrf_token": token}, follow_redirects=True
    )
    assert "The meeting is cancelled" in done.get_data(as_text=True)
    assert len(_calendars(session, "CANCELLED")) == 3
