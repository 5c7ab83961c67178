"""A case's steps: hand-over, the meeting and its invitation, return, reset, sign-off, record."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.dashboard.services import waiting_for
from server.devices.models import Device, DeviceEvent
from server.disposals.models import DeviceErasure, ErasureSource
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.escrow import services as escrow
from server.escrow.models import CredentialEscrow, SecretKind
from server.leavers import services
from server.leavers.models import CaseStatus, HandoverRoute, LeaverCase
from server.notifications.models import EmailMessage, Notification
from server.personal_devices.models import PersonalDevice
from server.personal_devices.services import add_entry
from server.schools.models import Location
from tests.server.conftest import csrf_token, log_in_as
from tests.server.leavers.conftest import BASE, PIN, People

ACCOUNT = "amira.k@icloud.example"
ACCOUNT_PASSWORD = "Sunflower-77-secret"


def _hand_over(
    session: Session, box: Any, people: People, case: LeaverCase, device: Device
) -> None:
    item = next(i for i in case.items if i.device_id == device.id)
    services.hand_over_credentials(session, box, people.leaver, case.id, item.id, passcode=PIN)


def test_the_leaver_hands_over_credentials_from_their_checklist(
    client: FlaskClient,
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1, P-LEAVE-2: route (a) through the leaver's form: sealed, technician-readable."""
    case = open_case().case
    item = case.items[0]
    log_in_as(client, people.leaver)
    page = client.get("/leavers/mine")
    assert page.status_code == 200 and "Your leaving checklist" in page.get_data(as_text=True)
    token = csrf_token(client, "/leavers/mine")
    answer = client.post(
        f"/leavers/{case.id}/items/{item.id}/credentials",
        data={
            "csrf_token": token,
            "passcode": PIN,
            "account_email": ACCOUNT,
            "account_password": ACCOUNT_PASSWORD,
        },
    )
    assert answer.status_code == 302
    after = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "handed over the passcode and account details" in after
    assert PIN not in after and ACCOUNT_PASSWORD not in after
    session.expire_all()
    entries = escrow.history_for_device(session, item.device)
    assert {e.kind for e in entries} == {SecretKind.PASSCODE, SecretKind.APPLE_ID}
    assert all(e.deposited_by_id == people.leaver.id for e in entries)
    assert item.route is HandoverRoute.CREDENTIALS and sorted(item.escrow_ids) == sorted(
        e.id for e in entries
    )
    passcode = next(e for e in entries if e.kind is SecretKind.PASSCODE)
    assert escrow.reveal(session, box, people.tech, passcode.id, reason="leaver reset")[1] == PIN
    account = next(e for e in entries if e.kind is SecretKind.APPLE_ID)
    shown = escrow.reveal(session, box, people.tech, account.id, reason="leaver reset")[1]
    assert shown == f"{ACCOUNT}\n{ACCOUNT_PASSWORD}"
    with pytest.raises(Forbidden):
        escrow.reveal(session, box, people.sbm, passcode.id, reason="curious")


