"""Reconciliation through the real scheduler with an injected clock (P-TROLLEY-1, P-TROLLEY-2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device, DeviceEvent
from server.jobs import JOBS, Scheduler, discover_jobs
from server.loans import services
from server.loans.models import ItemState, Loan, LoanItem
from server.loans.services import reconciliation
from server.notifications.models import Notification
from server.schools.models import Location
from tests.server.loans.conftest import BASE, TUESDAY_1020, scan


@pytest.fixture
def scheduler(app: Flask) -> Scheduler:
    """The worker's scheduler on the test database, running only the loan job."""
    discover_jobs()
    return Scheduler(
        app.extensions["trolley.db"],
        app.extensions["trolley.settings"],
        jobs={"loans.reconcile": JOBS["loans.reconcile"]},
    )


def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    """A time on the test Tuesday (London is on UTC in March), `day` days later."""
    return TUESDAY_1020.replace(hour=hour, minute=minute) + timedelta(days=day)


def take_out(session: Session, user: User, devices: list[Device], trolley: Location) -> None:
    for device in devices:
        scan(session, user, device, trolley, class_label="Year 4 Oak")


def bring_back(session: Session, user: User, device: Device, trolley: Location) -> None:
    services.scan(
        session,
        user,
        mode="in",
        trolley_id=trolley.id,
        code=device.asset_tag,
        base_url=BASE,
        now=at(11),
    )


def inbox(session: Session, user: User, kind: str) -> list[Notification]:
    session.expire_all()
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.user_id == user.id, Notification.kind == kind)
            .order_by(Notification.id)
        )
    )


