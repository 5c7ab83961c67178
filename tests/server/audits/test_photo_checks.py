"""The half-termly photo check: who, when, which devices, counts before and after (P-PHOTO-2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.audits import services
from server.audits.models import PhotoCheck, PhotoCheckItem, PhotoCheckStatus
from server.auth.models import User
from server.commands.models import Command, CommandStatus
from server.devices.models import Device
from server.errors import Conflict, NotFound, ValidationFailed
from tests.server.audits.conftest import NOW, Fleet
from tests.server.conftest import confirm_reset


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
    assert check.started_by_id == lead.id
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "photo_check.started")
    )
    assert entry is not None and entry.details["holding_photos"] == 2
    with pytest.raises(Conflict, match="already open"):
        services.start_photo_check(session, lead, now=NOW)


def test_photos_counted_before_an_erase_are_not_known_not_held(
    session: Session, lead: User, fleet: Fleet
) -> None:
    """P-PHOTO-2: a device whose storage was erased after it last counted its photos does not
    hold them (they went with the erase), nor is it clear (it has not said so): not known, in
    the picture, at the start of a check, and in the check's lines, until it reports again."""
    y4 = fleet.y4_devices
    _photos(y4[0], 5, days_ago=3)
    _photos(y4[1], 4, days_ago=3)
    for device in [*y4[2:], *fleet.y3_devices]:
        _photos(device, 0)
    session.commit()
    confirm_reset(session, y4[1], NOW - timedelta(days=1))
    picture = services.photo_picture(session, lead.school_id, now=NOW)
    assert (picture.total, picture.clear, picture.holding) == (7, 5, 1)
    assert (picture.never_reported, picture.erased) == (0, 1)
    assert [h.asset_tag for h in picture.lines] == ["Y4-1"]
    check = services.start_photo_check(session, lead, now=NOW)
    assert (check.holding_before, check.photos_before, check.never_reported) == (1, 5, 1)
    lines = {line.asset_tag: line for line in services.photo_check_lines(session, check)}
    assert lines["Y4-2"].photos_before is None and lines["Y4-2"].outcome == "unconfirmed"
    # Counting again after the erase is a report like any other.
    _photos(y4[1], 2, days_ago=0.5)
    session.commit()
    again = services.photo_picture(session, lead.school_id, now=NOW)
    assert (again.holding, again.erased) == (2, 0)


def test_a_check_takes_in_every_device_and_asks_each_enrolled_one_for_a_fresh_count(
    session: Session, lead: User, fleet: Fleet, enrolled: Callable[[Device], Device]
) -> None:
    """P-PHOTO-2: devices that never reported are in the check, not left out as "never
    reported"; every enrolled one is asked for its count now (not counted against the budget)."""
    y4 = fleet.y4_devices
    _photos(y4[0], 5, days_ago=3)
    for device in [*y4[1:], *fleet.y3_devices]:
        _photos(device, None)
    session.commit()
    enrolled(y4[0])
    enrolled(y4[3])
    enrolled(fleet.y3_devices[0])
    check = services.start_photo_check(session, lead, now=NOW)
    asked = session.scalars(select(Command).where(Command.type == "report_inventory")).all()
    assert sorted(c.device_id for c in asked) == sorted(
        d.id for d in (y4[0], y4[3], fleet.y3_devices[0])
    )
    assert {(c.status, c.disruption) for c in asked} == {(CommandStatus.QUEUED, None)}
    assert check.asked == 3
    items = session.scalars(select(PhotoCheckItem).where(PhotoCheckItem.check_id == check.id))
    assert len(list(items)) == 7
    lines = {line.asset_tag: line for line in services.photo_check_lines(session, check)}
    assert lines["Y3-2"].photos_before is None and lines["Y3-2"].outcome == "unconfirmed"
    assert lines["Y4-1"].photos_before == 5 and lines["Y4-1"].asked


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
    # The Year 3 devices never reported and are not enrolled: checked by hand, like Y4-3 and 4.
    by_hand = ["Y3-1", "Y3-2", "Y3-3", "Y4-3", "Y4-4"]
    assert (done.sent, done.needs_approval, done.by_hand) == (2, False, by_hand)
    assert "wipe them by hand: Y3-1, Y3-2, Y3-3, Y4-3, Y4-4" in done.message
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
    assert again.sent == 0 and again.by_hand == by_hand


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


