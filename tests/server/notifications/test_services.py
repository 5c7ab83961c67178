"""Queueing notifications: who gets them, what is checked, and whose transaction they join."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.errors import NotFound, ValidationFailed
from server.notifications.models import EmailMessage, Notification
from server.notifications.services import (
    Attachment,
    list_for_user,
    mark_all_read,
    mark_read,
    notify,
    notify_roles,
    unread_count,
)
from server.schools.models import School


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_notify_roles_reaches_active_people_with_those_roles_in_that_school_only(
    session: Session, other_school: School, make_user: Callable[..., User]
) -> None:
    """P-REG-2: the SBM (and only the SBM) hears of a location-change request."""
    sbm = make_user(Role.SBM)
    away = make_user(Role.SBM)
    away.active = False
    make_user(Role.TEACHER)
    make_user(Role.SBM, in_school=other_school)
    session.commit()

    notices = notify_roles(
        session,
        school_id=sbm.school_id,
        roles=[Role.SBM],
        kind="location_change",
        title="Year 4 trolley: move requested",
        body="A teacher asked to move the Year 4 trolley to the library.",
        link="/locations",
    )

    assert [n.user_id for n in notices] == [sbm.id]
    emails = session.scalars(select(EmailMessage)).all()
    assert [(e.to_address, e.school_id, e.link) for e in emails] == [
        (sbm.email, sbm.school_id, "/locations")
    ]


def test_notify_joins_the_callers_transaction(
    session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    notify(session, school_id=user.school_id, users=[user], kind="audit.due", title="T", body="B")
    assert _count(session, Notification) == 1 and _count(session, EmailMessage) == 1
    session.rollback()  # the caller changed its mind: nothing was committed behind its back
    assert _count(session, Notification) == 0 and _count(session, EmailMessage) == 0


def test_notify_without_email_and_each_person_once(
    session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    notices = notify(
        session,
        school_id=user.school_id,
        users=[user, user],
        kind="audit.due",
        title="  Two\nlines ",
        body="B",
        email=False,
    )
    assert len(notices) == 1 and notices[0].title == "Two lines"
    assert _count(session, EmailMessage) == 0


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/",
        "//evil.example/x",
        "javascript:alert(1)",
        "devices",
        "/\\evil.example",
        "/a b",
    ],
)
def test_links_must_stay_on_the_site(
    session: Session, make_user: Callable[..., User], link: str
) -> None:
    user = make_user()
    with pytest.raises(ValidationFailed):
        notify(
            session,
            school_id=user.school_id,
            users=[user],
            kind="audit.due",
            title="T",
            body="B",
            link=link,
        )


def test_bad_attachments_and_other_schools_are_refused(
    session: Session, other_school: School, make_user: Callable[..., User]
) -> None:
    user = make_user()
    stranger = make_user(in_school=other_school)
    for bad in (
        Attachment("../../etc/passwd", "text/plain", b"x"),
        Attachment("invite.ics", "calendar", b"x"),
        Attachment("invite.ics", "text/calendar; method=REQUEST\r\nBcc: x@evil.example", b"x"),
        Attachment("big.bin", "application/octet-stream", b"x" * (5 * 1024 * 1024 + 1)),
    ):
        with pytest.raises(ValidationFailed):
            notify(
                session,
                school_id=user.school_id,
                users=[user],
                kind="audit.due",
                title="T",
                body="B",
                attachments=[bad],
            )
    with pytest.raises(ValidationFailed, match="same school"):
        notify(
            session,
            school_id=user.school_id,
            users=[user, stranger],
            kind="audit.due",
            title="T",
            body="B",
        )
    with pytest.raises(ValidationFailed):
        notify(
            session, school_id=user.school_id, users=[user], kind="audit.due", title=" ", body="B"
        )


def test_reading_is_per_person_and_newest_first(
    session: Session, make_user: Callable[..., User]
) -> None:
    me, colleague = make_user(), make_user()
    for n in range(3):
        notify(
            session,
            school_id=me.school_id,
            users=[me, colleague],
            kind="audit.due",
            title=f"N{n}",
            body="",
        )
    session.commit()

    mine = list_for_user(session, me, limit=10)
    assert [n.title for n in mine] == ["N2", "N1", "N0"]
    assert [n.title for n in list_for_user(session, me, limit=10, before_id=mine[0].id)] == [
        "N1",
        "N0",
    ]
    assert unread_count(session, me) == 3
    mark_read(session, me, mine[0].id)
    mark_read(session, me, mine[0].id)  # twice is harmless
    assert unread_count(session, me) == 2
    theirs = list_for_user(session, colleague, limit=1)[0]
    with pytest.raises(NotFound):
        mark_read(session, me, theirs.id)
    assert mark_all_read(session, me) == 2
    assert unread_count(session, me) == 0 and unread_count(session, colleague) == 3
