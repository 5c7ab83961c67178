"""Photo wipes are chased: failures and expiries are told, listed until resolved, and a lesson's
end asks devices still out to wipe too (P-PHOTO-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.devices.models import Device
from server.disposals import services as disposals
from server.disposals.models import ErasureMethod
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, ValidationFailed
from server.loans import services
from server.loans.models import LoanItem
from server.notifications.models import EmailMessage, Notification
from server.schools.models import Location
from tests.server.conftest import confirm_reset, csrf_token, log_in_as
from tests.server.loans.conftest import TUESDAY_1020, scan

KIND = "loans.wipe_not_confirmed"


def _wipes(session: Session, device: Device | None = None) -> list[Command]:
    query = select(Command).where(Command.type == "wipe_photos").order_by(Command.id)
    if device is not None:
        query = query.where(Command.device_id == device.id)
    session.expire_all()
    return list(session.scalars(query))


def _told(session: Session, user: User) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(Notification.user_id == user.id, Notification.kind == KIND)
        )
    )


def _item(session: Session, device: Device) -> LoanItem:
    session.expire_all()
    item = session.scalars(
        select(LoanItem).where(LoanItem.device_id == device.id).order_by(LoanItem.id.desc())
    ).first()
    assert item is not None
    return item


def _first_item(session: Session, device: Device) -> LoanItem:
    session.expire_all()
    item = session.scalars(
        select(LoanItem).where(LoanItem.device_id == device.id).order_by(LoanItem.id)
    ).first()
    assert item is not None
    return item


def _back_with_a_failed_wipe(
    session: Session,
    teacher: User,
    lead: User,
    device: Device,
    trolley: Location,
    ack: Callable[..., Command],
) -> None:
    """Taken out and put back; the device answers that its wipe failed, and it is listed."""
    scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    (wipe,) = _wipes(session, device)
    ack(wipe, "failed", deleted=0, remaining=2)
    services.run_reconciliation(session, now=TUESDAY_1020 + timedelta(minutes=21))
    session.commit()
    assert len(services.wipes_to_check(session, lead.school_id)) == 1


def test_an_expired_wipe_tells_the_returning_teacher_and_the_computing_lead(
    session: Session,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
) -> None:
    """P-PHOTO-1: a wipe the device never collected expired after 7 days and nobody was told."""
    device = fleet[0]
    enrol(device)
    scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    later = TUESDAY_1020 + timedelta(days=7, hours=1)
    assert commands.expire(session, now=later) == 1
    session.commit()
    services.run_reconciliation(session, now=later)
    session.commit()
    (to_teacher,) = _told(session, teacher)
    (to_lead,) = _told(session, lead)
    assert device.asset_tag in to_teacher.title and "expired" in to_teacher.body
    assert to_lead.link == "/loans/out#wipes"
    mails = session.scalars(
        select(EmailMessage).where(EmailMessage.notification_id.in_([to_teacher.id, to_lead.id]))
    ).all()
    assert len(mails) == 2
    assert all(device.asset_tag in m.body_text and teacher.name not in m.body_text for m in mails)
    # Told once, however often the job runs.
    services.run_reconciliation(session, now=later + timedelta(minutes=5))
    session.commit()
    assert len(_told(session, teacher)) == 1 and len(_told(session, lead)) == 1


def test_a_failed_wipe_tells_them_too(
    session: Session,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
    ack: Callable[..., Command],
) -> None:
    """P-PHOTO-1: a device that could not delete every photo says `failed`: chased at once."""
    device = fleet[0]
    enrol(device)
    scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    (wipe,) = _wipes(session, device)
    ack(wipe, "failed", deleted=2, remaining=1)
    services.run_reconciliation(session, now=TUESDAY_1020 + timedelta(minutes=21))
    session.commit()
    assert len(_told(session, teacher)) == 1 and len(_told(session, lead)) == 1


def test_an_unconfirmed_wipe_stays_on_the_leads_list_until_someone_resolves_it(
    client: FlaskClient,
    session: Session,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
) -> None:
    """P-PHOTO-1: the wipe dropped off the lead's list the moment it expired (after 7 days)."""
    device = fleet[0]
    enrol(device)
    scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    commands.expire(session, now=TUESDAY_1020 + timedelta(days=8))
    session.commit()
    log_in_as(client, lead)
    page = client.get("/loans/out").get_data(as_text=True)
    wipes = page.split('id="wipes"', 1)[1]
    assert device.asset_tag in wipes and "wipe expired" in wipes
    item = _item(session, device)
    token = csrf_token(client, "/loans/out")
    done = client.post(
        f"/loans/items/{item.id}/wiped-by-hand",
        data={"csrf_token": token, "photos_left": "0", "saw": "Camera roll empty"},
        follow_redirects=True,
    )
    assert done.status_code == 200
    page = client.get("/loans/out").get_data(as_text=True)
    assert device.asset_tag not in page.split('id="wipes"', 1)[1]


