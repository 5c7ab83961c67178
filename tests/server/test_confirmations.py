"""Irreversible and bulk actions ask first, without scripts: the question states the
consequences, keeps what was typed, and a changed figure asks again."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.audits import services as audits
from server.auth.models import Role, User
from server.commands import services as commands
from server.devices.models import Device
from server.schools.models import School
from tests.server.audits.conftest import BASE_URL, Fleet, fleet, terms  # noqa: F401
from tests.server.conftest import HIDDEN_RE, csrf_token, log_in_as, post_confirmed, settle


def _hidden(page: str) -> dict[str, str]:
    return {html.unescape(n): html.unescape(v) for n, v in HIDDEN_RE.findall(page)}


def test_the_freeze_asks_first_and_keeps_the_reason_typed(
    client: FlaskClient, session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """The form posted alone shows the consequences and does nothing; yes does it."""
    head = make_user(Role.HEADTEACHER)
    log_in_as(client, head)
    token = csrf_token(client, "/commands/freeze")
    asked = client.post("/commands/freeze", data={"csrf_token": token, "reason": "Phished <x>"})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and asked.headers["X-Trolley-Confirm"] == "ask"
    assert "Freeze every wipe, lock, lost mode and factory reset in the school?" in page
    assert "cannot be restarted" in page
    assert 'role="alertdialog"' not in page  # the page itself, not a dialog: no scripts needed
    fields = _hidden(page)
    assert fields["reason"] == "Phished <x>" and fields["confirmed"]
    assert commands.current_freeze(session, school.id) is None  # nothing done yet

    wrong = client.post("/commands/freeze", data={**fields, "confirmed": "not-the-question-asked"})
    assert wrong.headers.get("X-Trolley-Confirm") == "ask"
    assert commands.current_freeze(session, school.id) is None

    done = client.post("/commands/freeze", data=fields)
    assert done.status_code == 302
    session.expire_all()
    freeze = commands.current_freeze(session, school.id)
    assert freeze is not None and freeze.reason == "Phished <x>"


def test_an_audit_sign_off_states_the_figure_and_asks_again_when_it_changes(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    fleet: Fleet,  # noqa: F811
) -> None:
    """P-AUDIT-1: signing off at 28 % found says so; a scan in between changes the question."""
    lead = make_user(Role.COMPUTING_LEAD)
    audit = audits.start_audit(session, lead)
    for tag in ("Y4-1", "Y4-2"):
        audits.scan(session, lead, audit.id, tag, location_id=fleet.y4.id, base_url=BASE_URL)
    log_in_as(client, lead)
    token = csrf_token(client, f"/audits/{audit.id}")
    asked = client.post(f"/audits/{audit.id}/close", data={"csrf_token": token, "note": "Y3 out"})
    page = asked.get_data(as_text=True)
    assert "Sign off the audit at 28 % found?" in page
    assert "5 devices of 7 not found will be recorded as missing" in page
    assert "This cannot be undone." in page
    assert re.search(r"<button[^>]*>\s*Sign off at 28 % found\s*</button>", page)
    fields = _hidden(page)
    assert fields["note"] == "Y3 out"

    audits.scan(session, lead, audit.id, "Y4-3", location_id=fleet.y4.id, base_url=BASE_URL)
    again = client.post(f"/audits/{audit.id}/close", data=fields)
    assert "Sign off the audit at 42 % found?" in again.get_data(as_text=True)
    session.expire_all()
    assert audits.get_audit(session, lead.school_id, audit.id).is_open

    done = post_confirmed(client, f"/audits/{audit.id}/close", fields)
    assert done.status_code == 302
    session.expire_all()
    closed = audits.get_audit(session, lead.school_id, audit.id)
    assert not closed.is_open and closed.sign_off_note == "Y3 out"


def test_turning_an_account_off_asks_and_the_api_does_not(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """Forms ask; the API is not a form and is unchanged."""
    admin = make_user(Role.ADMIN)
    teacher = make_user(Role.TEACHER)
    log_in_as(client, admin)
    token = csrf_token(client, "/people")
    path = f"/people/{teacher.id}/deactivate"
    asked = client.post(path, data={"csrf_token": token, "reason": "Left in July"})
    assert f"Turn off {teacher.name}'s account?" in html.unescape(asked.get_data(as_text=True))
    session.refresh(teacher)
    assert teacher.active
    assert post_confirmed(client, path, {"csrf_token": token, "reason": "Left"}).status_code == 302
    session.refresh(teacher)
    assert not teacher.active
    other = make_user(Role.SBM)
    answer = client.post(
        f"/api/v1/users/{other.id}/deactivate", json={"reason": "Left"}, headers=token_for(admin)
    )
    assert answer.status_code == 200
    session.refresh(other)
    assert not other.active


def test_turning_lost_mode_off_asks_first(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> None:
    """The device unlocks for whoever holds it: the question says so, and nothing is sent
    until the yes."""
    tech = make_user(Role.TECHNICIAN)
    device = enrolled(make_device())
    log_in_as(client, tech)
    path = f"/devices/{device.asset_tag}/commands/lost_mode_off"
    token = csrf_token(client, f"/devices/{device.asset_tag}")
    asked = client.post(path, data={"csrf_token": token})
    page = html.unescape(asked.get_data(as_text=True))
    assert asked.headers.get("X-Trolley-Confirm") == "ask"
    assert f"Turn lost mode off on {device.asset_tag}?" in page
    assert "whoever has it can use it" in page
    assert commands.list_commands(session, device.school_id, device_id=device.id) == []
    done = post_confirmed(client, path, {"csrf_token": token})
    assert done.status_code == 302
    sent = commands.list_commands(session, device.school_id, device_id=device.id)
    assert [(c.type, c.args.get("enabled")) for c in sent] == [("lost_mode", False)]


def test_lifting_the_freeze_asks_the_person_whose_yes_lifts_it(
    client: FlaskClient, session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """The first ask needs no question (nothing changes); the confirming yes is asked first."""
    head = make_user(Role.HEADTEACHER)
    admin = settle(make_user(Role.ADMIN))
    commands.freeze(session, head, reason="Phished")
    log_in_as(client, head)
    token = csrf_token(client, "/commands/freeze")
    assert client.post("/commands/freeze/lift", data={"csrf_token": token}).status_code == 302
    log_in_as(client, admin)
    token = csrf_token(client, "/commands/freeze")
    asked = client.post("/commands/freeze/lift", data={"csrf_token": token})
    page = asked.get_data(as_text=True)
    assert asked.headers.get("X-Trolley-Confirm") == "ask"
    assert "Lift the freeze on destructive commands?" in page
    assert "Commands the freeze stopped stay cancelled" in page
    session.expire_all()
    freeze = commands.current_freeze(session, school.id)
    assert freeze is not None and freeze.state.value == "frozen"
    done = post_confirmed(client, "/commands/freeze/lift", {"csrf_token": token})
    assert done.status_code == 302
    session.expire_all()
    assert commands.current_freeze(session, school.id) is None


def _asked_in_page(page: str, action: str) -> dict[str, str]:
    """The question a page's form to `action` carries for its script, as the script reads it."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>', page)
    assert form is not None, f"no form posting to {action}"
    found = {
        name: html.unescape(value)
        for name, value in re.findall(r'data-confirm-(\w+)="([^"]*)"', form.group(0))
    }
    assert "data-confirm " in form.group(0) and found.keys() == {
        "token",
        "question",
        "consequences",
        "button",
    }, form.group(0)
    return found


