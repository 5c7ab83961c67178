"""The bell, the notifications page, the e-mail delivery page and the JSON API."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.config import Settings
from server.db import utcnow
from server.notifications.models import EmailMessage, EmailStatus, Notification
from server.notifications.services import notify, send_due_email
from server.schools.models import School
from tests.server.conftest import csrf_token, log_in_as


def _tell(session: Session, user: User, title: str, link: str | None = "/devices") -> Notification:
    [notice] = notify(
        session,
        school_id=user.school_id,
        users=[user],
        kind="audit.due",
        title=title,
        body=f"{title}: the details.",
        link=link,
    )
    session.commit()
    return notice


def _fail(session: Session, message: EmailMessage) -> None:
    message.status, message.attempts, message.last_error = EmailStatus.FAILED, 10, "Boom."
    session.commit()


def _bell(page: str) -> str:
    match = re.search(r'<a href="/notifications" class="bell"[^>]*aria-label="([^"]+)"', page)
    assert match, "no bell on the page"
    return match.group(1)


def test_the_bell_shows_the_count_and_reading_clears_it(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    teacher = make_user(Role.TEACHER)
    first = _tell(session, teacher, "Trolley not back")
    _tell(session, teacher, "Photo check due", link=None)
    log_in_as(client, teacher)

    home = client.get("/").get_data(as_text=True)
    assert _bell(home) == "Notifications, 2 unread"
    assert "Photo check due" in home and '<a href="/devices">Trolley not back</a>' in home
    page = client.get("/notifications").get_data(as_text=True)
    assert page.index("Photo check due") < page.index("Trolley not back")  # newest first
    assert page.count('class="notice unread"') == 2
    assert '<a href="/devices"><strong>Trolley not back</strong></a>' in page

    token = csrf_token(client, "/notifications")
    response = client.post(f"/notifications/{first.id}/read", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get("/notifications").get_data(as_text=True)
    assert _bell(page) == "Notifications, 1 unread" and page.count('class="notice unread"') == 1

    client.post("/notifications/read-all", data={"csrf_token": token})
    page = client.get("/").get_data(as_text=True)
    assert _bell(page) == "Notifications"
    assert "Nothing new." in page  # the home card
    # Without the CSRF token nothing changes hands.
    _tell(session, teacher, "Another")
    assert client.post("/notifications/read-all").status_code == 400
    assert _bell(client.get("/").get_data(as_text=True)) == "Notifications, 1 unread"


def test_the_delivery_page_shows_failures_and_retries_them(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: failed deliveries are visible to the head, with the reason and a retry."""
    head = make_user(Role.HEADTEACHER)
    _tell(session, head, "Lost iPad")
    send_due_email(session, mail_settings, utcnow())  # nothing is listening: a real failure
    message = session.scalars(select(EmailMessage)).one()
    log_in_as(client, head)

    page = client.get("/notifications/email").get_data(as_text=True)
    assert "Termly device audit due today" in page and "Waiting to send" in page
    assert "1 attempt." in page and "Lost iPad" not in page  # the subject is the minimal notice
    assert "nothing is answering" in page and "Try again" not in page

    _fail(session, message)
    assert "1 e-mail could not be sent" in client.get("/").get_data(as_text=True)
    page = client.get("/notifications/email?status=failed").get_data(as_text=True)
    assert "Could not send" in page and "Try again" in page and "Boom." in page
    token = csrf_token(client, "/notifications/email")
    response = client.post(f"/notifications/email/{message.id}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    session.refresh(message)
    assert message.status == EmailStatus.QUEUED and message.attempts == 0
    assert "back in the queue" in client.get("/notifications/email").get_data(as_text=True)
    again = client.post(f"/notifications/email/{message.id}/retry", data={"csrf_token": token})
    assert again.status_code == 409


def test_a_teacher_cannot_see_or_retry_email(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    teacher = make_user(Role.TEACHER)
    _tell(session, teacher, "Hello")
    message = session.scalars(select(EmailMessage)).one()
    _fail(session, message)
    log_in_as(client, teacher)
    token = csrf_token(client, "/notifications")
    assert "E-mail delivery" not in client.get("/notifications").get_data(as_text=True)
    assert client.get("/notifications/email").status_code == 403
    assert (
        client.post(
            f"/notifications/email/{message.id}/retry", data={"csrf_token": token}
        ).status_code
        == 403
    )
    headers = token_for(teacher)
    assert client.get("/api/v1/email", headers=headers).status_code == 403
    assert client.post(f"/api/v1/email/{message.id}/retry", headers=headers).status_code == 403
    session.refresh(message)
    assert message.status == EmailStatus.FAILED


def test_the_api_lists_and_marks_notifications(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    user = make_user(Role.TECHNICIAN)
    first = _tell(session, user, "One")
    _tell(session, user, "Two")
    headers = token_for(user)

    body = client.get("/api/v1/notifications", headers=headers).get_json()
    assert body["unread_count"] == 2
    assert [i["title"] for i in body["items"]] == ["Two", "One"]
    assert body["items"][1]["link"] == "/devices" and body["items"][1]["read_at"] is None
    older = client.get(
        f"/api/v1/notifications?before_id={body['items'][0]['id']}&limit=5", headers=headers
    )
    assert [i["title"] for i in older.get_json()["items"]] == ["One"]

    read = client.post(f"/api/v1/notifications/{first.id}/read", headers=headers)
    assert read.status_code == 200 and read.get_json()["read_at"]
    assert client.get("/api/v1/notifications", headers=headers).get_json()["unread_count"] == 1
    done = client.post("/api/v1/notifications/read-all", headers=headers).get_json()
    assert done == {"marked": 1, "unread_count": 0}
    assert client.post("/api/v1/notifications/999999/read", headers=headers).status_code == 404
    assert client.get("/api/v1/notifications?limit=0", headers=headers).status_code == 400
    assert client.get("/api/v1/notifications?colour=red", headers=headers).status_code == 400


def test_the_api_shows_delivery_and_retries(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    head = make_user(Role.HEADTEACHER)
    sbm = make_user(Role.SBM)
    _tell(session, head, "Lost iPad")
    message = session.scalars(select(EmailMessage)).one()
    _fail(session, message)
    headers = token_for(sbm)

    body = client.get("/api/v1/email", headers=headers).get_json()
    assert body["counts"] == {"queued": 0, "sent": 0, "failed": 1}
    assert body["mail_server_configured"] is False
    [item] = body["items"]
    assert item["to_address"] == head.email and item["last_error"] == "Boom."
    assert item["status"] == "failed" and item["next_attempt_at"] is None
    assert client.get("/api/v1/email?status=sent", headers=headers).get_json()["items"] == []
    assert client.get("/api/v1/email?status=lost", headers=headers).status_code == 400

    retried = client.post(f"/api/v1/email/{message.id}/retry", headers=headers)
    assert retried.status_code == 200 and retried.get_json()["status"] == "queued"
    conflict = client.post(f"/api/v1/email/{message.id}/retry", headers=headers)
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "conflict"
    assert client.post("/api/v1/email/999999/retry", headers=headers).status_code == 404


def test_one_school_never_sees_another_schools_notifications_or_email(
    client: FlaskClient,
    session: Session,
    other_school: School,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: notifications and e-mails are scoped to their school and their person."""
    head = make_user(Role.HEADTEACHER)
    colleague = make_user(Role.TEACHER)
    their_head = make_user(Role.HEADTEACHER, in_school=other_school)
    theirs = _tell(session, their_head, "Elmwood secret")
    colleagues = _tell(session, colleague, "Colleague's own")
    their_email = session.scalars(
        select(EmailMessage).where(EmailMessage.school_id == other_school.id)
    ).one()
    _fail(session, their_email)
    headers = token_for(head)

    assert client.get("/api/v1/notifications", headers=headers).get_json()["items"] == []
    for notice in (theirs, colleagues):
        assert (
            client.post(f"/api/v1/notifications/{notice.id}/read", headers=headers).status_code
            == 404
        )
    assert client.post("/api/v1/notifications/read-all", headers=headers).get_json()["marked"] == 0
    email = client.get("/api/v1/email?status=failed", headers=headers).get_json()
    assert email["items"] == [] and email["counts"]["failed"] == 0
    assert client.post(f"/api/v1/email/{their_email.id}/retry", headers=headers).status_code == 404

    log_in_as(client, head)
    token = csrf_token(client, "/notifications")
    assert "Elmwood secret" not in client.get("/notifications").get_data(as_text=True)
    assert "Elmwood secret" not in client.get("/notifications/email?status=failed").get_data(
        as_text=True
    )
    response = client.post(f"/notifications/{theirs.id}/read", data={"csrf_token": token})
    assert response.status_code == 404
    retry = client.post(f"/notifications/email/{their_email.id}/retry", data={"csrf_token": token})
    assert retry.status_code == 404
    session.refresh(theirs)
    session.refresh(their_email)
    assert theirs.read_at is None and their_email.status == EmailStatus.FAILED