def test_the_leaver_deposits_only_for_devices_in_their_own_case(
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-2: nobody deposits against someone else's case, nor for a device not on it."""
    mine = open_case().case
    colleague = make_user(Role.TEACHER)
    theirs = open_case(leaver_id=colleague.id, asset_tags=[make_device().asset_tag]).case
    their_item = theirs.items[0]
    with pytest.raises(NotFound):
        services.hand_over_credentials(
            session, box, people.leaver, theirs.id, their_item.id, passcode=PIN
        )
    with pytest.raises(NotFound):  # an item id from another case, under my own case
        services.hand_over_credentials(
            session, box, people.leaver, mine.id, their_item.id, passcode=PIN
        )
    for not_the_leaver in (people.sbm, people.tech, people.manager):
        with pytest.raises(NotFound):
            services.hand_over_credentials(
                session, box, not_the_leaver, mine.id, mine.items[0].id, passcode=PIN
            )
    with pytest.raises(ValidationFailed):
        services.hand_over_credentials(session, box, people.leaver, mine.id, mine.items[0].id)
    with pytest.raises(ValidationFailed) as caught:
        services.hand_over_credentials(
            session, box, people.leaver, mine.id, mine.items[0].id, account_email=ACCOUNT
        )
    assert caught.value.details[0]["field"] == "account_password"
    assert session.scalars(select(CredentialEscrow)).all() == []


def test_the_api_takes_credentials_but_never_answers_with_them(
    client: FlaskClient,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    case = open_case().case
    url = f"/api/v1/leavers/{case.id}/items/{case.items[0].id}/credentials"
    answer = client.post(url, json={"passcode": PIN}, headers=token_for(people.leaver))
    assert answer.status_code == 200, answer.get_json()
    assert PIN not in answer.get_data(as_text=True)
    assert answer.get_json()["items"][0]["handed_over"] is True
    refused = client.post(url, json={"passcode": PIN}, headers=token_for(people.sbm))
    assert refused.status_code == 404


def _meeting_at(case: LeaverCase, hour: int = 15) -> datetime:
    return datetime.combine(case.last_day, time(hour, 0))  # the school's own clock


def test_route_b_books_a_meeting_with_an_ics_invitation(
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1, P-SEC-5: the reset meeting on the last day, with an .ics invitation by e-mail
    that gives its time, and the full one (place, people) in Trolley."""
    case = open_case().case
    services.choose_meeting(session, people.leaver, case.id, case.items[0].id)
    with pytest.raises(ValidationFailed) as caught:
        services.book_meeting(
            session,
            people.leaver,
            case.id,
            starts_at=_meeting_at(case) - timedelta(days=1),
            minutes=30,
            place="IT office",
        )
    assert caught.value.details[0]["field"] == "starts_at"
    with pytest.raises(ValidationFailed):
        services.book_meeting(
            session, people.leaver, case.id, starts_at=_meeting_at(case), minutes=5, place=""
        )
    services.book_meeting(
        session,
        people.tech,
        case.id,
        starts_at=_meeting_at(case),
        minutes=45,
        place="IT office, room 2; by the server cupboard",
    )
    assert {i.route for i in case.items} == {HandoverRoute.MEETING}
    emails = session.scalars(
        select(EmailMessage).where(EmailMessage.subject.startswith("Device reset meeting"))
    ).all()
    assert {e.to_address for e in emails} == {
        people.leaver.email,
        people.manager.email,
        people.tech.email,
    }
    attachment = emails[0].attachments[0]
    assert attachment["filename"] == "reset-meeting.ics"
    assert attachment["content_type"].startswith("text/calendar")
    ics = base64.b64decode(attachment["content_b64"]).decode()
    lines = ics.split("\r\n")
    assert ics.endswith("\r\n") and "\n" not in ics.replace("\r\n", "")
    assert lines[0] == "BEGIN:VCALENDAR" and "BEGIN:VEVENT" in lines and "END:VEVENT" in lines
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = ics.replace("\r\n ", "")
    starts = case.meeting_starts_at
    assert starts is not None and starts.tzinfo is not None
    assert f"DTSTART:{starts.astimezone(UTC):%Y%m%dT%H%M%SZ}" in unfolded
    assert f"DTEND:{(starts + timedelta(minutes=45)).astimezone(UTC):%Y%m%dT%H%M%SZ}" in unfolded
    assert re.search(r"^DTSTAMP:\d{8}T\d{6}Z\r$", unfolded, re.M)
    assert re.search(r"^UID:[0-9a-f-]{36}@trolley\r$", unfolded, re.M)  # unique everywhere
    assert "SEQUENCE:0" in unfolded and f"leaver case {case.id}" in unfolded
    # P-SEC-5: by e-mail, no names, addresses or place; the invitation in Trolley has them.
    for private in (case.leaver_name, people.tech.name, people.leaver.email, "server cupboard"):
        assert private not in unfolded
    assert "ORGANIZER" not in unfolded and "ATTENDEE" not in unfolded
    full = services.meeting_ics(case).replace("\r\n ", "")
    assert "LOCATION:IT office\\, room 2\\; by the server cupboard" in full
    assert f'ORGANIZER;CN="{people.tech.name}":mailto:{people.tech.email}' in full
    attendees = [line for line in full.split("\r\n") if line.startswith("ATTENDEE")]
    assert len(attendees) == 3 and any(people.leaver.email in a for a in attendees)
    assert "SEQUENCE:0" in full and "METHOD:REQUEST" in full
    services.book_meeting(
        session,
        people.manager,
        case.id,
        starts_at=_meeting_at(case, 14),
        minutes=30,
        place="IT office",
    )
    assert "SEQUENCE:1" in services.meeting_ics(case)


def test_scanning_in_completes_the_return(
    session: Session,
    people: People,
    held: list[Device],
    trolley: Location,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: scanning the device in completes its return: home, nobody holding it."""
    case = open_case().case
    in_trolley, no_home = held
    item = services.return_device(
        session, people.tech, case.id, f"{BASE}/d/{in_trolley.asset_tag}", base_url=BASE
    )
    assert item.returned_at is not None and item.returned_by_id == people.tech.id
    session.refresh(in_trolley)
    assert in_trolley.holder_id is None and in_trolley.current_location_id == trolley.id
    services.return_device(session, people.sbm, case.id, no_home.asset_tag.lower(), base_url=BASE)
    session.refresh(no_home)
    assert no_home.holder_id is None and no_home.current_location_id is None
    summaries = session.scalars(
        select(DeviceEvent.summary).where(DeviceEvent.device_id == no_home.id)
    ).all()
    assert any("Given back by" in s for s in summaries)
    with pytest.raises(Conflict, match="already given back"):
        services.return_device(session, people.tech, case.id, in_trolley.asset_tag, base_url=BASE)
    stranger = make_device()
    with pytest.raises(Conflict, match="not on"):
        services.return_device(session, people.tech, case.id, stranger.asset_tag, base_url=BASE)
    with pytest.raises(NotFound):
        services.return_device(session, people.tech, case.id, "NOPE-404", base_url=BASE)
    with pytest.raises(ValidationFailed):
        services.return_device(
            session, people.tech, case.id, "https://elsewhere.example/d/X-1", base_url=BASE
        )
    with pytest.raises(Forbidden):
        services.return_device(session, people.manager, case.id, stranger.asset_tag, base_url=BASE)


def test_the_return_page_scans_a_typed_tag(
    client: FlaskClient,
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    log_in_as(client, people.sbm)
    token = csrf_token(client, f"/leavers/{case.id}/return")
    answer = client.post(
        f"/leavers/{case.id}/return",
        data={"csrf_token": token, "code": held[1].asset_tag},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    assert f"{held[1].asset_tag} is back" in answer.get_data(as_text=True)
    log_in_as(client, people.manager)
    assert client.get(f"/leavers/{case.id}/return").status_code == 403


def test_a_reset_needs_the_handover_and_a_reachable_device(
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    item = case.items[0]
    with pytest.raises(Forbidden):
        services.send_reset(session, people.manager, case.id, item.id)
    with pytest.raises(ValidationFailed) as caught:
        services.send_reset(session, people.tech, case.id, item.id)
    assert caught.value.code == "handover_first"
    _hand_over(session, box, people, case, held[0])
    with pytest.raises(ValidationFailed) as caught:
        services.send_reset(session, people.tech, case.id, item.id)
    assert caught.value.code == "not_enrolled" and "evidence" in caught.value.message


def test_evidence_confirms_a_reset_and_destroys_the_escrowed_pin(
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1, P-LEAVE-2: no kiosk client: the technician's evidence, and the PIN is gone."""
    case = open_case().case
    item = case.items[0]
    _hand_over(session, box, people, case, held[0])
    with pytest.raises(ValidationFailed):
        services.confirm_reset(session, people.tech, case.id, item.id, "done")
    with pytest.raises(Forbidden):
        services.confirm_reset(session, people.sbm, case.id, item.id, "Activation Lock removed")
    services.confirm_reset(
        session, people.tech, case.id, item.id, "Activation Lock removed, device re-enrolled"
    )
    assert item.reset_at is not None and item.reset_by_id == people.tech.id
    (entry,) = escrow.history_for_device(session, held[0])
    assert entry.destroyed_at is not None and entry.secret_sealed is None
    erasure = session.scalar(select(DeviceErasure).where(DeviceErasure.device_id == held[0].id))
    assert erasure is not None and erasure.source is ErasureSource.TECHNICIAN_EVIDENCE
    assert erasure.evidence == "Activation Lock removed, device re-enrolled"
    with pytest.raises(Conflict, match="already been reset"):
        services.confirm_reset(session, people.tech, case.id, item.id, "again and again")
    with pytest.raises(Conflict, match="nothing to hand over"):
        services.hand_over_credentials(
            session, box, people.leaver, case.id, item.id, passcode="000000"
        )


def _finish_items(session: Session, box: Any, people: People, case: LeaverCase) -> None:
    for item in case.items:
        if item.device is None:
            services.remove_personal_device(session, people.sbm, case.id, item.id)
            continue
        _hand_over(session, box, people, case, item.device)
        services.return_device(session, people.tech, case.id, item.device.asset_tag, base_url=BASE)
        services.confirm_reset(
            session, people.tech, case.id, item.id, "Erased by hand and re-enrolled in ASM"
        )


def test_a_case_cannot_close_with_open_items_and_closes_on_the_last_sign_off(
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: sign-off by the leaver, line manager and technician; nothing left open."""
    add_entry(
        session,
        people.sbm,
        {"owner_id": people.leaver.id, "make": "Samsung", "model": "S23", "serial": "R5C1"},
    )
    case = open_case().case
    with pytest.raises(Conflict, match="open items"):
        services.close_case(session, people.sbm, case.id)
    with pytest.raises(Conflict, match="first give back"):
        services.sign(session, people.leaver, case.id)
    with pytest.raises(Conflict, match="still open"):
        services.sign(session, people.manager, case.id)
    with pytest.raises(Forbidden):
        services.sign(session, people.sbm, case.id)
    _finish_items(session, box, people, case)
    entry = session.scalars(select(PersonalDevice)).one()
    assert entry.removed_on is not None
    assert case.ready_at is not None
    told = session.scalars(
        select(Notification.user_id).where(Notification.kind == "leaver_sign_off")
    ).all()
    assert set(told) == {people.leaver.id, people.manager.id, people.tech.id}
    with pytest.raises(Conflict, match="sign off"):
        services.close_case(session, people.sbm, case.id)
    services.sign(session, people.leaver, case.id)
    with pytest.raises(Conflict, match="You signed"):
        services.sign(session, people.leaver, case.id)
    services.sign(session, people.manager, case.id)
    assert case.status is CaseStatus.OPEN
    services.sign(session, people.tech, case.id)
    assert case.status is CaseStatus.CLOSED and case.closed_at is not None
    assert all(i.settled_at is not None for i in case.items)
    with pytest.raises(Conflict, match="closed"):
        services.add_device(session, people.sbm, case.id, held[0].asset_tag)
    # Its devices are free for another case now.
    for device in held:
        device.holder_id = people.manager.id
    session.commit()
    again = open_case(leaver_id=people.manager.id, line_manager_id=people.head.id)
    assert {i.device_id for i in again.case.items} == {d.id for d in held}


def test_new_items_clear_earlier_sign_offs(
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    _finish_items(session, box, people, case)
    services.sign(session, people.manager, case.id)
    services.add_device(session, people.sbm, case.id, make_device().asset_tag)
    assert case.line_manager_signed_at is None and case.ready_at is None


def test_the_record_and_the_home_cards(
    client: FlaskClient,
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: the printable record lists every step with its time and who did it."""
    case = open_case().case
    log_in_as(client, people.sbm)
    home = client.get("/").get_data(as_text=True)
    assert "1 <span>open case</span>" in home and people.leaver.name in home
    log_in_as(client, people.leaver)
    assert "Open my leaving checklist" in client.get("/").get_data(as_text=True)
    log_in_as(client, people.manager)
    assert "Waiting for your sign-off" in client.get("/").get_data(as_text=True)
    _finish_items(session, box, people, case)
    for person in (people.leaver, people.manager, people.tech):
        services.sign(session, person, case.id)
    log_in_as(client, people.sbm)
    record = client.get(f"/leavers/{case.id}/record")
    text = record.get_data(as_text=True)
    assert record.status_code == 200
    assert "Closed" in text and "Closed when the last of the three signed off" in text
    for device in held:
        assert device.asset_tag in text and device.serial in text
    assert "Reset confirmed with evidence" in text and "Erased by hand" in text
    assert text.count("Not signed") == 0
    assert PIN not in text
    api = client.get(f"/api/v1/leavers/{case.id}/record").get_json()
    assert api["case"]["status"] == "closed" and len(api["events"]) >= 8


def test_the_personal_register_stays_private_on_the_case(
    client: FlaskClient,
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    add_entry(
        session,
        people.sbm,
        {"owner_id": people.leaver.id, "make": "Google", "model": "Pixel 8", "serial": "PIX8"},
    )
    case = open_case().case
    log_in_as(client, people.tech)
    assert "Pixel 8" not in client.get(f"/leavers/{case.id}").get_data(as_text=True)
    log_in_as(client, people.sbm)
    assert "Pixel 8" in client.get(f"/leavers/{case.id}").get_data(as_text=True)
    personal = next(i for i in case.items if i.device is None)
    with pytest.raises(Forbidden):
        services.remove_personal_device(session, people.tech, case.id, personal.id)


def test_a_ready_case_waits_for_the_headteachers_sign_off(
    client: FlaskClient,
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: once everything is back and reset, the headteacher as line manager finds the
    sign-off waiting on the home page and in the nav count, until they sign."""
    case = open_case(line_manager_id=people.head.id).case
    assert waiting_for(session, people.head) == []  # nothing to sign while items are open
    _finish_items(session, box, people, case)
    mine = waiting_for(session, people.head)
    assert [(w.what, w.count, w.link) for w in mine] == [
        (f"Sign off {people.leaver.name}'s leaver case", 1, f"/leavers/{case.id}")
    ]
    assert [w.what for w in waiting_for(session, people.tech)] == [mine[0].what]
    assert waiting_for(session, people.sbm) == [] and waiting_for(session, people.leaver) == []
    log_in_as(client, people.head)
    home = client.get("/").get_data(as_text=True)
    assert "Waiting for you (1)" in home and mine[0].what.replace("'", "&#39;") in home
    services.sign(session, people.head, case.id)
    assert waiting_for(session, people.head) == []
    assert "waiting-count" not in client.get("/").get_data(as_text=True)
