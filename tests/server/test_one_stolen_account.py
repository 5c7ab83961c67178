"""What one stolen account did to the demo school, each replayed: every test here failed before
accounts had an independent approver, server-side sessions, scoped expiring tokens, an end and
no cross-school answers (P-SEC-1, P-SEC-4, P-LEAVE-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import ApiToken, Role, User
from server.auth.services import create_user, reset_password
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.errors import Forbidden
from server.notifications.models import EmailMessage, Notification
from server.schools.models import School
from tests.server.conftest import (
    PASSWORD,
    csrf_token,
    log_in_as,
    post_confirmed,
    post_login,
    settle,
)

WRONG = "000000"


def _with_totp(app: Flask, user: User) -> str:
    """Give `user` a second factor (the attacker can always set one up on a new account)."""
    secret = pyotp.random_base32()
    user.totp_secret_sealed = app.extensions["trolley.box"].seal(secret)
    return secret


def test_two_technicians_one_administrator_made_cannot_wipe_29_devices(
    app: Flask,
    session: Session,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> None:
    """P-SEC-1: an administrator made two technician accounts; one asked for a 29-device photo
    wipe and the other approved it. The second is no independent person: refused, and the
    headteacher and the other administrator were told."""
    admin = make_user(Role.ADMIN)
    head = settle(make_user(Role.HEADTEACHER))
    other_admin = make_user(Role.ADMIN)
    asker, approver = (
        create_user(
            session,
            actor=admin,
            school=school,
            email=f"tech{n}@oakfield.example",
            name=f"Tech {n}",
            role=Role.TECHNICIAN,
            password=PASSWORD,
        )
        for n in (1, 2)
    )
    _with_totp(app, asker)
    _with_totp(app, approver)
    session.commit()
    fleet = [enrolled(make_device()) for _ in range(29)]
    batch = commands.issue(session, asker, fleet, "wipe_photos", reason="End of term")
    batch_id = batch[0].batch_id
    assert batch_id and {c.status for c in batch} == {CommandStatus.PENDING_APPROVAL}

    with pytest.raises(Forbidden, match="cannot approve this yet"):
        commands.approve(session, approver, batch_id=batch_id, stepped_up_at=utcnow())
    session.rollback()
    assert {c.status for c in commands.list_commands(session, school.id)} == {
        CommandStatus.PENDING_APPROVAL
    }

    told = session.scalars(
        select(Notification).where(Notification.kind == "auth.approver_added")
    ).all()
    assert {n.user_id for n in told} == {head.id, other_admin.id}
    for notice in told:  # the role and what happened; nobody's name or address (P-SEC-5)
        assert "technician" in notice.title
        for person in (asker, approver, admin):
            assert person.name not in notice.title + notice.body
            assert person.email not in notice.title + notice.body
    mailed = session.scalars(
        select(EmailMessage.to_address)
        .join(Notification, Notification.id == EmailMessage.notification_id)
        .where(Notification.kind == "auth.approver_added")
    ).all()
    assert sorted(mailed) == sorted([head.email, other_admin.email] * 2)

    # The headteacher, settled and with a second factor, is the independent second person.
    approved = commands.approve(session, head, batch_id=batch_id, stepped_up_at=utcnow())
    statuses = {session.get_one(Command, command_id).status for command_id in approved}
    assert len(approved) == 29 and statuses == {CommandStatus.QUEUED}


def test_an_approver_the_requester_set_up_is_not_a_second_person(
    app: Flask,
    session: Session,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> None:
    """P-SEC-1: the two-person rule compared account ids only; an account the requester created
    (however long ago, with a second factor) is not independent of them."""
    maker = make_user(Role.ADMIN)
    made = settle(
        create_user(
            session,
            actor=maker,
            school=school,
            email="made@oakfield.example",
            name="Made",
            role=Role.TECHNICIAN,
            password=PASSWORD,
        )
    )
    maker.role = Role.TECHNICIAN  # the maker later sends commands themselves
    session.commit()
    device = enrolled(make_device())
    (command,) = commands.issue(session, maker, [device], "factory_reset", reason="Returned")
    with pytest.raises(Forbidden, match="independent"):
        commands.approve(session, made, command_id=command.id, stepped_up_at=utcnow())
    session.rollback()
    assert commands.get_command(session, school.id, command.id).status is (
        CommandStatus.PENDING_APPROVAL
    )


def test_guessing_codes_after_the_password_ends_the_log_in(
    app: Flask, client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: the code step accepted 3,163 wrong codes in 20 s and then the right one; now
    five wrong codes end the pending log-in and even the right code is refused after them."""
    tech = make_user(Role.TECHNICIAN)
    secret = _with_totp(app, tech)
    session.commit()
    assert post_login(client, tech.email).headers["Location"] == "/login/code"
    token = csrf_token(client, "/login/code")
    for _ in range(5):
        client.post("/login/code", data={"csrf_token": token, "code": WRONG})
    right = client.post("/login/code", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert right.status_code == 302 and right.headers["Location"] == "/login"
    assert client.get("/").status_code == 302  # not logged in
    actions = session.scalars(select(ActivityEntry.action)).all()
    assert "auth.code_locked_out" in actions


def test_wrong_codes_count_per_account_across_fresh_log_ins(
    app: Flask, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: starting again with the password does not buy more guesses: five wrong codes
    per account in 15 minutes, however many pending log-ins they are spread over."""
    tech = make_user(Role.TECHNICIAN)
    secret = _with_totp(app, tech)
    session.commit()
    for wrong in (3, 2):
        browser = app.test_client()
        assert post_login(browser, tech.email).headers["Location"] == "/login/code"
        token = csrf_token(browser, "/login/code")
        for _ in range(wrong):
            browser.post("/login/code", data={"csrf_token": token, "code": WRONG})
    browser.post("/login/code", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert browser.get("/").status_code == 302
    again = app.test_client()
    assert post_login(again, tech.email).status_code == 429  # the password step waits too


def test_a_session_cookie_copied_before_signing_out_is_dead(
    client: FlaskClient, app: Flask, make_user: Callable[..., User]
) -> None:
    """P-SEC-4: signing out ends the session on the server, not only in this browser."""
    teacher = make_user(Role.TEACHER)
    assert post_login(client, teacher.email).status_code == 302
    copied = client.get_cookie("trolley_session")
    assert copied is not None and client.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    thief = app.test_client()
    thief.set_cookie("trolley_session", copied.value)
    assert thief.get("/").status_code == 302


def test_a_token_cannot_make_tokens(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: a token minted a second one, which survived revoking the first and read an
    escrowed PIN. Tokens are made only in a browser session with a second factor."""
    tech = make_user(Role.TECHNICIAN)
    stolen = token_for(tech)
    minted = client.post("/api/v1/tokens", headers=stolen, json={"name": "persistence"})
    assert minted.status_code == 403
    assert session.scalar(select(ApiToken).where(ApiToken.name == "persistence")) is None


def test_a_password_alone_cannot_make_a_token(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: API tokens skipped the second factor; a log-in without one cannot make one."""
    teacher = make_user(Role.TEACHER)
    assert post_login(client, teacher.email).status_code == 302
    page = client.post(
        "/account",
        data={
            "csrf_token": csrf_token(client, "/account"),
            "name": "script",
            "scope": "read",
            "days": "30",
        },
    )
    assert "new-token" not in page.get_data(as_text=True)
    api = client.post(
        "/api/v1/tokens",
        json={"name": "script"},
        headers={"X-CSRFToken": csrf_token(client, "/account")},
    )
    assert api.status_code == 403
    assert session.scalar(select(ApiToken).where(ApiToken.user_id == teacher.id)) is None


def test_tokens_expire(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: API tokens never expired; by default one stops working after 90 days."""
    headers = token_for(make_user())
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    later = utcnow() + timedelta(days=91)
    app.extensions["trolley.clock"] = lambda: later
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_a_password_reset_revokes_tokens(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: tokens survived `trolley users reset-password`; the reset revokes them."""
    user = make_user(Role.TECHNICIAN)
    headers = token_for(user)
    reset_password(session, actor=None, email=user.email, password="a-brand-new-password")
    session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_adding_a_person_never_says_another_school_has_the_address(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    other_school: School,
) -> None:
    """P-SEC-1: school B learnt that an e-mail address has an account in school A."""
    in_a = make_user(Role.TEACHER)
    admin_b = make_user(Role.ADMIN, in_school=other_school)
    log_in_as(client, admin_b)
    response = client.post(
        "/people",
        data={
            "csrf_token": csrf_token(client, "/people"),
            "name": "Someone",
            "email": in_a.email,
            "role": "teacher",
            "password": "a-long-first-password",
        },
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "already" not in text and "cannot be used" in text
    # The detail is kept for the trust's administrator, outside both schools' trails.
    refused = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "user.address_refused")
    ).all()
    assert [(e.school_id, e.details["asked_by_school"]) for e in refused] == [
        (None, other_school.slug)
    ]


def test_an_account_can_be_turned_off_and_everything_of_it_ends(
    app: Flask,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-LEAVE-1: no account could be deactivated; now its sessions, log-in and tokens end."""
    teacher = make_user(Role.TEACHER)
    admin = make_user(Role.ADMIN)
    make_user(Role.ADMIN)
    headers = token_for(teacher)
    theirs = app.test_client()
    assert post_login(theirs, teacher.email).status_code == 302
    assert theirs.get("/").status_code == 200
    office = app.test_client()
    log_in_as(office, admin)
    post_confirmed(
        office,
        f"/people/{teacher.id}/deactivate",
        {"csrf_token": csrf_token(office, "/people"), "reason": "Left at Easter"},
    )
    assert theirs.get("/").status_code == 302
    assert post_login(app.test_client(), teacher.email).status_code == 401
    assert theirs.get("/api/v1/me", headers=headers).status_code == 401


@pytest.mark.parametrize("role", [Role.SBM, Role.COMPUTING_LEAD])
def test_the_sbm_and_the_computing_lead_need_a_second_factor(
    client: FlaskClient, make_user: Callable[..., User], role: Role
) -> None:
    """P-SEC-1: the SBM and the computing lead send commands or hold personal data."""
    person = make_user(role)
    assert post_login(client, person.email).headers["Location"] == "/login/code/setup"
    assert client.get("/").status_code == 302
