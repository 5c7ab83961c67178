"""Passkeys as a second factor and the fresh check before approving a destructive command: what
the server accepts and what it refuses (P-SEC-1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth import services as auth
from server.auth.models import LoginSession, Role, User
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.errors import Forbidden, RateLimited, Unauthorised, ValidationFailed
from tests.server.conftest import csrf_token, log_in_as, post_confirmed, settle
from tests.server.passkey_authenticator import SoftPasskey


@pytest.fixture
def rp(app: Flask) -> auth.RelyingParty:
    settings = app.extensions["trolley.settings"]
    return auth.RelyingParty(settings.passkey_rp_id, settings.passkey_origin)


def _login(session: Session, user: User) -> LoginSession:
    auth.start_session(
        session, user, address="127.0.0.1", method="password+totp", second_factor=True
    )
    login = session.scalars(
        select(LoginSession).where(LoginSession.user_id == user.id).order_by(LoginSession.id.desc())
    ).first()
    assert login is not None
    return login


def _registered(session: Session, user: User, rp: auth.RelyingParty) -> SoftPasskey:
    login = _login(session, user)
    passkey = SoftPasskey(rp.rp_id, rp.origin)
    answer = passkey.create(auth.registration_options(session, login, rp))
    auth.add_passkey(session, login, rp, answer, "School laptop")
    return passkey


def test_a_passkey_is_added_and_finishes_a_log_in(
    session: Session, make_user: Callable[..., User], rp: auth.RelyingParty
) -> None:
    """P-SEC-1: a passkey is a second factor for any role; adding one is in the trail."""
    teacher = make_user(Role.TEACHER)
    passkey = _registered(session, teacher, rp)
    assert [k.name for k in teacher.passkeys] == ["School laptop"]
    assert auth.needs_second_factor(teacher)
    added = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "auth.passkey_added")
    ).all()
    assert [entry.target_id for entry in added] == [str(teacher.passkeys[0].id)]

    key = auth.open_pending_login(session, teacher, address="127.0.0.1")
    answer = passkey.get(auth.login_options(session, key, rp))
    user, live_key = auth.finish_login_with_passkey(session, key, rp, answer)
    assert user.id == teacher.id and live_key != key
    login = _login_by_key(session, teacher)
    assert login.method == "password+passkey" and login.second_factor
    assert teacher.passkeys[0].sign_count == 1 and teacher.passkeys[0].last_used_at is not None


def _login_by_key(session: Session, user: User) -> LoginSession:
    login = session.scalars(
        select(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.method == "password+passkey")
        .order_by(LoginSession.id.desc())
    ).first()
    assert login is not None
    return login


def test_refused_answers_wrong_challenge_origin_replay_and_sign_count(
    session: Session, make_user: Callable[..., User], rp: auth.RelyingParty
) -> None:
    """P-SEC-1: an answer to another challenge, from another site, sent twice, or from an
    authenticator whose counter went back (a copy) is refused."""
    head = settle(make_user(Role.HEADTEACHER))
    passkey = _registered(session, head, rp)
    login = _login(session, head)

    stale = auth.step_up_options(session, login, rp)
    auth.step_up_options(session, login, rp)  # a newer challenge replaces it
    with pytest.raises(Unauthorised):
        auth.step_up_with_passkey(session, login, rp, passkey.get(stale))

    options = auth.step_up_options(session, login, rp)
    with pytest.raises(Unauthorised):
        auth.step_up_with_passkey(
            session, login, rp, passkey.get(options, origin="https://trolley.evil.example")
        )

    options = auth.step_up_options(session, login, rp)
    good = passkey.get(options)
    auth.step_up_with_passkey(session, login, rp, good)
    assert login.stepped_up_at is not None
    with pytest.raises(Unauthorised):
        auth.step_up_with_passkey(session, login, rp, good)

    used = passkey.sign_count
    options = auth.step_up_options(session, login, rp)
    with pytest.raises(Unauthorised):
        auth.step_up_with_passkey(session, login, rp, passkey.get(options, count=used - 1))
    assert head.passkeys[0].sign_count == used


def test_a_registration_for_another_site_is_refused(
    session: Session, make_user: Callable[..., User], rp: auth.RelyingParty
) -> None:
    teacher = make_user(Role.TEACHER)
    login = _login(session, teacher)
    passkey = SoftPasskey(rp.rp_id, rp.origin)
    options = auth.registration_options(session, login, rp)
    with pytest.raises(ValidationFailed):
        auth.add_passkey(
            session, login, rp, passkey.create(options, origin="https://evil.example"), "x"
        )
    with pytest.raises(Unauthorised):  # the challenge was spent
        auth.add_passkey(session, login, rp, passkey.create(options), "x")
    assert teacher.passkeys == []


def test_refused_passkeys_at_log_in_count_as_wrong_codes(
    session: Session, make_user: Callable[..., User], rp: auth.RelyingParty
) -> None:
    """P-SEC-1: at most 5 wrong second factors per pending log-in, then it is over."""
    teacher = make_user(Role.TEACHER)
    passkey = _registered(session, teacher, rp)
    key = auth.open_pending_login(session, teacher, address="127.0.0.1")
    for _ in range(4):
        options = auth.login_options(session, key, rp)
        with pytest.raises(Unauthorised):
            auth.finish_login_with_passkey(
                session, key, rp, passkey.get(options, origin="https://evil.example")
            )
    options = auth.login_options(session, key, rp)
    with pytest.raises(RateLimited):
        auth.finish_login_with_passkey(
            session, key, rp, passkey.get(options, origin="https://evil.example")
        )
    with pytest.raises(Unauthorised):
        auth.login_options(session, key, rp)


def test_the_last_second_factor_a_role_needs_cannot_be_removed(
    session: Session, make_user: Callable[..., User], rp: auth.RelyingParty
) -> None:
    technician = make_user(Role.TECHNICIAN)
    _registered(session, technician, rp)
    with pytest.raises(Forbidden):
        auth.remove_passkey(session, technician, technician.passkeys[0].id)
    teacher = make_user(Role.TEACHER)
    _registered(session, teacher, rp)
    auth.remove_passkey(session, teacher, teacher.passkeys[0].id)
    assert teacher.passkeys == []


def _waiting_reset(
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> tuple[User, Command]:
    technician = make_user(Role.TECHNICIAN)
    (command,) = commands.issue(
        session, technician, [enrolled(make_device())], "factory_reset", reason="Stolen"
    )
    assert command.status is CommandStatus.PENDING_APPROVAL
    head = settle(make_user(Role.HEADTEACHER))
    session.commit()
    return head, command


def test_approving_needs_a_fresh_check(
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> None:
    """P-SEC-1: a session's own log-in long ago does not approve a factory reset."""
    head, command = _waiting_reset(session, make_user, make_device, enrolled)
    now = utcnow()
    for stepped_up_at in (None, now - timedelta(minutes=6)):
        with pytest.raises(Forbidden) as refused:
            commands.approve(session, head, command_id=command.id, stepped_up_at=stepped_up_at)
        assert refused.value.code == "step_up_required"
        session.rollback()
    approved = commands.approve(
        session, head, command_id=command.id, stepped_up_at=now - timedelta(minutes=4), now=now
    )
    assert approved == [command.id] and command.status is CommandStatus.QUEUED