def test_a_device_that_cannot_be_wiped_remotely_gets_a_step_a_person_completes(
    client: FlaskClient,
    session: Session,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """P-PHOTO-1: an unenrolled device got "wipe by hand" and nothing recorded that anyone did;
    now the loan shows it outstanding until a person records who, when and what they saw."""
    device = fleet[0]  # not enrolled
    out = scan(session, teacher, device, trolley)
    back = scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    assert back.wipe == "not enrolled: wipe by hand"
    log_in_as(client, teacher)
    page = client.get(f"/loans/{out.loan_id}").get_data(as_text=True)
    assert "Wiped by hand" in page and "outstanding" in page
    item = _item(session, device)
    with pytest.raises(ValidationFailed, match="what you saw"):
        services.record_wiped_by_hand(session, teacher, item.id, photos_left=None, saw=" ")
    recorded = services.record_wiped_by_hand(
        session,
        teacher,
        item.id,
        photos_left=0,
        saw="Deleted 4 photos from the science lesson",
        now=TUESDAY_1020 + timedelta(minutes=25),
    )
    assert (recorded.wipe_resolved_by_id, recorded.wipe_resolved_at) == (
        teacher.id,
        TUESDAY_1020 + timedelta(minutes=25),
    )
    assert recorded.wipe_photos_left == 0 and not recorded.wipe_outstanding
    assert services.wipe_state(recorded) == (
        "by_hand_done",
        "wiped by hand by Teacher Person (0 photos left)",
    )
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "loans.wiped_by_hand")
    )
    assert entry is not None and entry.target_id == device.asset_tag
    with pytest.raises(Conflict, match="already"):
        services.record_wiped_by_hand(session, teacher, item.id, photos_left=0, saw="again")
    page = client.get(f"/loans/{out.loan_id}").get_data(as_text=True)
    assert "wiped by hand by Teacher Person" in page


def test_an_unconfirmed_wipe_appears_on_the_next_loan_of_the_device(
    client: FlaskClient,
    session: Session,
    teacher: User,
    other_teacher: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
) -> None:
    """P-PHOTO-1: the next class to take the device sees the earlier wipe is not confirmed, and
    can record checking it by hand from its own loan."""
    device = fleet[0]
    enrol(device)
    scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    earlier = _item(session, device)
    later = TUESDAY_1020 + timedelta(days=8)
    commands.expire(session, now=later)
    session.commit()
    second = scan(session, other_teacher, device, trolley, now=later)
    log_in_as(client, other_teacher)
    page = client.get(f"/loans/{second.loan_id}").get_data(as_text=True)
    assert "Photos from an earlier lesson are not confirmed deleted" in page
    assert f"/loans/items/{earlier.id}/wiped-by-hand" in page