def test_the_page_carries_the_question_so_one_post_does_it(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    fleet: Fleet,  # noqa: F811
) -> None:
    """P-AUDIT-1: the sign-off form holds the server's own words and token, so a yes in the
    page's dialog is one post; a figure changed since the page was built still asks again."""
    lead = make_user(Role.COMPUTING_LEAD)
    audit = audits.start_audit(session, lead)
    for tag in ("Y4-1", "Y4-2"):
        audits.scan(session, lead, audit.id, tag, location_id=fleet.y4.id, base_url=BASE_URL)
    log_in_as(client, lead)
    path = f"/audits/{audit.id}/close"
    asked = _asked_in_page(client.get(f"/audits/{audit.id}").get_data(as_text=True), path)
    assert asked["question"] == "Sign off the audit at 28 % found?"
    assert asked["button"] == "Sign off at 28 % found"
    assert json.loads(asked["consequences"])[0] == (
        "5 devices of 7 not found will be recorded as missing in the signed-off report."
    )
    token = csrf_token(client, f"/audits/{audit.id}")

    audits.scan(session, lead, audit.id, "Y4-3", location_id=fleet.y4.id, base_url=BASE_URL)
    stale = client.post(path, data={"csrf_token": token, "confirmed": asked["token"]})
    assert stale.headers.get("X-Trolley-Confirm") == "ask"
    assert "Sign off the audit at 42 % found?" in stale.get_data(as_text=True)
    session.expire_all()
    assert audits.get_audit(session, lead.school_id, audit.id).is_open

    fresh = _asked_in_page(client.get(f"/audits/{audit.id}").get_data(as_text=True), path)
    assert fresh["question"] == "Sign off the audit at 42 % found?"
    done = client.post(path, data={"csrf_token": token, "note": "Y3", "confirmed": fresh["token"]})
    assert done.status_code == 302
    session.expire_all()
    assert not audits.get_audit(session, lead.school_id, audit.id).is_open


def test_a_form_that_asks_nothing_carries_no_question(
    client: FlaskClient, session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """Asking to lift a freeze changes nothing, so its form goes straight to the server."""
    head = make_user(Role.HEADTEACHER)
    commands.freeze(session, head, reason="Phished")
    log_in_as(client, head)
    page = client.get("/commands/freeze").get_data(as_text=True)
    form = re.search(r'<form[^>]*action="/commands/freeze/lift"[^>]*>', page)
    assert form is not None and "data-confirm" not in form.group(0)