def test_a_check_of_devices_that_never_answered_cannot_pass_on_silence(
    session: Session, lead: User, fleet: Fleet
) -> None:
    """P-PHOTO-2: seven devices that never reported once closed a check as "complete, cleared 0,
    still holding 0, unconfirmed 0". Silence is not evidence: a person records each device."""
    for device in fleet.all:
        _photos(device, None)
    session.commit()
    check = services.start_photo_check(session, lead, now=NOW)
    with pytest.raises(Conflict, match="7 devices have not answered") as refused:
        services.complete_photo_check(session, lead, check.id, now=NOW + timedelta(hours=1))
    assert sorted(refused.value.details["unconfirmed"]) == sorted(d.asset_tag for d in fleet.all)
    session.refresh(check)
    assert check.status is PhotoCheckStatus.OPEN and check.completed_at is None
    for device in fleet.all:
        services.mark_wiped_by_hand(
            session,
            lead,
            check.id,
            device.asset_tag,
            photos_left=0,
            saw="Photos app empty",
            now=NOW + timedelta(minutes=30),
        )
    done = services.complete_photo_check(session, lead, check.id, now=NOW + timedelta(hours=1))
    assert (done.cleared, done.still_holding, done.unconfirmed) == (7, 0, 0)
    assert done.checked_by_hand == 7


def _y4_2_answers_with_three_photos(session: Session, lead: User, fleet: Fleet) -> PhotoCheck:
    """A check of devices that last said they held none; every device answers its request, and
    Y4-2 still has three photos."""
    for device in fleet.all:
        _photos(device, 0)
    session.commit()
    check = services.start_photo_check(session, lead, now=NOW)
    for device in fleet.all:
        device.photo_count = 3 if device.asset_tag == "Y4-2" else 0
        device.photo_count_at = NOW + timedelta(minutes=5)
    session.commit()
    return check


def test_a_check_cannot_close_while_a_device_still_holds_photos(
    session: Session, lead: User, fleet: Fleet, enrolled: Callable[[Device], Device]
) -> None:
    """P-PHOTO-2: a device that answers with photos on it keeps the check open until someone
    checks it by hand and records what they saw."""
    check = _y4_2_answers_with_three_photos(session, lead, fleet)
    with pytest.raises(Conflict, match="1 device still holds photos") as refused:
        services.complete_photo_check(session, lead, check.id, now=NOW + timedelta(hours=1))
    assert refused.value.details["holding"] == ["Y4-2"]
    with pytest.raises(ValidationFailed, match="what you saw"):
        services.mark_wiped_by_hand(session, lead, check.id, "Y4-2", photos_left=None, saw="")
    services.mark_wiped_by_hand(
        session,
        lead,
        check.id,
        "Y4-2",
        photos_left=0,
        saw="Deleted 3 photos of the class trip",
        now=NOW + timedelta(minutes=40),
    )
    done = services.complete_photo_check(session, lead, check.id, now=NOW + timedelta(hours=1))
    assert (done.cleared, done.still_holding, done.unconfirmed, done.checked_by_hand) == (
        7,
        0,
        0,
        1,
    )
    line = next(x for x in services.photo_check_lines(session, done) if x.asset_tag == "Y4-2")
    assert (line.by_hand_by, line.hand_at, line.hand_photos) == (
        lead.name,
        NOW + timedelta(minutes=40),
        0,
    )
    assert line.hand_note == "Deleted 3 photos of the class trip"
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "photo_check.checked_by_hand")
    )
    assert entry is not None and entry.target_id == str(check.id)


def test_an_answer_overtaken_by_an_erase_during_the_check_is_not_an_answer(
    session: Session, lead: User, fleet: Fleet
) -> None:
    """P-PHOTO-2: Y4-2 answered the check with three photos and was then erased: its answer no
    longer says what it holds, so the check waits for a person (or a fresh count) rather than
    recording three photos still held."""
    check = _y4_2_answers_with_three_photos(session, lead, fleet)
    confirm_reset(session, fleet.y4_devices[1], NOW + timedelta(minutes=10))
    line = next(x for x in services.photo_check_lines(session, check) if x.asset_tag == "Y4-2")
    assert line.photos_after is None
    with pytest.raises(Conflict, match="1 device has not answered") as refused:
        services.complete_photo_check(session, lead, check.id, now=NOW + timedelta(hours=1))
    assert "holds photos" not in str(refused.value)