def test_devices_still_out_at_a_lessons_end_are_asked_to_wipe(
    session: Session,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
) -> None:
    """P-PHOTO-1: photos go "at the end of the lesson", not when the device is next returned."""
    for device in fleet[:3]:
        enrol(device)
    for device in fleet[:4]:
        scan(session, teacher, device, trolley)  # 10:20, in lesson 2 (10:00-10:45)
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=44))
    assert _wipes(session) == []
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=46))
    session.commit()
    asked = _wipes(session)
    assert sorted(c.device_id for c in asked) == sorted(d.id for d in fleet[:3])
    assert {(c.status, c.disruption, c.requested_by_id) for c in asked} == {
        (CommandStatus.QUEUED, None, None)
    }
    assert "End of Lesson 2" in asked[0].reason
    # The unenrolled one must be checked by hand: the loan shows it outstanding.
    assert _item(session, fleet[3]).wipe_outstanding
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=50))
    assert len(_wipes(session)) == 3  # once per lesson end
    scan(session, teacher, fleet[0], trolley, "in", now=TUESDAY_1020.replace(minute=55))
    services.run_reconciliation(session, now=TUESDAY_1020.replace(hour=12, minute=1))
    session.commit()
    # Lesson 3 ends at 12:00: the two still out are asked again; the returned one is not.
    assert len(_wipes(session, fleet[0])) == 2  # the lesson's end, then its return
    assert len(_wipes(session, fleet[1])) == 2 and len(_wipes(session, fleet[2])) == 2


def test_a_whole_class_wiped_at_a_lessons_end_never_waits_for_the_fleet_budget(
    session: Session,
    teacher: User,
    trolley: Location,
    make_device: Callable[..., Device],
    enrol: Callable[[Device], DeviceIdentity],
) -> None:
    """P-PHOTO-1: the lesson's-end wipe is the return's own wipe, early: never held back."""
    devices = [make_device(home=trolley) for _ in range(32)]
    for device in devices:
        enrol(device)
    services.take_out(
        session,
        teacher,
        trolley_id=trolley.id,
        asset_tags=[d.asset_tag for d in devices],
        base_url="http://127.0.0.1:5000",
        now=TUESDAY_1020,
    )
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=46))
    session.commit()
    asked = _wipes(session)
    assert len(asked) == 32 and {c.status for c in asked} == {CommandStatus.QUEUED}


def test_a_school_can_turn_the_lesson_end_wipe_off(
    session: Session,
    teacher: User,
    sbm: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
) -> None:
    """The lesson's-end wipe is on unless the school turns it off (and that is in the trail)."""
    assert services.wipes_at_lesson_end(session, sbm.school_id)
    services.set_lesson_end_wipe(session, sbm, enabled=False)
    assert not services.wipes_at_lesson_end(session, sbm.school_id)
    entry = session.scalar(
        select(ActivityEntry).where(ActivityEntry.action == "loans.lesson_end_wipe_changed")
    )
    assert entry is not None and entry.details == {"enabled": False}
    enrol(fleet[0])
    scan(session, teacher, fleet[0], trolley)
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=46))
    assert _wipes(session) == []


def test_a_failed_lesson_end_wipe_tells_the_teacher_who_has_the_device(
    session: Session,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
    ack: Callable[..., Command],
) -> None:
    device = fleet[0]
    enrol(device)
    scan(session, teacher, device, trolley)
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=46))
    session.commit()
    (wipe,) = _wipes(session, device)
    ack(wipe, "failed", deleted=0, remaining=2)
    services.run_reconciliation(session, now=TUESDAY_1020.replace(minute=47))
    session.commit()
    (told,) = _told(session, teacher)
    assert device.asset_tag in told.title and len(_told(session, lead)) == 1
    assert device.asset_tag in {
        i.device.asset_tag for i in services.wipes_to_check(session, lead.school_id)
    }


def test_a_later_confirmed_wipe_resolves_an_earlier_failure(
    session: Session,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
    ack: Callable[..., Command],
) -> None:
    """The device's own later answer resolves it: the list keeps only what is still open."""
    device = fleet[0]
    enrol(device)
    _back_with_a_failed_wipe(session, teacher, lead, device, trolley, ack)
    scan(session, teacher, device, trolley, now=TUESDAY_1020 + timedelta(hours=3))
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(hours=4))
    second = _wipes(session, device)[-1]
    ack(second, "done", deleted=2, remaining=0)
    services.run_reconciliation(session, now=TUESDAY_1020 + timedelta(hours=4, minutes=1))
    session.commit()
    assert services.wipes_to_check(session, lead.school_id) == []
    first_item = _first_item(session, device)
    assert first_item.wipe_resolved_by_id is None
    assert "later photo wipe" in (first_item.wipe_resolution or "")