def test_the_teacher_is_told_at_the_due_time_once(
    session: Session,
    scheduler: Scheduler,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """P-TROLLEY-1: at the end of the lesson the teacher sees what is still out."""
    take_out(session, teacher, fleet[:3], trolley)
    bring_back(session, teacher, fleet[0], trolley)
    assert scheduler.run_due(at(10, 40)) == ["loans.reconcile"]
    assert inbox(session, teacher, "loan_due") == []
    scheduler.run_due(at(10, 46))
    (notice,) = inbox(session, teacher, "loan_due")
    assert notice.title == "2 devices still out from Year 4 trolley"
    assert fleet[1].asset_tag in notice.body and fleet[2].asset_tag in notice.body
    assert fleet[0].asset_tag not in notice.body
    assert "Due back at 10:45 on Tue 11 Mar 2025: " in notice.body
    scheduler.run_due(at(10, 48))
    assert len(inbox(session, teacher, "loan_due")) == 1


def test_anything_not_back_at_the_end_of_the_day_goes_to_the_lead_and_sbm(
    session: Session,
    scheduler: Scheduler,
    teacher: User,
    lead: User,
    sbm: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """P-TROLLEY-2: not back by the end of the day → computing lead and SBM, with who and where."""
    take_out(session, teacher, fleet[:2], trolley)
    bring_back(session, teacher, fleet[0], trolley)
    scheduler.run_due(at(15, 29))
    assert inbox(session, lead, "loans_not_back") == []
    scheduler.run_due(at(15, 31))
    for person in (lead, sbm):
        (notice,) = inbox(session, person, "loans_not_back")
        assert notice.title == "1 device not back in a trolley at the end of the day"
        assert notice.body.startswith(
            f"{fleet[1].asset_tag}: last with {teacher.name} (Year 4 Oak); "
            # On the school's clock in the one format every page uses.
            "taken out of Year 4 trolley at 10:20 on Tue 11 Mar 2025"
        )
        assert notice.link == "/loans/out"
    item = session.scalars(select(LoanItem).where(LoanItem.device_id == fleet[1].id)).one()
    assert item.escalated_at == at(15, 31)
    assert session.scalars(
        select(DeviceEvent.summary).where(
            DeviceEvent.device_id == fleet[1].id, DeviceEvent.kind == "loan_overdue"
        )
    ).all() == [f"Not back at the end of the day; last with {teacher.name}"]
    scheduler.run_due(at(15, 45))
    scheduler.run_due(at(9, 0, day=1))
    assert len(inbox(session, lead, "loans_not_back")) == 1


def test_a_device_taken_after_school_is_chased_the_next_day(
    session: Session,
    scheduler: Scheduler,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    services.scan(
        session,
        teacher,
        mode="out",
        trolley_id=trolley.id,
        code=fleet[0].asset_tag,
        base_url=BASE,
        now=at(16),
    )
    scheduler.run_due(at(16, 30))
    scheduler.run_due(at(9, 0, day=1))
    assert inbox(session, lead, "loans_not_back") == []
    scheduler.run_due(at(15, 31, day=1))
    assert len(inbox(session, lead, "loans_not_back")) == 1


def test_the_next_mornings_dashboard_lists_devices_out_overnight(
    session: Session, teacher: User, lead: User, fleet: list[Device], trolley: Location
) -> None:
    """P-TROLLEY-2: the computing lead's card lists what stayed out overnight."""
    take_out(session, teacher, fleet[:2], trolley)
    same_day = services.home_card(session, lead, now=at(15))
    assert same_day.overnight == [] and len(same_day.overdue) == 2
    morning = services.home_card(session, lead, now=at(8, 30, day=1))
    assert [i.asset_tag for i in morning.overnight] == [fleet[0].asset_tag, fleet[1].asset_tag]
    assert {i.teacher for i in morning.overnight} == {teacher.name}
    mine = services.home_card(session, teacher, now=at(8, 30, day=1))
    assert len(mine.mine) == 2 and mine.trolleys == []  # teachers see their own devices
    trolleys = {t.name: (t.out, t.total) for t in morning.trolleys}
    assert trolleys["Year 4 trolley"] == (2, 5)


def test_an_overdue_home_loan_escalates_each_day(
    session: Session,
    scheduler: Scheduler,
    teacher: User,
    sbm: User,
    head: User,
    fleet: list[Device],
) -> None:
    """P-TROLLEY-2: a device at home past its date goes to the SBM and head, daily."""
    loan = services.request_home_loan(
        session,
        teacher,
        asset_tags=[fleet[0].asset_tag],
        return_by=date(2025, 3, 14),
        reason="Marking coursework over the weekend",
        base_url=BASE,
        now=TUESDAY_1020,
    )
    services.decide_home_loan(session, sbm, loan.id, approve=True, now=TUESDAY_1020)
    scheduler.run_due(at(15, 31, day=3))  # Friday after school: due 15:30 today
    (overdue,) = inbox(session, head, "home_loan_overdue")
    assert overdue.title.endswith("(due Fri 14 March 2025)")
    assert "it was due back at 15:30 on Fri 14 Mar 2025." in overdue.body
    assert len(inbox(session, teacher, "home_loan_overdue")) == 1
    scheduler.run_due(at(17, 0, day=3))
    assert len(inbox(session, sbm, "home_loan_overdue")) == 1
    scheduler.run_due(at(9, 0, day=4))
    assert len(inbox(session, sbm, "home_loan_overdue")) == 2
    # Home loans are not "left out of the trolley": the end-of-day chase skips them.
    assert inbox(session, sbm, "loans_not_back") == []
    item = session.scalars(select(LoanItem).where(LoanItem.loan_id == loan.id)).one()
    assert item.state is ItemState.OUT


def test_a_failing_run_is_retried_without_double_counting(
    session: Session,
    scheduler: Scheduler,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job that fails rolls back everything it did; the next run does it exactly once."""
    take_out(session, teacher, fleet[:1], trolley)
    calls: list[int] = []
    real: Callable[..., object] = services._notify

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("mail queue unavailable")
        real(*args, **kwargs)

    monkeypatch.setattr(reconciliation, "_notify", flaky)
    scheduler.run_due(at(15, 31))
    assert inbox(session, lead, "loans_not_back") == []
    item = session.scalars(select(LoanItem)).one()
    session.refresh(item)
    assert item.escalated_at is None
    scheduler.run_due(at(15, 33))
    assert len(inbox(session, lead, "loans_not_back")) == 1


def test_a_loan_left_open_with_nothing_out_is_closed(
    session: Session, scheduler: Scheduler, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """Two last returns at the same instant can each see the other still out; the job tidies."""
    take_out(session, teacher, fleet[:1], trolley)
    bring_back(session, teacher, fleet[0], trolley)
    loan = session.scalars(select(Loan)).one()
    loan.closed_at = None  # as if both racing returns had missed closing it
    session.commit()
    scheduler.run_due(at(11, 5))
    session.refresh(loan)
    assert loan.closed_at == at(11, 5)
