"""A leaver's own log-in ends on their last day once the case is signed off (P-LEAVE-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.errors import Forbidden
from server.leavers import services
from server.schools.services.clock import local_today, start_of
from tests.server.conftest import post_login
from tests.server.leavers.conftest import People


def test_a_leaver_cannot_log_in_after_sign_off_on_their_last_day(
    client: FlaskClient,
    session: Session,
    people: People,
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: the case closes on the last day and the leaver's own log-in is refused; before
    this, it stayed live after their case closed."""
    today = local_today(people.leaver.school, utcnow())
    case = open_case(last_day=today).case  # holds nothing: closes at once, signed off
    refused = post_login(client, people.leaver.email)
    assert refused.status_code == 401
    assert "do not match" in refused.get_data(as_text=True)
    session.refresh(people.leaver)
    assert not people.leaver.active and case.account_ended_at is not None
    assert any("log-in was turned off" in event.what for event in case.events)


def test_signed_off_early_the_log_in_ends_on_the_day_unless_the_head_says_why_not(
    session: Session,
    people: People,
    open_case: Callable[..., services.Opened],
    make_user: Callable[..., User],
) -> None:
    """P-LEAVE-1: a case signed off before the last day ends the account on the day (the job);
    the headteacher can record why someone keeps theirs (staying on as a governor)."""
    last_day = local_today(people.leaver.school, utcnow()) + timedelta(days=7)
    case = open_case(last_day=last_day).case
    assert services.end_leaver_accounts(session, utcnow()) == 0
    assert people.leaver.active
    on_the_day = start_of(last_day, people.leaver.school) + timedelta(hours=9)
    assert services.end_leaver_accounts(session, on_the_day) == 1
    session.commit()
    assert not people.leaver.active and case.account_ended_at == on_the_day

    staying = make_user(Role.TEACHER)
    kept = open_case(leaver_id=staying.id, last_day=last_day).case
    with pytest.raises(Forbidden):
        services.keep_account(session, people.sbm, kept.id, "Stays on as a governor")
    services.keep_account(session, people.head, kept.id, "Stays on as a governor")
    assert services.end_leaver_accounts(session, on_the_day) == 0
    assert staying.active and kept.keep_account_reason == "Stays on as a governor"