def test_a_browser_signed_in_long_ago_is_sent_to_confirm_before_approving(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> None:
    """P-SEC-1: a session cookie taken from the head's browser an hour after log-in cannot
    approve a factory reset: the page asks for a passkey or code first. Failed before."""
    head, command = _waiting_reset(session, make_user, make_device, enrolled)
    secret = pyotp.random_base32()
    head.totp_secret_sealed = app.extensions["trolley.box"].seal(secret)
    log_in_as(client, head)
    login = _login_by_method(session, head, "password+totp")
    login.stepped_up_at = utcnow() - timedelta(hours=1)
    session.commit()
    token = csrf_token(client, "/commands")
    # Until it is proved, the page's Approve asks nothing: the proof comes first, then the
    # question, once.
    approve_form = rf'<form[^>]*action="/commands/{command.id}/approve"[^>]*>'
    (form,) = re.findall(approve_form, client.get("/commands").get_data(as_text=True))
    assert "data-confirm" not in form
    answer = client.post(f"/commands/{command.id}/approve", data={"csrf_token": token})
    assert answer.status_code == 302 and "/account/step-up" in answer.headers["Location"]
    session.refresh(command)
    assert command.status is CommandStatus.PENDING_APPROVAL

    step_up = answer.headers["Location"]
    token = csrf_token(client, step_up)
    code = pyotp.TOTP(secret).now()
    confirmed = client.post(step_up, data={"csrf_token": token, "code": code})
    assert confirmed.status_code == 302 and confirmed.headers["Location"].endswith("/commands")
    (form,) = re.findall(approve_form, client.get("/commands").get_data(as_text=True))
    assert 'data-confirm-question="Approve the factory reset of 1 device' in form
    answer = post_confirmed(client, f"/commands/{command.id}/approve", {"csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/commands")
    session.refresh(command)
    assert command.status is CommandStatus.QUEUED


def _login_by_method(session: Session, user: User, method: str) -> LoginSession:
    login = session.scalars(
        select(LoginSession).where(LoginSession.user_id == user.id, LoginSession.method == method)
    ).first()
    assert login is not None
    return login


def test_an_api_token_approves_only_with_a_fresh_code(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: a stolen token never saw a second factor, so alone it cannot approve a factory
    reset; with the approver's current code it can. Failed before (the token approved)."""
    head, command = _waiting_reset(session, make_user, make_device, enrolled)
    secret = pyotp.random_base32()
    head.totp_secret_sealed = app.extensions["trolley.box"].seal(secret)
    headers = token_for(head)
    url = f"/api/v1/commands/{command.id}/approve"
    refused = client.post(url, json={}, headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "step_up_required"
    wrong = client.post(url, json={"code": "000000"}, headers=headers)
    assert wrong.status_code == 403
    session.refresh(command)
    assert command.status is CommandStatus.PENDING_APPROVAL
    approved = client.post(url, json={"code": pyotp.TOTP(secret).now()}, headers=headers)
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["items"][0]["status"] == "queued"
