"""P-SEC-3: loan history is kept no longer than the school says, then deleted each night."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.activity.services import verify_chain
from server.auth.models import User
from server.devices.models import Device, DeviceEvent
from server.devices.services import add_event
from server.errors import ValidationFailed
from server.jobs import JOBS, Scheduler, discover_jobs
from server.loans import services
from server.loans.models import DamageReport, Loan, LoanItem, Scan
from server.schools.models import Location
from tests.server.conftest import csrf_token, log_in_as
from tests.server.loans.conftest import TUESDAY_1020, scan

LATER = TUESDAY_1020 + timedelta(days=500)  # about 16 months on


def _lesson(session: Session, teacher: User, devices: list[Device], trolley: Location) -> Loan:
    """Take the devices out and bring them back in the same lesson on the test Tuesday."""
    for device in devices:
        for mode in ("out", "in"):
            scan(session, teacher, device, trolley, mode, class_label="Year 4 Oak")
    return session.scalars(select(Loan).order_by(Loan.id.desc())).first()  # type: ignore[return-value]


def _count(session: Session, model: type, *where: object) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_old_loans_scans_and_timeline_entries_go_and_the_rest_stays(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """P-SEC-3: after the retention period a lesson's loan, items, scans and loan timeline
    entries are deleted; a damage report, other timeline entries and the trail stay."""
    old = _lesson(session, teacher, fleet[:2], trolley)
    assert old.closed_at is not None
    item = session.scalars(select(LoanItem).where(LoanItem.loan_id == old.id)).first()
    assert item is not None
    session.add(
        DamageReport(
            school_id=old.school_id, device_id=item.device_id, item_id=item.id, flags=["screen"]
        )
    )
    add_event(session, fleet[0], kind="enrolled", summary="Enrolled", actor=None)
    session.commit()
    for event in session.scalars(select(DeviceEvent)):
        event.at = TUESDAY_1020
    session.commit()
    still_out = scan(session, teacher, fleet[2], trolley, class_label="Year 4 Oak")
    assert still_out is not None

    purged = services.purge_loan_history(session, old.school_id, now=LATER)
    session.commit()

    # Each device went out and came back on its own, so each made (and closed) its own loan.
    assert (purged.loans, purged.scans, purged.events) == (2, 5, 5)
    assert session.get(Loan, old.id) is None
    assert _count(session, LoanItem, LoanItem.loan_id == old.id) == 0
    assert _count(session, Scan) == 0
    assert _count(session, Loan, Loan.closed_at.is_(None)) == 1  # the open loan is never purged
    assert _count(session, LoanItem, LoanItem.device_id == fleet[2].id) == 1
    damage = session.scalars(select(DamageReport)).one()
    assert damage.item_id is None
    kinds = set(session.scalars(select(DeviceEvent.kind)))
    assert "enrolled" in kinds and not kinds & set(services.LOAN_EVENT_KINDS)
    entry = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "loans.history_purged")
    ).one()
    assert entry.details["loans"] == 2 and entry.actor_id is None
    assert verify_chain(session).ok


def test_recent_history_is_kept_and_a_shorter_period_is_honoured(
    session: Session, teacher: User, sbm: User, fleet: list[Device], trolley: Location
) -> None:
    """P-SEC-3: within the period nothing goes; the SBM can shorten it to a month."""
    loan = _lesson(session, teacher, fleet[:1], trolley)
    two_months = TUESDAY_1020 + timedelta(days=62)
    assert services.purge_loan_history(session, loan.school_id, now=two_months).loans == 0
    assert session.get(Loan, loan.id) is not None
    assert _count(session, ActivityEntry, ActivityEntry.action == "loans.history_purged") == 0
    services.set_history_months(session, sbm, 1)
    assert services.history_months(session, loan.school_id) == 1
    assert services.purge_loan_history(session, loan.school_id, now=two_months).loans == 1
    with pytest.raises(ValidationFailed, match="between 1 and 84"):
        services.set_history_months(session, sbm, 0)
    with pytest.raises(ValidationFailed):
        services.set_history_months(session, sbm, 85)
    changed = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "loans.history_retention_changed")
    ).one()
    assert changed.details == {"months": 1, "was": services.DEFAULT_HISTORY_MONTHS}


def test_the_worker_runs_retention_every_day(
    app: Flask, session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """P-SEC-3: the nightly job deletes what is past the period, once a day."""
    loan_id = _lesson(session, teacher, fleet[:1], trolley).id
    discover_jobs()
    scheduler = Scheduler(
        app.extensions["trolley.db"],
        app.extensions["trolley.settings"],
        jobs={"loans.retention": JOBS["loans.retention"]},
    )
    assert scheduler.run_due(LATER) == ["loans.retention"]
    assert scheduler.run_due(LATER + timedelta(hours=1)) == []
    session.expire_all()
    assert session.get(Loan, loan_id) is None


def test_the_sbm_sets_the_period_on_the_lesson_times_page(
    client: FlaskClient, session: Session, sbm: User, make_user: Callable[..., User]
) -> None:
    log_in_as(client, sbm)
    page = client.get("/loans/periods").get_data(as_text=True)
    assert 'name="history_months"' in page and 'value="15"' in page
    data = {
        "csrf_token": csrf_token(client, "/loans/periods"),
        "periods-0-name": "Morning",
        "periods-0-starts": "09:00",
        "periods-0-ends": "12:00",
        "periods-0-weekday": "",
        "day_ends": "15:15",
        "history_months": "200",
    }
    refused = client.post("/loans/periods", data=data)
    assert refused.status_code == 400
    assert "Keep loan history for 1 to 84 months." in refused.get_data(as_text=True)
    saved = client.post("/loans/periods", data={**data, "history_months": "6"})
    assert saved.status_code == 302
    assert services.history_months(session, sbm.school_id) == 6
