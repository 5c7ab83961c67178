"""Temporary filter exceptions: request, decide, apply, and revert on time (P-PROFILE-3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.devices.models import Device
from server.errors import Conflict, ValidationFailed
from server.profiles import services
from server.profiles.models import DeviceDesiredState, ExceptionStatus, Profile
from tests.server.profiles.conftest import NOW, Places

SITE = "https://www.scratch.mit.edu"
EXPIRE = "profiles.expire_filter_exceptions"


def _document(session: Session, device: Device) -> dict[str, object]:
    row = session.scalar(
        select(DeviceDesiredState).where(DeviceDesiredState.device_id == device.id)
    )
    assert row is not None and row.document is not None
    return row.document


def _allowed(session: Session, device: Device) -> list[str]:
    policy = _document(session, device)["linux"]["chrome_policy"]  # type: ignore[index]
    return list(policy.get("URLAllowlist", []))


def _ask(session: Session, teacher: User, places: Places, **changes: object) -> int:
    values: dict[str, object] = {
        "urls": [SITE],
        "reason": "Coding unit: pupils remix a Scratch project",
        "class_label": "Year 4 Oak",
        "target_type": "location",
        "target_id": places.trolley.id,
        "starts_at": NOW,
        "ends_at": NOW + timedelta(days=5),
        "now": NOW,
    }
    values.update(changes)
    return services.request_exception(session, teacher, **values).id  # type: ignore[arg-type]


def test_an_approved_exception_applies_and_reverts_automatically_at_expiry(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    run_job: Callable[..., object],
) -> None:
    """P-PROFILE-3: time-limited, with requester, reason, approver, expiry and automatic revert."""
    device = make_device(home=places.trolley)
    other = make_device(home=places.site)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    before = _document(session, device)
    assert "scratch.mit.edu" not in _allowed(session, device)

    exception_id = _ask(session, teacher, places)
    assert _document(session, device) == before  # asking changes nothing on devices
    services.approve_exception(session, lead, exception_id, "Enjoy the unit", now=NOW)
    assert "scratch.mit.edu" in _allowed(session, device)
    assert "scratch.mit.edu" not in _allowed(session, other)  # another place is untouched
    approved = _document(session, device)["sha256"]

    run_job(EXPIRE, NOW + timedelta(days=4))  # still within the period: nothing changes
    assert _document(session, device)["sha256"] == approved
    run_job(EXPIRE, NOW + timedelta(days=5, minutes=1))
    exception = services.get_exception(session, lead, exception_id)
    assert exception.status is ExceptionStatus.EXPIRED
    assert _document(session, device) == before
    run_job(EXPIRE, NOW + timedelta(days=5, minutes=2))  # safe to run twice
    assert exception.status is ExceptionStatus.EXPIRED

    trail = session.scalars(
        select(ActivityEntry)
        .where(ActivityEntry.action.startswith("filter_exception."))
        .order_by(ActivityEntry.seq)
    ).all()
    assert [e.action for e in trail] == [
        "filter_exception.requested",
        "filter_exception.approved",
        "filter_exception.expired",
    ]
    assert trail[0].actor_id == teacher.id and trail[0].details["reason"].startswith("Coding")
    assert trail[1].actor_id == lead.id and trail[1].details["note"] == "Enjoy the unit"
    assert trail[2].actor_label == "system"


def test_an_exception_starting_later_is_applied_by_the_job_when_it_starts(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    run_job: Callable[..., object],
) -> None:
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    exception_id = _ask(
        session, teacher, places, starts_at=NOW + timedelta(days=1), ends_at=NOW + timedelta(days=2)
    )
    services.approve_exception(session, lead, exception_id, now=NOW)
    assert "scratch.mit.edu" not in _allowed(session, device)
    run_job(EXPIRE, NOW + timedelta(days=1, minutes=1))
    assert "scratch.mit.edu" in _allowed(session, device)
    run_job(EXPIRE, NOW + timedelta(days=2, minutes=1))
    assert "scratch.mit.edu" not in _allowed(session, device)


def test_declining_needs_a_reason_and_changes_nothing(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    before = _document(session, device)
    exception_id = _ask(session, teacher, places)
    with pytest.raises(ValidationFailed, match="why"):
        services.decline_exception(session, lead, exception_id, "  ", now=NOW)
    declined = services.decline_exception(session, lead, exception_id, "Use BBC Bitesize", now=NOW)
    assert declined.status is ExceptionStatus.DECLINED and declined.decided_by_id == lead.id
    assert _document(session, device) == before
    with pytest.raises(Conflict):
        services.approve_exception(session, lead, exception_id, now=NOW)


def test_revoking_ends_an_exception_at_once(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    exception_id = _ask(session, teacher, places)
    services.approve_exception(session, lead, exception_id, now=NOW)
    services.revoke_exception(session, lead, exception_id, "Unit finished early", now=NOW)
    assert "scratch.mit.edu" not in _allowed(session, device)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"urls": ["ftp://scratch.mit.edu"]}, "https://"),
        ({"urls": []}, "at least one"),
        ({"reason": "because"}, "why the class"),
        ({"class_label": " "}, "class"),
        ({"ends_at": NOW + timedelta(days=15)}, "at most 14 days"),
        ({"ends_at": NOW - timedelta(minutes=1)}, "after the start"),
        ({"target_type": "school"}, "a place, a device group or one device"),
    ],
)
def test_a_bad_request_is_refused_plainly(
    session: Session,
    teacher: User,
    places: Places,
    changes: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        _ask(session, teacher, places, **changes)
    assert services.list_exceptions(session, teacher) == []


def test_a_request_nobody_decided_expires_with_its_period(
    session: Session, teacher: User, places: Places, run_job: Callable[..., object]
) -> None:
    exception_id = _ask(session, teacher, places)
    run_job(EXPIRE, NOW + timedelta(days=6))
    assert services.get_exception(session, teacher, exception_id).status is ExceptionStatus.EXPIRED


def test_the_requester_is_told_at_each_step(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    run_job: Callable[..., object],
) -> None:
    """P-PROFILE-3: the teacher hears of the approval and of the automatic revert."""
    from server.notifications.models import Notification

    make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    exception_id = _ask(session, teacher, places)
    services.approve_exception(session, lead, exception_id, now=NOW)
    run_job(EXPIRE, NOW + timedelta(days=6))
    told = session.scalars(
        select(Notification).where(Notification.user_id.in_([teacher.id, lead.id]))
    ).all()
    kinds = {(n.user_id, n.kind) for n in told}
    assert (lead.id, "filter_exception.requested") in kinds
    assert (teacher.id, "filter_exception.approved") in kinds
    assert (teacher.id, "filter_exception.expired") in kinds
    assert all(n.link == "/filter-exceptions" for n in told)


def test_the_notices_give_the_period_on_the_school_clock(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    run_job: Callable[..., object],
) -> None:
    """Times in British Summer Time read as the school's clocks show them, never in UTC."""
    from server.notifications.models import Notification

    make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    starts = datetime(2025, 4, 1, 8, 30, tzinfo=UTC)  # 09:30 on the school's clocks
    exception_id = _ask(
        session, teacher, places, starts_at=starts, ends_at=starts + timedelta(days=2)
    )
    services.approve_exception(session, lead, exception_id, now=NOW)
    run_job(EXPIRE, starts + timedelta(days=3))
    bodies = {
        n.kind: n.body
        for n in session.scalars(
            select(Notification).where(Notification.kind.startswith("filter_exception."))
        )
    }
    period = "09:30 on Tue 1 Apr 2025 to 09:30 on Thu 3 Apr 2025"
    assert period in bodies["filter_exception.requested"]
    assert (
        "09:30 on Tue 1 Apr 2025 until 09:30 on Thu 3 Apr 2025"
        in bodies["filter_exception.approved"]
    )
    assert "ended at 09:30 on Thu 3 Apr 2025" in bodies["filter_exception.expired"]
    assert not any("08:30" in body or "UTC" in body for body in bodies.values()), bodies