def test_completing_records_the_counts_after_as_evidence(
    session: Session, lead: User, fleet: Fleet, enrolled: Callable[[Device], Device]
) -> None:
    """P-PHOTO-2: who, when, which devices, counts before and after — then it is locked."""
    y4 = fleet.y4_devices
    for device, count in zip(y4, (4, 3, 2, 6), strict=True):
        _photos(device, count)
    for device in fleet.y3_devices:
        _photos(device, 0)
    session.commit()
    enrolled(y4[0])
    enrolled(y4[1])
    enrolled(y4[2])
    check = services.start_photo_check(session, lead, now=NOW)
    services.wipe_photo_check(session, lead, check.id, now=NOW)
    # The devices answer: Y4-1 wiped clean, Y4-2 kept one photo; Y4-3 has not reported yet.
    y4[0].photo_count, y4[0].photo_count_at = 0, NOW + timedelta(minutes=5)
    y4[1].photo_count, y4[1].photo_count_at = 1, NOW + timedelta(minutes=6)
    for device in fleet.y3_devices:
        device.photo_count_at = NOW + timedelta(minutes=7)
    session.commit()
    services.mark_wiped_by_hand(session, lead, check.id, "Y4-4", photos_left=0, now=NOW)
    with pytest.raises(NotFound, match="NOPE-1"):
        services.mark_wiped_by_hand(session, lead, check.id, "NOPE-1", photos_left=0)
    with pytest.raises(ValidationFailed, match="negative"):
        services.mark_wiped_by_hand(session, lead, check.id, "Y4-4", photos_left=-1)
    # Y4-2 still holds one and Y4-3 is silent: a person looks at each and says what they saw.
    services.mark_wiped_by_hand(
        session, lead, check.id, "Y4-2", photos_left=1, saw="One photo would not delete"
    )
    services.mark_wiped_by_hand(
        session, lead, check.id, "Y4-3", photos_left=None, saw="Not in its trolley; asked Year 4"
    )
    done = services.complete_photo_check(
        session, lead, check.id, note="Y4-3 was off", now=NOW + timedelta(hours=1)
    )
    assert done.status is PhotoCheckStatus.COMPLETE and done.completed_by_id == lead.id
    assert (done.cleared, done.still_holding, done.unconfirmed, done.photos_after) == (5, 1, 1, 1)
    lines = {line.asset_tag: line for line in services.photo_check_lines(session, done)}
    assert lines["Y4-4"].by_hand_by == lead.name and lines["Y4-4"].hand_photos == 0
    assert lines["Y4-3"].outcome == "unconfirmed" and lines["Y4-1"].photos_before == 4
    assert lines["Y4-1"].photos_after == 0 and lines["Y4-1"].outcome == "cleared"
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "photo_check.completed")
    )
    assert entry is not None and entry.details["cleared"] == 5
    with pytest.raises(Conflict, match="complete and kept as evidence"):
        services.wipe_photo_check(session, lead, check.id)
    halves = services.photo_compliance(session, lead.school_id, NOW.date())
    assert [(h.half.short, h.checked) for h in halves][-2:] == [("Spr 1", False), ("Spr 2", True)]


def test_class_teachers_are_reminded_of_the_devices_still_to_check(
    app: object,
    session: Session,
    lead: User,
    teacher: User,
    fleet: Fleet,
) -> None:
    """P-PHOTO-2: the class teacher answers for photos in their lessons, so the reminder goes
    to them (the holder or last taker), naming only the devices still unanswered."""
    from flask import Flask

    from server.jobs import JobContext, discover_jobs
    from server.notifications.models import EmailMessage, Notification

    assert isinstance(app, Flask)
    y4 = fleet.y4_devices
    for device in fleet.all:
        _photos(device, 0)
    y4[0].holder_id = teacher.id
    session.commit()
    services.start_photo_check(session, lead, now=NOW)
    for device in fleet.all[1:]:
        device.photo_count_at = NOW + timedelta(minutes=5)
    session.commit()

    def run(when: object) -> None:
        job = discover_jobs()["audits.reminders"]
        job.run(JobContext(session, when, app.extensions["trolley.settings"]))  # type: ignore[arg-type]
        session.commit()

    run(NOW + timedelta(hours=2))  # the devices still have a day to answer
    kind = "audit.photo_check_devices"
    assert session.scalars(select(Notification).where(Notification.kind == kind)).all() == []
    run(NOW + timedelta(days=1, minutes=1))
    told = session.scalars(select(Notification).where(Notification.kind == kind)).all()
    assert [(n.user_id, n.title) for n in told] == [
        (teacher.id, "Photo check: check Y4-1 for photos")
    ]
    mail = session.scalars(select(EmailMessage).where(EmailMessage.notification_id == told[0].id))
    (message,) = mail.all()
    assert "Y4-1" in message.body_text and teacher.name not in message.body_text
    run(NOW + timedelta(days=2))  # once per device
    assert len(session.scalars(select(Notification).where(Notification.kind == kind)).all()) == 1


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
    refused = client.post(
        f"{check_url}/complete", data={"csrf_token": token, "note": "Done"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "7 devices have not answered" in refused and "Not answered" in refused
    for device in fleet.all:
        client.post(
            f"{check_url}/items/{device.asset_tag}/by-hand",
            data={"csrf_token": token, "photos_left": "0", "saw": "Photos app empty"},
        )
    completed = client.post(
        f"{check_url}/complete", data={"csrf_token": token, "note": "Done"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Photo check complete: 7 cleared, 0 still holding photos, 0 not confirmed" in completed
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
