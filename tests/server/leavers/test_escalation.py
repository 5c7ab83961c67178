"""Open items on and after the last day go to the headteacher, once per school day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.jobs import JobContext
from server.leavers import services
from server.leavers.jobs import escalate_leavers
from server.notifications.models import Notification
from tests.server.leavers.conftest import BASE, People


def _at(case_day: Any, hour: int, minute: int = 0) -> datetime:
    """A moment on the school's clocks (Europe/London), as UTC."""
    london = ZoneInfo("Europe/London")
    return datetime.combine(case_day, time(hour, minute), tzinfo=london).astimezone(UTC)


def _told(session: Session, user_id: int) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(
                Notification.user_id == user_id, Notification.kind == "leaver_escalation"
            )
        )
    )


def _run(app: Flask, session: Session, now: datetime) -> int:
    ctx = JobContext(session, now, app.extensions["trolley.settings"])
    told = escalate_leavers(ctx)
    session.commit()
    return int(told)  # type: ignore[call-overload]


def test_open_items_escalate_from_the_last_day_once_a_day(
    app: Flask,
    session: Session,
    box: Any,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: open items on the last day escalate to the headteacher, daily, not minutely."""
    case = open_case().case
    day = case.last_day
    assert _run(app, session, _at(day - timedelta(days=1), 16)) == 0
    assert _run(app, session, _at(day, 0, 30)) == 1
    (notice,) = _told(session, people.head.id)
    assert case.leaver_name in notice.title and "today is their last day" in notice.title
    assert held[0].asset_tag in notice.body and notice.link == f"/leavers/{case.id}"
    # The job runs every few minutes; the head hears once per school day.
    for minutes in (15, 30, 600):
        assert _run(app, session, _at(day, 0, 30) + timedelta(minutes=minutes)) == 0
    assert len(_told(session, people.head.id)) == 1
    assert _run(app, session, _at(day + timedelta(days=1), 9)) == 1
    notices = _told(session, people.head.id)
    assert len(notices) == 2 and "1 day(s) ago" in notices[-1].title
    assert _told(session, people.sbm.id) == []
    # Once nothing is open there is nothing to escalate.
    for item in case.items:
        services.hand_over_credentials(session, box, people.leaver, case.id, item.id, passcode="1")
        services.return_device(session, people.tech, case.id, item.device.asset_tag, base_url=BASE)
        services.confirm_reset(session, people.tech, case.id, item.id, "erased and re-enrolled")
    assert _run(app, session, _at(day + timedelta(days=2), 9)) == 0


def test_the_last_day_is_the_schools_day_not_utcs(
    app: Flask,
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    # 23:30 UTC the evening before is 00:30 the next day in London during British Summer Time,
    # but still the day before in winter; either way the school's date decides.
    eve = datetime.combine(case.last_day - timedelta(days=1), time(23, 30), tzinfo=UTC)
    local_day = services.local(eve, case.school).date()
    assert _run(app, session, eve) == (1 if local_day >= case.last_day else 0)
