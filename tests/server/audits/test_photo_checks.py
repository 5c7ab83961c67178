"""The half-termly photo check: who, when, which devices, counts before and after (P-PHOTO-2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.audits import services
from server.audits.models import PhotoCheckItem, PhotoCheckStatus
from server.auth.models import User
from server.commands.models import Command, CommandStatus
from server.devices.models import Device
from server.errors import Conflict, NotFound, ValidationFailed
from tests.server.audits.conftest import NOW, Fleet


def _photos(device: Device, count: int | None, days_ago: float = 2) -> None:
    device.photo_count = count
    device.photo_count_at = None if count is None else NOW - timedelta(days=days_ago)


def test_a_check_records_which_devices_hold_photos_and_how_old_each_report_is(
    session: Session, lead: User, fleet: Fleet
) -> None:
    """P-PHOTO-2: the devices still holding photos, with the age of each report."""
    y4 = fleet.y4_devices
    _photos(y4[0], 5, days_ago=3)
    _photos(y4[1], 2, days_ago=0.5)
    _photos(y4[2], 0)
    for device in [y4[3], *fleet.y3_devices]:
        _photos(device, None)
    session.commit()
    picture = services.photo_picture(session, lead.school_id, now=NOW)
    assert (picture.total, picture.clear, picture.holding, picture.never_reported) == (7, 1, 2, 4)
    assert [(h.asset_tag, h.photo_count, h.age) for h in picture.lines] == [
        ("Y4-1", 5, "3 days ago"),
        ("Y4-2", 2, "12 hours ago"),
    ]
    check = services.start_photo_check(session, lead, now=NOW)
    assert (check.term.name, check.half) == ("Spring 2025/26", 2)
    assert (check.devices_total, check.holding_before, check.photos_before) == (7, 2, 7)
    assert check.never_reported == 4 and check.started_by_id == lead.id
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "photo_check.started")
    )
    assert entry is not None and entry.details["holding_photos"] == 2
    with pytest.raises(Conflict, match="already open"):
        services.start_photo_check(session, lead, now=NOW)


def test_the_bulk_wipe_goes_to_enrolled_devices_and_lists_the_rest_for_wiping_by_hand(
    session: Session, lead: User, fleet: Fleet, enrolled: Callable[[Device], Device]
) -> None:
    y4 = fleet.y4_devices
    for device in y4:
        _photos(device, 3)
    session.commit()
    enrolled(y4[0])
    enrolled(y4[1])
    check = services.start_photo_check(session, lead, now=NOW)
    done = services.wipe_photo_check(session, lead, check.id, now=NOW)
    assert (done.sent, done.needs_approval, done.by_hand) == (2, False, ["Y4-3", "Y4-4"])
    assert "wipe them by hand: Y4-3, Y4-4" in done.message
    commands = session.scalars(select(Command).where(Command.type == "wipe_photos")).all()
    assert {c.status for c in commands} == {CommandStatus.QUEUED} and len(commands) == 2
    items = {
        i.device_id: i
        for i in session.scalars(select(PhotoCheckItem).where(PhotoCheckItem.check_id == check.id))
    }
    assert items[y4[0].id].command_id in {c.id for c in commands}
    assert items[y4[2].id].command_id is None and not items[y4[2].id].enrolled
    # Nothing left to send: asking again says so rather than sending twice.
    again = services.wipe_photo_check(session, lead, check.id, now=NOW)
    assert again.sent == 0 and again.by_hand == ["Y4-3", "Y4-4"]


def test_more_than_ten_devices_wait_for_a_second_person(
    session: Session,
    lead: User,
    fleet: Fleet,
    enrolled: Callable[[Device], Device],
    make_device: Callable[..., Device],
) -> None:
    """The approval rules apply: a wipe of more than 10 devices needs a second person."""
    extra = [
        make_device(home=fleet.y3, asset_tag=f"Y3-{n}", serial=f"Y3SERIAL{n:04d}")
        for n in range(4, 13)
    ]
    devices = [*fleet.all, *extra]
    for device in devices:
        _photos(device, 1)
        enrolled(device)
    session.commit()
    check = services.start_photo_check(session, lead, now=NOW)
    done = services.wipe_photo_check(session, lead, check.id, now=NOW)
    assert done.sent == 16 and done.needs_approval
    assert "second person to approve" in done.message
    statuses = set(
        session.scalars(select(Command.status).where(Command.type == "wipe_photos")).all()
    )
    assert statuses == {CommandStatus.PENDING_APPROVAL}


def test_completing_records_the_counts_after_as_evidence(
    session: Session, lead: User, fleet: Fleet, enrolled: Callable[[Device], Device]
) -> None:
    """P-PHOTO-2: who, when, which devices, counts before and after — then it is locked."""
    y4 = fleet.y4_devices
    for device, count in zip(y4, (4, 3, 2, 6), strict=True):
        _photos(device, count)
    session.commit()
    enrolled(y4[0])
    enrolled(y4[1])
    enrolled(y4[2])
    check = services.start_photo_check(session, lead, now=NOW)
    services.wipe_photo_check(session, lead, check.id, now=NOW)
    # The devices answer: Y4-1 wiped clean, Y4-2 kept one photo; Y4-3 has not reported yet.
    y4[0].photo_count, y4[0].photo_count_at = 0, NOW + timedelta(minutes=5)
    y4[1].photo_count, y4[1].photo_count_at = 1, NOW + timedelta(minutes=6)
    session.commit()
    services.mark_wiped_by_hand(session, lead, check.id, "Y4-4", photos_left=0, now=NOW)
    with pytest.raises(NotFound, match="not in this photo check"):
        services.mark_wiped_by_hand(session, lead, check.id, "Y3-1", photos_left=0)
    with pytest.raises(ValidationFailed, match="negative"):
        services.mark_wiped_by_hand(session, lead, check.id, "Y4-4", photos_left=-1)
    done = services.complete_photo_check(
        session, lead, check.id, note="Y4-3 was off", now=NOW + timedelta(hours=1)
    )
    assert done.status is PhotoCheckStatus.COMPLETE and done.completed_by_id == lead.id
    assert (done.cleared, done.still_holding, done.unconfirmed, done.photos_after) == (2, 1, 1, 1)
    lines = {line.asset_tag: line for line in services.photo_check_lines(session, done)}
    assert lines["Y4-4"].by_hand_by == lead.name and lines["Y4-4"].photos_after == 0
    assert lines["Y4-3"].photos_after is None and lines["Y4-1"].photos_before == 4
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "photo_check.completed")
    )
    assert entry is not None and entry.details["cleared"] == 2
    with pytest.raises(Conflict, match="complete and kept as evidence"):
        services.wipe_photo_check(session, lead, check.id)
    halves = services.photo_compliance(session, lead.school_id, NOW.date())
    assert [(h.half.short, h.checked) for h in halves][-2:] == [("Spr 1", False), ("Spr 2", True)]


def test_a_check_needs_a_term(session: Session, lead: User, fleet: Fleet) -> None:
    with pytest.raises(ValidationFailed, match="No term has started"):
        services.start_photo_check(session, lead, now=NOW - timedelta(days=3650))


def test_the_photo_pages_show_the_evidence_to_governors(
    client: object,
    session: Session,
    lead: User,
    fleet: Fleet,
    make_user: Callable[..., User],
) -> None:
    from flask.testing import FlaskClient

    from server.auth.models import Role
    from tests.server.conftest import csrf_token, log_in_as

    assert isinstance(client, FlaskClient)
    _photos(fleet.y4_devices[0], 4)
    session.commit()
    log_in_as(client, lead)
    token = csrf_token(client, "/photo-checks")
    started = client.post("/photo-checks", data={"csrf_token": token}, follow_redirects=True)
    page = started.get_data(as_text=True)
    assert "Photo check started: 1 of 7 devices hold photos." in page
    check_url = started.request.path
    completed = client.post(
        f"{check_url}/complete", data={"csrf_token": token, "note": "Done"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Photo check complete: 0 cleared, 0 still holding photos, 1 not confirmed" in completed
    governor = make_user(Role.GOVERNOR)
    log_in_as(client, governor)
    overview = client.get("/photo-checks").get_data(as_text=True)
    assert (
        "Compliance by half term" in overview
        and 'aria-labelledby="photo-compliance-title' in overview
    )
    assert "Start this half term" not in overview  # governors read; they do not run checks
    evidence = client.get(check_url).get_data(as_text=True)
    assert "1 device held 4 photos" in evidence and lead.name in evidence
    assert client.post("/photo-checks", data={"csrf_token": token}).status_code == 403