@pytest.mark.parametrize("erased_by", ["device", "technician"])
def test_an_erase_since_the_return_settles_a_wipe_that_failed(
    session: Session,
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], DeviceIdentity],
    ack: Callable[..., Command],
    make_user: Callable[..., User],
    erased_by: str,
) -> None:
    """P-PHOTO-1: the lesson's photos went with the device's storage when it was erased after
    the return (a reset it confirmed, or a technician's record with evidence): the failed wipe
    is settled, in the words of who vouches for it, the next class is not warned of photos, and
    a technician's erasure is theirs, not the device's."""
    device = fleet[0]
    enrol(device)
    _back_with_a_failed_wipe(session, teacher, lead, device, trolley, ack)
    technician = make_user(Role.TECHNICIAN)
    if erased_by == "device":
        confirm_reset(session, device, TUESDAY_1020 + timedelta(hours=2))
    else:
        disposals.record_erasure(
            session, technician, device, ErasureMethod.FACTORY_RESET, "reset at the desk"
        )
    # The next class is not warned of photos, even before the job has settled the wipe.
    again = scan(
        session, teacher, device, trolley, now=TUESDAY_1020 + timedelta(hours=2, minutes=5)
    )
    assert not any("may still be on" in w for w in again.warnings)
    services.run_reconciliation(session, now=TUESDAY_1020 + timedelta(hours=3))
    session.commit()
    assert services.wipes_to_check(session, lead.school_id) == []
    item = _first_item(session, device)
    assert not item.wipe_outstanding
    if erased_by == "device":
        assert item.wipe_resolved_by_id is None
        assert "the device later confirmed a factory reset" in (item.wipe_resolution or "")
    else:
        assert item.wipe_resolved_by_id == technician.id
        assert f"{technician.name} later recorded its storage erased" in (
            item.wipe_resolution or ""
        )
        assert "reset at the desk" in (item.wipe_resolution or "")


def test_a_wipe_checked_by_hand_is_not_warned_of_at_the_next_take_out(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """The next class is warned of earlier photos only while nobody has confirmed them gone."""
    device = fleet[0]  # not enrolled: wiped by hand
    scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    warned = scan(session, teacher, device, trolley, now=TUESDAY_1020 + timedelta(minutes=30))
    assert any("may still be on" in w for w in warned.warnings)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=40))
    services.record_wiped_by_hand(
        session, teacher, _item(session, device).id, photos_left=0, saw="Nothing in Photos"
    )
    again = scan(session, teacher, device, trolley, now=TUESDAY_1020 + timedelta(minutes=50))
    assert not any("may still be on" in w for w in again.warnings)


def test_checking_by_hand_over_the_api(
    client: FlaskClient,
    session: Session,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    device = fleet[0]  # not enrolled
    out = scan(session, teacher, device, trolley)
    scan(session, teacher, device, trolley, "in", now=TUESDAY_1020 + timedelta(minutes=20))
    auth = token_for(teacher)
    loan = client.get(f"/api/v1/loans/{out.loan_id}", headers=auth).get_json()
    assert loan["items"][0]["wipe_outstanding"] and loan["items"][0]["wipe_state"] == "by_hand"
    item = _item(session, device)
    bad = client.post(
        f"/api/v1/loans/items/{item.id}/wiped-by-hand", json={"photos_left": -1}, headers=auth
    )
    assert bad.status_code == 400
    done = client.post(
        f"/api/v1/loans/items/{item.id}/wiped-by-hand",
        json={"photos_left": 0, "saw": "Empty"},
        headers=auth,
    ).get_json()
    (line,) = done["items"]
    assert not line["wipe_outstanding"] and line["wipe_state"] == "by_hand_done"
    assert (line["checked_by_hand_by"], line["photos_left"]) == (teacher.name, 0)
    assert (
        client.post(
            f"/api/v1/loans/items/{item.id}/wiped-by-hand", json={}, headers=auth
        ).status_code
        == 409
    )
