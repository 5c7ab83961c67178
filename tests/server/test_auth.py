"""Log-in, throttling, the second factor and sessions (P-SEC-1)."""

from __future__ import annotations

from collections.abc import Callable

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.auth.services import reset_password
from tests.server.conftest import PASSWORD, csrf_token, log_in_as
from tests.server.conftest import post_login as _login


def test_passwords_are_hashed_with_argon2(make_user: Callable[..., User]) -> None:
    """P-SEC-1: strong password hashing."""
    user = make_user()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_teacher_logs_in_and_out(client: FlaskClient, make_user: Callable[..., User]) -> None:
    user = make_user(Role.TEACHER)
    response = _login(client, user.email, PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Teacher" in client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get("/").status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_clear_message(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    wrong = _login(client, user.email, "not-the-password")
    unknown = _login(client, "nobody@nowhere.example", "whatever-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "do not match" in response.get_data(as_text=True)


def test_login_returns_to_the_page_asked_for_but_never_off_site(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    assert _login(client, user.email, PASSWORD, "/devices").headers["Location"] == "/devices"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert _login(client, user.email, PASSWORD, "//evil.example/x").headers["Location"] == "/"


def test_account_locks_after_five_failures_and_logs_it(
    client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    """P-SEC-1: login throttling per account, with a lockout message and an activity entry."""
    user = make_user()
    for _ in range(5):
        assert _login(client, user.email, "wrong-password!").status_code == 401
    locked = _login(client, user.email, PASSWORD)  # even the right password is refused now
    assert locked.status_code == 429
    assert "paused for 15 minutes" in locked.get_data(as_text=True)
    actions = session.scalars(select(ActivityEntry.action)).all()
    assert "auth.locked_out" in actions


def test_one_address_guessing_many_accounts_is_throttled(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: login throttling per address."""
    victim = make_user()
    for i in range(20):
        _login(client, f"guess{i}@nowhere.example", "wrong-password!")
    assert _login(client, victim.email, PASSWORD).status_code == 429


def test_headteacher_must_set_up_a_second_factor(
    client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    """P-SEC-1: a TOTP second factor for privileged roles, set up by scanning a QR code."""
    head = make_user(Role.HEADTEACHER)
    response = _login(client, head.email, PASSWORD)
    assert response.headers["Location"] == "/login/code/setup"
    assert client.get("/").status_code == 302  # not logged in yet
    page = client.get("/login/code/setup").get_data(as_text=True)
    assert "data:image/svg+xml;base64," in page
    secret = page.split('id="totp-secret">')[1].split("<")[0].replace(" ", "")
    token = csrf_token(client, "/login/code/setup")
    bad = client.post("/login/code/setup", data={"csrf_token": token, "code": "000000"})
    assert bad.status_code == 400
    good = client.post(
        "/login/code/setup", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()}
    )
    assert good.status_code == 302 and good.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    session.refresh(head)
    assert head.totp_secret_sealed and secret not in head.totp_secret_sealed


def test_second_factor_code_is_checked_and_never_reused(
    app: Flask, client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    tech = make_user(Role.TECHNICIAN)
    secret = pyotp.random_base32()
    tech.totp_secret_sealed = app.extensions["trolley.box"].seal(secret)
    session.commit()
    assert _login(client, tech.email, PASSWORD).headers["Location"] == "/login/code"
    token = csrf_token(client, "/login/code")
    assert client.post("/login/code", data={"csrf_token": token, "code": "123"}).status_code == 400
    code = pyotp.TOTP(secret).now()
    assert client.post("/login/code", data={"csrf_token": token, "code": code}).status_code == 302
    other = app.test_client()
    _login(other, tech.email, PASSWORD)
    replay = other.post(
        "/login/code", data={"csrf_token": csrf_token(other, "/login/code"), "code": code}
    )
    assert replay.status_code == 401


def test_forged_session_cookie_is_ignored(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    make_user()
    client.set_cookie("trolley_session", "eyJfdXNlcl9pZCI6IjE6eCJ9.forged.signature")
    assert client.get("/").status_code == 302


def test_password_reset_signs_the_person_out_everywhere(
    client: FlaskClient, make_user: Callable[..., User], session: Session
) -> None:
    user = make_user()
    log_in_as(client, user)
    assert client.get("/").status_code == 200
    reset_password(session, actor=None, email=user.email, password="a-brand-new-password")
    session.commit()
    assert client.get("/").status_code == 302


def test_forms_without_a_csrf_token_are_refused(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """P-SEC-1 hygiene: CSRF on every form."""
    user = make_user()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    log_in_as(client, user)
    assert client.post("/account", data={"name": "x"}).status_code == 400


def test_session_cookie_flags(app: Flask) -> None:
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_a_request_that_changes_nothing_does_not_rewrite_the_session_cookie(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """A slower request running beside another (a stylesheet, the favicon, a page) must not
    answer with the session cookie as it was when it began: that would overwrite a newer one,
    losing a sign-in or the message an import just flashed. Only a change writes the cookie."""
    log_in_as(client, make_user(Role.SBM))
    with client.session_transaction() as sess:
        sess.permanent = True  # as signing in makes it
    client.get("/")  # the first page after signing in settles the session (Flask-Login's id)
    for path in ("/static/trolley.css", "/favicon.ico", "/devices"):
        answer = client.get(path)
        answer.close()  # a static file is streamed from disk
        assert answer.status_code == 200, path
        assert "trolley_session" not in answer.headers.get("Set-Cookie", ""), path
    with client.session_transaction() as sess:
        sess["_flashes"] = [("success", "Imported register.csv")]
    shown = client.get("/devices")  # the flash is read, so the session changes and is written
    assert "Imported register.csv" in shown.get_data(as_text=True)
    assert "trolley_session" in shown.headers.get("Set-Cookie", "")
