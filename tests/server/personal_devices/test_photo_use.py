"""Photo use on staff devices (P-PHOTO-4) and their losses and new owners (P-LOSS-4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.config import Settings
from server.db import utcnow
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.jobs import JOBS, JobContext, discover_jobs
from server.losses import services as losses
from server.notifications.models import EmailMessage, Notification
from server.notifications.services import send_due_email
from server.personal_devices import services
from server.personal_devices.models import (
    PersonalDevice,
    PhotoDay,
    PhotoDayState,
    ReportKind,
)
from server.schools.models import School
from server.schools.services import from_local, terms
from tests.server.conftest import csrf_token, log_in_as
from tests.server.notifications.conftest import MailServer

PHONE = {"make": "Apple", "model": "iPhone 13", "serial": "F2LXK0QJPLJM"}
MOVED = PhotoDayState.MOVED_AND_DELETED


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    return make_user(Role.HEADTEACHER, email="head@oakfield.example")


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user(Role.TEACHER, email="amira@oakfield.example")


@pytest.fixture
def phone(session: Session, sbm: User, owner: User) -> PersonalDevice:
    return services.add_entry(session, sbm, {"owner_id": owner.id, **PHONE})


def _term_monday(session: Session, school: School) -> date:
    """A Monday in the school's first term, two weeks in (well before half term)."""
    start = terms(session, school.id)[0].starts_on + timedelta(days=14)
    return start - timedelta(days=start.weekday())


def _at(school: School, day: date, hour: int, minute: int = 0) -> datetime:
    return from_local(datetime.combine(day, time(hour, minute)), school)


def _notices(session: Session, user: User, kind: str) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(Notification.user_id == user.id, Notification.kind == kind)
        )
    )


def _actions(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(ActivityEntry.action)
            .where(ActivityEntry.target_type == "personal_device")
            .order_by(ActivityEntry.id)
        )
    )


def test_only_the_headteacher_authorises_and_withdraws_photo_use(
    session: Session,
    head: User,
    sbm: User,
    owner: User,
    phone: PersonalDevice,
    make_user: Callable[..., User],
) -> None:
    """P-PHOTO-4: "such authorised use is to be recorded": who, which device, until when; the
    head alone grants or withdraws it, with a reason, and each step is in the trail."""
    today = date.today()
    week = {"starts_on": today, "ends_on": today + timedelta(days=6)}
    with pytest.raises(Forbidden, match="Only the headteacher"):
        services.authorise(session, sbm, phone.id, **week)
    with pytest.raises(NotFound):
        services.authorise(session, make_user(Role.TECHNICIAN), phone.id, **week)
    with pytest.raises(ValidationFailed) as backwards:
        services.authorise(
            session,
            head,
            phone.id,
            starts_on=today - timedelta(days=1),
            ends_on=today - timedelta(days=2),
        )
    assert {d["field"] for d in backwards.value.details} == {"starts_on", "ends_on"}
    nameless = services.add_entry(session, sbm, {"owner_name": "Visiting Coach", **PHONE})
    with pytest.raises(Conflict, match="Trolley account"):
        services.authorise(session, head, nameless.id, **week)

    granted = services.authorise(session, head, phone.id, purpose="Year 6 residential", **week)
    assert (granted.granted_by, granted.device, granted.last_day) == (head, phone, week["ends_on"])
    with pytest.raises(Conflict, match="already authorised"):
        services.authorise(
            session,
            head,
            phone.id,
            starts_on=today + timedelta(days=3),
            ends_on=today + timedelta(days=9),
        )
    (told,) = _notices(session, owner, "personal_device.photos_authorised")
    assert "confirm it on your devices page" in told.body

    with pytest.raises(Forbidden):
        services.withdraw(session, sbm, granted.id, "No longer needed")
    with pytest.raises(ValidationFailed, match="Say why"):
        services.withdraw(session, head, granted.id, "  ")
    services.withdraw(session, head, granted.id, "Trip cancelled")
    assert granted.withdrawn_reason == "Trip cancelled" and granted.last_day == today
    with pytest.raises(Conflict, match="already withdrawn"):
        services.withdraw(session, head, granted.id, "again")
    assert _actions(session)[-2:] == [
        "personal_device.photos_authorised",
        "personal_device.photos_withdrawn",
    ]


