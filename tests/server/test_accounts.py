"""Accounts that end, role changes a second administrator confirms, sessions that time out and
tokens with a scope and an end (P-SEC-1, P-SEC-4, P-LEAVE-1)."""

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
from server.auth import services
from server.auth.models import ApiToken, ChangeStatus, LoginSession, Role, TokenScope, User
from server.commands import services as commands
from server.db import utcnow
from server.devices.models import Device
from server.errors import Conflict, Forbidden, ValidationFailed
from server.notifications.models import Notification
from server.schools.models import School
from tests.server.conftest import PASSWORD, csrf_token, log_in_as, post_login, settle


def _notified(session: Session, kind: str) -> set[int]:
    return set(session.scalars(select(Notification.user_id).where(Notification.kind == kind)))


def _live_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
    )


# --- logging in and sessions -------------------------------------------------------------------


def test_a_log_in_with_a_code_may_make_a_read_only_token(
    app: Flask, client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: the normal log-in with a code still works, and such a session may make tokens."""
    tech = make_user(Role.TECHNICIAN)
    secret = pyotp.random_base32()
    tech.totp_secret_sealed = app.extensions["trolley.box"].seal(secret)
    session.commit()
    assert post_login(client, tech.email, next_path="/account").headers["Location"] == (
        "/login/code"
    )
    code = pyotp.TOTP(secret).now()
    signed_in = client.post(
        "/login/code", data={"csrf_token": csrf_token(client, "/login/code"), "code": code}
    )
    assert signed_in.headers["Location"] == "/account"
    page = client.post(
        "/account",
        data={
            "csrf_token": csrf_token(client, "/account"),
            "name": "Stock report",
            "scope": "read",
            "days": "30",
        },
    ).get_data(as_text=True)
    assert 'id="new-token"' in page and "Read only" in page
    (token,) = _live_tokens(session, tech)
    assert token.scope is TokenScope.READ
    assert timedelta(days=29) < token.expires_at - token.created_at <= timedelta(days=30)
    login = session.scalars(select(LoginSession).where(LoginSession.user_id == tech.id)).one()
    assert login.second_factor and login.method == "password+totp"


def test_an_idle_session_ends_after_the_schools_idle_time(
    app: Flask, client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-4: signed out after 10 minutes without activity (the default), or what the school
    sets; using Trolley keeps the session alive."""
    teacher = make_user(Role.TEACHER)
    start = utcnow()
    app.extensions["trolley.clock"] = lambda: start
    assert post_login(client, teacher.email).status_code == 302
    for minutes in (9, 18, 27):  # each visit within ten minutes of the last
        app.extensions["trolley.clock"] = lambda minutes=minutes: start + timedelta(minutes=minutes)
        assert client.get("/").status_code == 200, minutes
    app.extensions["trolley.clock"] = lambda: start + timedelta(minutes=38)
    idle = client.get("/")
    assert idle.status_code == 302 and "/login" in idle.headers["Location"]
    assert "signed out after 10 minutes" in client.get("/login").get_data(as_text=True)

    services.set_security(session, None, teacher.school_id, idle_minutes=30)
    app.extensions["trolley.clock"] = lambda: start + timedelta(minutes=40)
    assert post_login(client, teacher.email).status_code == 302
    app.extensions["trolley.clock"] = lambda: start + timedelta(minutes=65)
    assert client.get("/").status_code == 200
    ended = session.scalars(
        select(LoginSession.end_reason).where(LoginSession.user_id == teacher.id)
    )
    assert list(ended) == ["idle", None]


def test_signing_out_ends_only_this_session(app: Flask, make_user: Callable[..., User]) -> None:
    """P-SEC-4: "log-out of systems when leaving their computer": the other browser stays in."""
    teacher = make_user(Role.TEACHER)
    here, there = app.test_client(), app.test_client()
    for browser in (here, there):
        assert post_login(browser, teacher.email).status_code == 302
    here.post("/logout", data={"csrf_token": csrf_token(here, "/")})
    assert here.get("/").status_code == 302
    assert there.get("/").status_code == 200


# --- tokens ------------------------------------------------------------------------------------


def test_a_read_token_reads_but_is_refused_on_a_writing_route(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: a read-only token cannot change anything, whatever its owner's role allows."""
    user = make_user(Role.TECHNICIAN)
    token, plain = services.issue_token(session, user, "dashboard", scope=TokenScope.READ)
    session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    refused = client.delete(f"/api/v1/tokens/{token.id}", headers=headers)
    assert refused.status_code == 403 and "only read" in refused.get_json()["error"]["message"]
    assert _live_tokens(session, user) == [token]


def test_a_token_lasts_at_most_the_schools_longest(
    session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: 90 days unless the school's server says fewer; never longer."""
    user = make_user()
    token, _plain = services.issue_token(session, user, "a")
    assert token.expires_at - token.created_at == timedelta(days=90)
    with pytest.raises(ValidationFailed, match="1 to 90 days"):
        services.issue_token(session, user, "b", days=91)
    services.set_security(session, None, user.school_id, token_days=30)
    shorter, _plain = services.issue_token(session, user, "c")
    assert shorter.expires_at - shorter.created_at == timedelta(days=30)


def test_the_api_makes_a_token_only_for_a_session_with_a_second_factor(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: the API's own token route follows the same rule as the account page."""
    tech = make_user(Role.TECHNICIAN)
    log_in_as(client, tech)
    made = client.post(
        "/api/v1/tokens",
        json={"name": "sync", "scope": "read_write", "days": 7},
        headers={"X-CSRFToken": csrf_token(client, "/account")},
    )
    assert made.status_code == 201
    body = made.get_json()
    assert body["scope"] == "read_write" and body["token"].startswith("trl_")


# --- accounts that end -------------------------------------------------------------------------


def test_turning_accounts_off_has_guards(session: Session, make_user: Callable[..., User]) -> None:
    """P-LEAVE-1: a reason is kept; nobody turns themselves off or the last administrator."""
    admin = make_user(Role.ADMIN)
    teacher = make_user()
    with pytest.raises(ValidationFailed, match="Say why"):
        services.deactivate(session, admin, teacher, "  ")
    with pytest.raises(ValidationFailed, match="your own account"):
        services.deactivate(session, admin, admin, "testing")
    with pytest.raises(Conflict, match="only administrator"):
        services.deactivate(session, None, admin, "leaving")
    services.deactivate(session, admin, teacher, "Left in July")
    services.deactivate(session, admin, teacher, "Again")  # already off: nothing more happens
    entries = session.scalars(
        select(ActivityEntry.details).where(ActivityEntry.action == "user.deactivated")
    ).all()
    assert [e["reason"] for e in entries] == ["Left in July"]


def test_a_leaver_case_turns_the_account_off_inside_its_own_transaction(
    session: Session, make_user: Callable[..., User]
) -> None:
    """P-LEAVE-1: `commit=False` joins the caller's transaction, so a failed sign-off undoes it."""
    technician = make_user(Role.TECHNICIAN)
    leaver = make_user()
    services.deactivate(session, technician, leaver, "Leaver case signed off", commit=False)
    assert not leaver.active
    session.rollback()
    session.refresh(leaver)
    assert leaver.active


def test_turning_an_account_back_on_restarts_its_cooling_off(
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
) -> None:
    """P-SEC-1: re-activated counts as new for approving, and the headteacher is told."""
    admin = make_user(Role.ADMIN)
    tech = make_user(Role.TECHNICIAN)
    head = settle(make_user(Role.HEADTEACHER))
    other_head = make_user(Role.HEADTEACHER)
    session.commit()
    services.deactivate(session, admin, head, "On leave")
    services.reactivate(session, admin, head, "Back from leave")
    assert _notified(session, "auth.approver_added") == {other_head.id}
    (command,) = commands.issue(session, tech, [enrolled(make_device())], "factory_reset")
    with pytest.raises(Forbidden, match="cannot approve this yet"):
        commands.approve(session, head, command_id=command.id, stepped_up_at=utcnow())
    session.rollback()
    later = utcnow() + timedelta(days=8)
    assert commands.approve(session, head, command_id=command.id, now=later, stepped_up_at=later)


def test_an_approver_needs_a_second_factor_and_may_not_be_re_activated_by_the_requester(
    session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: the rule itself, on the auth domain's own terms."""
    now = utcnow()
    asker = make_user(Role.TECHNICIAN)
    approver = make_user(Role.HEADTEACHER)
    approver.created_at = now - timedelta(days=30)
    with pytest.raises(Forbidden, match="two-step"):
        services.check_independent_approver(session, approver, asker, now)
    settle(approver)
    services.check_independent_approver(session, approver, asker, now)
    approver.reactivated_by_id, approver.reactivated_at = asker.id, now - timedelta(days=20)
    with pytest.raises(Forbidden, match="independent"):
        services.check_independent_approver(session, approver, asker, now)
    with pytest.raises(Forbidden, match="cannot approve it too"):
        services.check_independent_approver(session, asker, asker, now)


# --- roles -------------------------------------------------------------------------------------


def test_a_role_that_can_approve_waits_for_a_second_administrator(
    app: Flask,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: promoting someone to technician takes two administrators; the headteacher and
    the administrators are told; the person's old sessions and tokens end."""
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)
    head = make_user(Role.HEADTEACHER)
    person = make_user(Role.TEACHER)
    token_for(person)
    theirs = app.test_client()
    log_in_as(theirs, person)
    change = services.change_role(session, first, person, Role.TECHNICIAN)
    assert change is not None and person.role is Role.TEACHER
    assert _notified(session, "auth.role_change_waiting") == {second.id}
    with pytest.raises(Forbidden, match="second administrator"):
        services.confirm_role_change(session, first, change.id)
    session.rollback()

    office = app.test_client()
    log_in_as(office, second)
    page = office.get("/people").get_data(as_text=True)
    assert "Role changes waiting for a second administrator" in page
    office.post(
        f"/people/role-changes/{change.id}/confirm",
        data={"csrf_token": csrf_token(office, "/people")},
    )
    session.refresh(person)
    session.refresh(change)
    assert person.role is Role.TECHNICIAN and change.status is ChangeStatus.CONFIRMED
    assert person.role_changed_by_id == first.id and person.role_changed_at is not None
    assert _notified(session, "auth.approver_added") == {head.id, first.id}
    assert theirs.get("/").status_code == 302
    assert _live_tokens(session, person) == []


def test_a_role_that_cannot_approve_changes_at_once(
    app: Flask, session: Session, make_user: Callable[..., User]
) -> None:
    """A new role without approving rights needs no second administrator; sessions still end."""
    admin = make_user(Role.ADMIN)
    person = make_user(Role.TEACHER)
    theirs = app.test_client()
    log_in_as(theirs, person)
    office = app.test_client()
    log_in_as(office, admin)
    office.post(
        f"/people/{person.id}/role",
        data={"csrf_token": csrf_token(office, "/people"), "role": "governor"},
    )
    session.refresh(person)
    assert person.role is Role.GOVERNOR
    assert theirs.get("/").status_code == 302
    assert _notified(session, "auth.approver_added") == set()


def test_the_only_administrator_keeps_the_role(
    session: Session, make_user: Callable[..., User]
) -> None:
    admin = make_user(Role.ADMIN)
    with pytest.raises(Conflict, match="only administrator"):
        services.change_role(session, None, admin, Role.TEACHER)


# --- the school's settings ---------------------------------------------------------------------


def test_an_administrator_sets_the_idle_time_and_nothing_else(
    client: FlaskClient, session: Session, make_user: Callable[..., User], school: School
) -> None:
    """P-SEC-4: the school's settings page changes the idle time, within 2 to 60 minutes; the
    cooling-off and token lifetime are shown but changed only on the server."""
    log_in_as(client, make_user(Role.ADMIN))
    page = client.get("/school/security").get_data(as_text=True)
    assert 'value="10"' in page and "7 days" in page and "90 days" in page
    token = csrf_token(client, "/school/security")
    too_long = client.post(
        "/school/security",
        data={"csrf_token": token, "idle_minutes": "600", "approver_cooling_off_days": "0"},
    )
    assert too_long.status_code == 400
    saved = client.post("/school/security", data={"csrf_token": token, "idle_minutes": "5"})
    assert saved.status_code == 302
    now = services.security(session, school.id)
    assert (now.idle_minutes, now.approver_cooling_off_days) == (5, 7)
    entry = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "school.security_changed")
    ).one()
    assert entry.details == {"idle_minutes": [10, 5]}


def test_a_teacher_may_add_a_second_factor_of_their_own(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: anyone may turn on two-step verification; every log-in then asks for a code."""
    teacher = make_user()
    assert post_login(client, teacher.email).headers["Location"] == "/"
    page = client.get("/account/two-step").get_data(as_text=True)
    secret = page.split('id="totp-secret">')[1].split("<")[0].replace(" ", "")
    client.post(
        "/account/two-step",
        data={
            "csrf_token": csrf_token(client, "/account/two-step"),
            "code": pyotp.TOTP(secret).now(),
        },
    )
    session.refresh(teacher)
    assert teacher.totp_enabled
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert post_login(client, teacher.email, PASSWORD).headers["Location"] == "/login/code"


def test_the_api_turns_accounts_off_and_on_in_the_school_only(
    client: FlaskClient,
    make_user: Callable[..., User],
    other_school: School,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-LEAVE-1: the same service over the API, scoped to the caller's school."""
    headers = token_for(make_user(Role.ADMIN))
    teacher = make_user()
    elsewhere = make_user(in_school=other_school)
    off = client.post(
        f"/api/v1/users/{teacher.id}/deactivate", headers=headers, json={"reason": "Left"}
    )
    assert off.status_code == 200 and off.get_json()["active"] is False
    on = client.post(
        f"/api/v1/users/{teacher.id}/reactivate", headers=headers, json={"reason": "Back"}
    )
    assert on.status_code == 200 and on.get_json()["active"] is True
    other = client.post(
        f"/api/v1/users/{elsewhere.id}/deactivate", headers=headers, json={"reason": "x"}
    )
    assert other.status_code == 404