def test_the_owner_confirms_each_day_and_nobody_else_can(
    session: Session, head: User, owner: User, phone: PersonalDevice
) -> None:
    """P-PHOTO-4: the owner says that day's images were moved to school storage and deleted;
    who and when are kept, and a day outside the authorisation cannot be confirmed."""
    today = date.today()
    with pytest.raises(Conflict, match="not authorised"):
        services.confirm_day(session, owner, phone.id, MOVED)
    services.authorise(session, head, phone.id, starts_on=today, ends_on=today)
    with pytest.raises(Forbidden, match="Only"):
        services.confirm_day(session, head, phone.id, MOVED)
    with pytest.raises(ValidationFailed):
        services.confirm_day(session, owner, phone.id, PhotoDayState.NOT_CONFIRMED)
    before = utcnow()
    line = services.confirm_day(session, owner, phone.id, MOVED)
    assert line.confirmed_by_id == owner.id and line.confirmed_at and line.confirmed_at >= before
    with pytest.raises(Conflict, match="already confirmed"):
        services.confirm_day(session, owner, phone.id, PhotoDayState.NOT_USED)
    (shown,) = services.record_of_days(session, phone)
    assert shown.state is MOVED and shown.today and not shown.late
    assert _actions(session)[-1] == "personal_device.photos_confirmed"


def _run_chase(session: Session, app_settings: Settings, now: datetime) -> int:
    discover_jobs()
    result = JOBS["personal_devices.photo_days"].run(JobContext(session, now, app_settings))
    session.commit()
    assert isinstance(result, int)
    return result


def test_a_day_not_confirmed_is_chased_next_school_morning_then_the_head(
    session: Session,
    school: School,
    head: User,
    owner: User,
    phone: PersonalDevice,
    app: Any,
) -> None:
    """P-PHOTO-4: a day with no confirmation is kept as "not confirmed", the owner is asked the
    next school morning (after a weekend, on Monday), the head the morning after; once each."""
    settings = app.extensions["trolley.settings"]
    monday = _term_monday(session, school)
    tuesday, wednesday, thursday = (monday + timedelta(days=n) for n in (1, 2, 3))
    friday, next_monday = monday + timedelta(days=4), monday + timedelta(days=7)
    services.authorise(
        session, head, phone.id, starts_on=monday, ends_on=friday, now=_at(school, monday, 7)
    )
    services.confirm_day(session, owner, phone.id, MOVED, now=_at(school, monday, 15, 20))

    assert _run_chase(session, settings, _at(school, tuesday, 20)) == 0
    assert _run_chase(session, settings, _at(school, wednesday, 8, 59)) == 0
    assert _run_chase(session, settings, _at(school, wednesday, 9)) == 1
    (asked,) = _notices(session, owner, "personal_device.photos_unconfirmed")
    assert asked.link == "/my-devices" and "Tue" in asked.title
    assert _run_chase(session, settings, _at(school, wednesday, 9, 15)) == 0  # once only
    tuesday_line = session.scalar(
        select(PhotoDay).where(PhotoDay.device_id == phone.id, PhotoDay.day == tuesday)
    )
    assert tuesday_line is not None and tuesday_line.state is PhotoDayState.NOT_CONFIRMED

    # Thursday morning: the head hears of Tuesday, the owner is asked about Wednesday.
    assert _run_chase(session, settings, _at(school, thursday, 9)) == 2
    (escalated,) = _notices(session, head, "personal_device.photos_still_unconfirmed")
    assert escalated.link == f"/personal-devices/{phone.id}"
    email = session.scalar(select(EmailMessage).where(EmailMessage.notification_id == escalated.id))
    assert email is not None and owner.name not in email.body_text + email.subject
    assert PHONE["model"] not in email.body_text  # P-SEC-5: the kind of notice, nothing more

    # Late confirmation is recorded as late; Friday is chased on Monday, not at the weekend.
    services.confirm_day(
        session, owner, phone.id, MOVED, day=tuesday, now=_at(school, thursday, 10)
    )
    services.confirm_day(
        session,
        owner,
        phone.id,
        PhotoDayState.NOT_USED,
        day=thursday,
        now=_at(school, thursday, 15),
    )
    saturday = friday + timedelta(days=1)
    assert _run_chase(session, settings, _at(school, saturday, 10)) == 1  # the head: Wednesday
    assert len(_notices(session, owner, "personal_device.photos_unconfirmed")) == 2
    assert _run_chase(session, settings, _at(school, next_monday, 9)) == 1  # the owner: Friday
    days = {
        d.day: d for d in services.record_of_days(session, phone, now=_at(school, next_monday, 9))
    }
    assert days[tuesday].state is MOVED and days[tuesday].late
    assert days[wednesday].state is PhotoDayState.NOT_CONFIRMED and days[wednesday].head_chased
    assert days[thursday].state is PhotoDayState.NOT_USED
    assert days[friday].state is PhotoDayState.NOT_CONFIRMED and days[friday].owner_chased
    assert set(days) == {monday, tuesday, wednesday, thursday, friday}


def test_a_lost_staff_device_alerts_the_head_by_email_at_once(
    session: Session,
    head: User,
    owner: User,
    phone: PersonalDevice,
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-LOSS-4: a loss of a registered staff device is reported by its owner and reaches the
    headteacher (and the DPO, since it held school photos) like a school device's (P-LOSS-1)."""
    losses.update_settings(session, head, dpo_email="dpo@trust.example")
    today = date.today()
    services.authorise(session, head, phone.id, starts_on=today, ends_on=today + timedelta(days=30))
    filed = services.report(
        session,
        owner,
        phone.id,
        kind=ReportKind.STOLEN,
        happened_on=today,
        details="Taken from my bag on the school trip",
    )
    (alert,) = _notices(session, head, "personal_device.lost")
    assert "reported stolen" in alert.title and "Taken from my bag" in alert.body
    assert "No day has been confirmed" in alert.body
    assert services.live_authorisation(session, phone, today) is not None
    assert phone.is_current  # still theirs, and still noted
    (granted,) = services.authorisations(session, phone)
    assert granted.withdrawn_reason == "Reported stolen"

    assert send_due_email(session, mail_settings, utcnow()).sent == 2
    by_address = {r.rcpt_tos[0]: r.message for r in mail_server.messages}
    assert set(by_address) == {"head@oakfield.example", "dpo@trust.example"}
    text = str(
        by_address["head@oakfield.example"].get_body(preferencelist=("plain",)).get_content()
    )
    assert f"Personal device report: {filed.id}" in text
    assert "Taken from my bag" not in text and owner.name not in text
    assert PHONE["serial"] not in text  # P-SEC-5
    assert _actions(session)[-2:] == [
        "personal_device.photos_withdrawn",
        "personal_device.reported",
    ]


def test_a_new_owner_takes_the_device_off_the_register(
    session: Session,
    head: User,
    sbm: User,
    owner: User,
    phone: PersonalDevice,
    make_user: Callable[..., User],
) -> None:
    """P-LOSS-4, P-REG-6: a change of owner is reported (by the SBM here), the head is told and
    the entry leaves the register as history; a colleague cannot report someone else's."""
    with pytest.raises(NotFound):
        services.report(
            session,
            make_user(Role.TEACHER),
            phone.id,
            kind=ReportKind.LOST,
            happened_on=date.today(),
            details="x",
        )
    with pytest.raises(ValidationFailed) as empty:
        services.report(
            session,
            owner,
            phone.id,
            kind=ReportKind.LOST,
            happened_on=date.today() + timedelta(days=1),
            details=" ",
        )
    assert {d["field"] for d in empty.value.details} == {"details", "happened_on"}
    services.report(
        session, sbm, phone.id, kind=ReportKind.NEW_OWNER, happened_on=date.today(), details="Sold"
    )
    (alert,) = _notices(session, head, "personal_device.new_owner")
    assert "never authorised" in alert.body
    assert not phone.is_current and phone.removed_reason == "Passed to a new owner"
    assert services.personal_devices_of(session, owner) == []
    with pytest.raises(Conflict, match="removed"):
        services.report(
            session, owner, phone.id, kind=ReportKind.LOST, happened_on=date.today(), details="x"
        )


def test_the_pages_for_the_owner_and_the_head(
    client: FlaskClient,
    session: Session,
    head: User,
    sbm: User,
    owner: User,
    phone: PersonalDevice,
    make_user: Callable[..., User],
) -> None:
    """P-PHOTO-4, P-LOSS-4: the head authorises on the device's page; the owner confirms with
    one button and reports a loss; others are refused."""
    log_in_as(client, sbm)
    token = csrf_token(client, "/personal-devices/new")
    refused = client.post(f"/personal-devices/{phone.id}/authorise", data={"csrf_token": token})
    assert refused.status_code == 403

    log_in_as(client, head)
    token = csrf_token(client, f"/personal-devices/{phone.id}/authorise")
    today = date.today().strftime("%d/%m/%Y")
    made = client.post(
        f"/personal-devices/{phone.id}/authorise",
        data={"csrf_token": token, "starts_on": today, "ends_on": today, "purpose": "Sports day"},
    )
    assert made.status_code == 302
    page = client.get(f"/personal-devices/{phone.id}").get_data(as_text=True)
    assert "Sports day" in page and "Not confirmed yet today" in page

    log_in_as(client, owner)
    mine = client.get("/my-devices").get_data(as_text=True)
    assert "I moved and deleted today's photos" in mine
    token = csrf_token(client, "/my-devices")
    done = client.post(
        f"/my-devices/{phone.id}/photos", data={"csrf_token": token, "state": MOVED.value}
    )
    assert done.status_code == 302
    assert "Photos moved to school storage and deleted" in client.get("/my-devices").get_data(
        as_text=True
    )
    no_csrf = client.post(f"/my-devices/{phone.id}/photos", data={"state": MOVED.value})
    assert no_csrf.status_code in (302, 400)
    reported = client.post(
        f"/my-devices/{phone.id}/report",
        data={
            "csrf_token": token,
            "kind": "lost",
            "happened_on": today,
            "details": "Left on the bus",
        },
    )
    assert reported.status_code == 302
    assert _notices(session, head, "personal_device.lost")

    log_in_as(client, make_user(Role.TEACHER))
    assert client.get(f"/my-devices/{phone.id}/report").status_code == 404
    assert client.get(f"/personal-devices/{phone.id}").status_code == 403
    assert "Left on the bus" not in client.get("/my-devices").get_data(as_text=True)


def test_the_api_for_photo_use_and_reports(
    client: FlaskClient,
    session: Session,
    head: User,
    sbm: User,
    owner: User,
    phone: PersonalDevice,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-PHOTO-4, P-LOSS-4: authorise, confirm, read the days and report through the API."""
    today = date.today().strftime("%d/%m/%Y")
    window = {"starts_on": today, "ends_on": today}
    url = f"/api/v1/personal-devices/{phone.id}/authorisations"
    assert client.post(url, json=window, headers=token_for(sbm)).status_code == 403
    made = client.post(url, json=window, headers=token_for(head))
    assert made.status_code == 201 and made.get_json()["granted_by"] == head.name
    mine = token_for(owner)
    confirm = f"/api/v1/my-devices/{phone.id}/photo-days"
    assert (
        client.post(
            confirm, json={"state": "moved_and_deleted"}, headers=token_for(head)
        ).status_code
        == 403
    )
    done = client.post(confirm, json={"state": "moved_and_deleted"}, headers=mine)
    assert done.status_code == 201 and done.get_json()["late"] is False
    days = client.get(f"/api/v1/personal-devices/{phone.id}/photo-days", headers=token_for(sbm))
    assert [d["state"] for d in days.get_json()["items"]] == ["moved_and_deleted"]
    assert (
        client.get(f"/api/v1/personal-devices/{phone.id}/photo-days", headers=mine).status_code
        == 403
    )
    withdrawn = client.post(
        f"/api/v1/personal-devices/authorisations/{made.get_json()['id']}/withdraw",
        json={"reason": "Term over"},
        headers=token_for(head),
    )
    assert withdrawn.get_json()["withdrawn_reason"] == "Term over"
    filed = client.post(
        f"/api/v1/my-devices/{phone.id}/reports",
        json={"kind": "lost", "happened_on": today, "details": "Dropped at the park"},
        headers=mine,
    )
    assert filed.status_code == 201
    assert _notices(session, head, "personal_device.lost")
