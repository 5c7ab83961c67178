"""Loan rules on SQLite and PostgreSQL: taking out, returning, conflicts, wipes and damage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.commands.models import Command, CommandStatus
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.errors import Conflict, NotFound, ValidationFailed
from server.loans import services
from server.loans.models import (
    ConditionFlag,
    DamageReport,
    DamageStatus,
    ItemState,
    Loan,
    LoanItem,
    Scan,
)
from server.losses import services as losses
from server.notifications.models import Notification
from server.schools.models import Location
from tests.server.loans.conftest import BASE, TUESDAY_1020, scan


def count(session: Session, model: type, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def notices(session: Session, user: User, kind: str) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(Notification.user_id == user.id, Notification.kind == kind)
        )
    )


def test_take_out_and_bring_back(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """P-TROLLEY-1, P-REG-3: scanning out records teacher, class, trolley and due time."""
    first = scan(session, teacher, fleet[0], trolley, class_label="Year 4 Oak")
    second = scan(session, teacher, f"{BASE}/d/{fleet[1].asset_tag}", trolley)
    assert first.outcome == "out" and second.outcome == "out"
    assert second.counts is not None and second.counts.text == "2 of 5 out"
    assert first.loan_id == second.loan_id
    loan = services.get_loan(session, teacher.school_id, first.loan_id or 0)
    assert (loan.teacher_id, loan.class_label, loan.trolley_id) == (
        teacher.id,
        "Year 4 Oak",
        trolley.id,
    )
    # 10:20 in lesson 2 (10:00–10:45, London = UTC in March): due at the end of the lesson.
    assert loan.due_at == TUESDAY_1020.replace(minute=45)
    session.refresh(fleet[0])
    assert fleet[0].holder_id == teacher.id and fleet[0].current_location_id is None

    back = scan(session, teacher, fleet[0], trolley, "in")
    assert back.outcome == "returned" and back.counts and back.counts.text == "1 of 5 out"
    scan(session, teacher, fleet[1], trolley, "in")
    loan = services.get_loan(session, teacher.school_id, loan.id)
    assert loan.closed_at is not None
    assert [i.state for i in loan.items] == [ItemState.RETURNED, ItemState.RETURNED]
    session.refresh(fleet[0])
    assert fleet[0].holder_id is None and fleet[0].current_location_id == trolley.id
    kinds = session.scalars(
        select(DeviceEvent.kind)
        .where(DeviceEvent.device_id == fleet[0].id)
        .order_by(DeviceEvent.id)
    ).all()
    assert kinds == ["loan_out", "loan_return"]


def test_the_same_device_scanned_twice_is_recorded_once(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """A double beep, or scanning the same label again, changes nothing the second time."""
    scan(session, teacher, fleet[0], trolley)
    again = scan(session, teacher, fleet[0], trolley)
    assert again.outcome == "already_out" and not again.recorded
    assert "already out with you" in again.message
    assert count(session, LoanItem, LoanItem.device_id == fleet[0].id) == 1
    assert count(session, Scan, Scan.device_id == fleet[0].id) == 1
    back = scan(session, teacher, fleet[0], trolley, "in")
    again = scan(session, teacher, fleet[0], trolley, "in")
    assert back.outcome == "returned" and again.outcome == "already_in"
    assert count(session, DeviceEvent, DeviceEvent.device_id == fleet[0].id) == 2


def test_a_resent_scan_is_replayed_not_recorded_again(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """An offline queue sending the same scan twice records it once and gives the same answer."""
    first = scan(session, teacher, fleet[0], trolley, key="offline-scan-0001")
    scan(session, teacher, fleet[0], trolley, "in", key="offline-scan-0002")
    replay = scan(session, teacher, fleet[0], trolley, key="offline-scan-0001")
    assert replay.replayed and replay.outcome == "out" and replay.message == first.message
    assert count(session, LoanItem, LoanItem.device_id == fleet[0].id) == 1
    session.refresh(fleet[0])
    assert fleet[0].holder_id is None  # the replay did not take it out again


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("NOPE-999", NotFound),
        ("http://elsewhere.example/d/TAG-0001", ValidationFailed),
        ("two words", ValidationFailed),
        ("http://127.0.0.1:5000/devices/TAG-0001", ValidationFailed),
        ("trolley-enrol:1:abc", ValidationFailed),
    ],
)
def test_unknown_or_malformed_codes_record_nothing(
    session: Session,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    code: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error) as raised:
        scan(session, teacher, code, trolley)
    assert "Nothing was recorded" in str(raised.value)
    assert count(session, Loan) == count(session, LoanItem) == count(session, Scan) == 0
    assert count(session, DeviceEvent, DeviceEvent.kind.like("loan%")) == 0


def test_a_device_out_with_someone_else_is_offered_as_a_transfer(
    session: Session, teacher: User, other_teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """P-REG-3: the other teacher is told who has it, may take it over, and it is logged."""
    scan(session, teacher, fleet[0], trolley, class_label="Year 4 Oak")
    with pytest.raises(Conflict) as refused:
        scan(session, other_teacher, fleet[0], trolley)
    assert refused.value.code == "held_by_other"
    assert teacher.name in refused.value.message and "Year 4 Oak" in refused.value.message
    assert refused.value.details["can_transfer"] is True
    taken = scan(session, other_teacher, fleet[0], trolley, transfer=True)
    assert taken.outcome == "transferred"
    session.refresh(fleet[0])
    assert fleet[0].holder_id == other_teacher.id
    states = session.scalars(
        select(LoanItem.state).where(LoanItem.device_id == fleet[0].id).order_by(LoanItem.id)
    ).all()
    assert states == [ItemState.TRANSFERRED, ItemState.OUT]
    assert count(session, ActivityEntry, ActivityEntry.action == "loans.transferred") == 1
    assert len(notices(session, teacher, "loan_transfer")) == 1


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (DeviceStatus.IN_REPAIR, "in_repair", "in repair"),
        (DeviceStatus.DISPOSED, "disposed", "disposed of"),
    ],
)
def test_devices_out_of_use_are_refused_with_the_reason(
    session: Session,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    status: DeviceStatus,
    code: str,
    words: str,
) -> None:
    device = make_device(home=trolley, status=status)
    with pytest.raises(Conflict) as refused:
        scan(session, teacher, device, trolley)
    assert refused.value.code == code and words in refused.value.message
    assert count(session, LoanItem) == 0


def test_a_lost_device_scanned_tells_the_head_and_is_refused(
    session: Session,
    teacher: User,
    head: User,
    make_device: Callable[..., Device],
    trolley: Location,
) -> None:
    """P-LOSS-1: a lost device turning up at a trolley is refused, and the head is told."""
    device = make_device(home=trolley, status=DeviceStatus.LOST)
    with pytest.raises(Conflict) as refused:
        scan(session, teacher, device, trolley)
    assert refused.value.code == "reported_lost"
    assert "reported lost: the headteacher has been told it was found here" in refused.value.message
    session.expire_all()
    assert len(notices(session, head, "device_found")) == 1
    assert count(session, LoanItem) == 0
    assert count(session, DeviceEvent, DeviceEvent.device_id == device.id) == 1


def test_a_lost_device_goes_to_its_loss_report(
    session: Session,
    teacher: User,
    head: User,
    make_device: Callable[..., Device],
    trolley: Location,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []

    def device_scanned(session: Session, device: Device, **kwargs: Any) -> object:
        seen.append({"device": device.asset_tag, **kwargs})
        return object()  # the loss report it was attached to

    monkeypatch.setattr(losses, "device_scanned", device_scanned)
    device = make_device(home=trolley, status=DeviceStatus.STOLEN)
    with pytest.raises(Conflict):
        scan(session, teacher, device, trolley, "in")
    assert seen == [
        {"device": device.asset_tag, "location": trolley, "actor": teacher, "now": TUESDAY_1020}
    ]
    assert notices(session, head, "device_found") == []  # the loss report tells the head


def test_a_device_put_in_the_wrong_trolley_is_accepted_with_a_note_for_the_sbm(
    session: Session,
    teacher: User,
    sbm: User,
    fleet: list[Device],
    trolley: Location,
    other_trolley: Location,
) -> None:
    scan(session, teacher, fleet[0], trolley)
    back = scan(session, teacher, fleet[0], other_trolley, "in")
    assert back.outcome == "returned"
    assert any("lives in Year 4 trolley, not Year 3 trolley" in w for w in back.warnings)
    item = session.scalars(select(LoanItem).where(LoanItem.device_id == fleet[0].id)).one()
    assert item.wrong_trolley and item.return_location_id == other_trolley.id
    session.refresh(fleet[0])
    assert fleet[0].current_location_id == other_trolley.id
    (note,) = notices(session, sbm, "wrong_trolley")
    # On the school's clock in the one format every page uses, never a bare "UTC" time.
    assert "UTC" not in note.body and " on Tue " in note.body, note.body
    card = services.home_card(session, sbm, now=TUESDAY_1020)
    assert [i.device.asset_tag for i in card.misplaced] == [fleet[0].asset_tag]


def test_every_return_queues_a_photo_wipe_and_shows_its_answer(
    session: Session,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], Any],
    ack: Callable[..., Command],
) -> None:
    """P-PHOTO-1: a return asks the device to delete its photos; the loan shows the result."""
    enrol(fleet[0])
    scan(session, teacher, fleet[0], trolley)
    back = scan(session, teacher, fleet[0], trolley, "in")
    assert back.wipe == "wipe pending"
    command = session.scalars(select(Command).where(Command.device_id == fleet[0].id)).one()
    assert (command.type, command.status) == ("wipe_photos", CommandStatus.QUEUED)
    loan = services.get_loan(session, teacher.school_id, back.loan_id or 0)
    assert services.wipe_state(loan.items[0]) == ("pending", "wipe pending")
    ack(command, deleted=3, remaining=0)
    loan = services.get_loan(session, teacher.school_id, loan.id)
    assert services.wipe_state(loan.items[0]) == ("done", "wiped (3 photos deleted)")


def test_a_device_that_is_not_enrolled_is_returned_and_marked_wipe_by_hand(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    scan(session, teacher, fleet[0], trolley)
    back = scan(session, teacher, fleet[0], trolley, "in")
    assert back.outcome == "returned"
    assert back.wipe == "not enrolled: wipe by hand"
    assert f"{fleet[0].asset_tag} is not enrolled: wipe by hand." in back.warnings
    loan = services.get_loan(session, teacher.school_id, back.loan_id or 0)
    assert services.wipe_state(loan.items[0]) == ("by_hand", "not enrolled: wipe by hand")
    assert count(session, Command) == 0


def test_an_unconfirmed_wipe_is_flagged_to_the_next_teacher(
    session: Session,
    teacher: User,
    other_teacher: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], Any],
    ack: Callable[..., Command],
) -> None:
    """P-PHOTO-1: photos not confirmed deleted are pointed out when the device goes out again."""
    enrol(fleet[0])
    scan(session, teacher, fleet[0], trolley)
    scan(session, teacher, fleet[0], trolley, "in")
    again = scan(session, other_teacher, fleet[0], trolley, now=TUESDAY_1020 + timedelta(hours=1))
    assert again.tone == "warn"
    assert any("may still be on" in w and "wipe pending" in w for w in again.warnings)
    item = session.scalars(
        select(LoanItem).where(LoanItem.device_id == fleet[0].id, LoanItem.state == ItemState.OUT)
    ).one()
    assert item.wipe_unconfirmed_at_out
    # Once a wipe is confirmed, the next take-out is clean.
    scan(session, other_teacher, fleet[0], trolley, "in", now=TUESDAY_1020 + timedelta(hours=2))
    for command in session.scalars(select(Command).where(Command.device_id == fleet[0].id)):
        ack(command, deleted=0, remaining=0)
    clean = scan(session, teacher, fleet[0], trolley, now=TUESDAY_1020 + timedelta(hours=3))
    assert clean.warnings == []


def test_damage_at_return_is_reported_and_the_device_can_go_in_repair(
    session: Session, teacher: User, lead: User, fleet: list[Device], trolley: Location
) -> None:
    """P-AUDIT-2: condition flags raise a damage report; a repaired device is not loanable."""
    scan(session, teacher, fleet[0], trolley)
    back = scan(
        session,
        teacher,
        fleet[0],
        trolley,
        "in",
        condition=[ConditionFlag.SCREEN_CRACKED, ConditionFlag.CASE_MISSING],
        condition_note="Dropped in PE",
        put_in_repair=True,
    )
    assert back.outcome == "returned"
    assert any("computing lead has been told" in w for w in back.warnings)
    report = session.scalars(select(DamageReport)).one()
    assert report.flags == ["screen_cracked", "case_missing"] and report.note == "Dropped in PE"
    assert report.status is DamageStatus.IN_REPAIR
    session.refresh(fleet[0])
    assert fleet[0].status is DeviceStatus.IN_REPAIR
    assert len(notices(session, lead, "damage_report")) == 1
    with pytest.raises(Conflict) as refused:
        scan(session, teacher, fleet[0], trolley)
    assert refused.value.code == "in_repair"


def test_a_damage_report_can_be_put_in_repair_later_and_closed(
    session: Session, teacher: User, lead: User, fleet: list[Device], trolley: Location
) -> None:
    scan(session, teacher, fleet[1], trolley)
    scan(session, teacher, fleet[1], trolley, "in", condition=[ConditionFlag.NOT_CHARGING])
    report = session.scalars(select(DamageReport)).one()
    assert report.status is DamageStatus.OPEN
    services.put_in_repair(session, teacher, report.id)
    session.refresh(fleet[1])
    assert fleet[1].status is DeviceStatus.IN_REPAIR
    with pytest.raises(ValidationFailed):
        services.resolve_damage(session, lead, report.id, "  ")
    services.resolve_damage(session, lead, report.id, "New charging port")
    assert services.damage_reports(session, teacher.school_id) == []


def test_the_whole_trolley_goes_out_in_one_action(
    session: Session,
    teacher: User,
    fleet: list[Device],
    make_device: Callable[..., Device],
    trolley: Location,
) -> None:
    broken = make_device(home=trolley, status=DeviceStatus.IN_REPAIR)
    batch = services.take_out(
        session,
        teacher,
        trolley_id=trolley.id,
        base_url=BASE,
        take_all=True,
        class_label="Year 4 Ash",
        now=TUESDAY_1020,
    )
    assert batch.loan is not None
    assert sorted(i.device.asset_tag for i in batch.loan.items) == sorted(
        d.asset_tag for d in fleet
    )
    assert [(r.asset_tag, r.code) for r in batch.refused] == [(broken.asset_tag, "in_repair")]
    assert batch.counts is not None and batch.counts.text == "5 of 6 out"


def test_a_batch_with_an_unknown_tag_records_nothing(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        services.take_out(
            session,
            teacher,
            trolley_id=trolley.id,
            base_url=BASE,
            asset_tags=[fleet[0].asset_tag, "NOT-A-TAG"],
            now=TUESDAY_1020,
        )
    assert "NOT-A-TAG" in str(refused.value.details)
    assert count(session, Loan) == count(session, LoanItem) == 0


def test_returning_through_a_loan_lists_devices_that_are_not_on_it(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    batch = services.take_out(
        session,
        teacher,
        trolley_id=trolley.id,
        base_url=BASE,
        asset_tags=[fleet[0].asset_tag, fleet[1].asset_tag],
        now=TUESDAY_1020,
    )
    assert batch.loan is not None
    back = services.return_devices(
        session,
        teacher,
        batch.loan.id,
        asset_tags=[fleet[0].asset_tag, fleet[2].asset_tag],
        base_url=BASE,
        now=TUESDAY_1020,
    )
    assert [(r.asset_tag, r.code) for r in back.refused] == [(fleet[2].asset_tag, "not_on_loan")]
    assert back.loan is not None
    assert {i.device.asset_tag: i.state for i in back.loan.items} == {
        fleet[0].asset_tag: ItemState.RETURNED,
        fleet[1].asset_tag: ItemState.OUT,
    }


def test_undo_the_last_scan(
    session: Session, teacher: User, other_teacher: User, fleet: list[Device], trolley: Location
) -> None:
    out = scan(session, teacher, fleet[0], trolley, key="undo-me-out-1")
    with pytest.raises(NotFound):
        services.undo_scan(session, other_teacher, "undo-me-out-1", now=TUESDAY_1020)
    undone = services.undo_scan(session, teacher, "undo-me-out-1", now=TUESDAY_1020)
    assert "back in Year 4 trolley" in undone.message
    assert undone.counts is not None and undone.counts.out == 0
    session.refresh(fleet[0])
    assert fleet[0].holder_id is None and fleet[0].current_location_id == trolley.id
    assert count(session, Loan, Loan.id == out.loan_id) == 0
    with pytest.raises(Conflict):
        services.undo_scan(session, teacher, "undo-me-out-1", now=TUESDAY_1020)

    scan(session, teacher, fleet[1], trolley, key="undo-me-out-2")
    scan(session, teacher, fleet[1], trolley, "in", key="undo-me-in-2")
    services.undo_scan(session, teacher, "undo-me-in-2", now=TUESDAY_1020)
    session.refresh(fleet[1])
    assert fleet[1].holder_id == teacher.id
    with pytest.raises(Conflict):  # the take-out has a later scan (the undone return is skipped)
        services.undo_scan(session, teacher, "undo-me-out-2", now=TUESDAY_1020 + timedelta(hours=1))


def test_the_default_due_time_follows_the_school_day(
    session: Session, teacher: User, school: Any
) -> None:
    day = services.school_day(session, school.id)
    at = TUESDAY_1020.replace
    assert day.default_due(at(hour=10, minute=20)) == at(hour=10, minute=45)
    assert day.default_due(at(hour=10, minute=50)) == at(hour=12, minute=0)  # break → lesson 3
    assert day.default_due(at(hour=8, minute=30)) == at(hour=10, minute=0)
    assert day.default_due(at(hour=15, minute=20)) == at(hour=15, minute=30)  # the day's end
    assert day.default_due(at(hour=17, minute=0)) == at(hour=18, minute=0)
    # In summer time the school's clock is an hour ahead of UTC.
    june = TUESDAY_1020.replace(month=6, day=10, hour=9, minute=20)
    assert day.default_due(june) == june.replace(minute=45)


def test_the_sbm_saves_the_school_day(session: Session, sbm: User, school: Any) -> None:
    with pytest.raises(ValidationFailed) as wrong:
        services.save_school_day(
            session,
            sbm,
            [
                services.Period(
                    "Maths",
                    TUESDAY_1020.time().replace(hour=9),
                    TUESDAY_1020.time().replace(hour=10),
                ),
                services.Period(
                    "PE",
                    TUESDAY_1020.time().replace(hour=9, minute=30),
                    TUESDAY_1020.time().replace(hour=11),
                ),
            ],
            TUESDAY_1020.time().replace(hour=15, minute=30),
        )
    assert any("overlap" in d["message"] for d in wrong.value.details)
    session.rollback()
    t = TUESDAY_1020.time().replace
    day = services.save_school_day(
        session,
        sbm,
        [
            services.Period("Morning", t(hour=9, minute=0), t(hour=12, minute=0)),
            services.Period("Tuesday club", t(hour=15, minute=0), t(hour=16, minute=0), weekday=1),
        ],
        t(hour=16, minute=30),
    )
    assert day.custom
    assert day.default_due(TUESDAY_1020) == TUESDAY_1020.replace(hour=12, minute=0)
    assert day.default_due(TUESDAY_1020.replace(hour=14)) == TUESDAY_1020.replace(hour=16, minute=0)
    wednesday = TUESDAY_1020.replace(day=12, hour=14)
    assert day.default_due(wednesday) == wednesday.replace(hour=16, minute=30)
    assert count(session, ActivityEntry, ActivityEntry.action == "loans.school_day_changed") == 1


def test_a_back_by_time_after_midnight_is_tomorrows(session: Session, school: Any) -> None:
    """Late in the evening the page offers a time past midnight: it means tomorrow's, while an
    earlier time of today is still refused as a slip."""
    evening = TUESDAY_1020.replace(hour=23, minute=10)  # 23:10 in London (GMT in March)
    due = services.due_today_at(session, school.id, time(0, 10), now=evening)
    assert due == evening + timedelta(hours=1)
    assert services.due_today_at(session, school.id, time(11, 0), now=TUESDAY_1020) == (
        TUESDAY_1020.replace(hour=11, minute=0)
    )
    with pytest.raises(ValidationFailed, match="09:00 has already passed today"):
        services.due_today_at(session, school.id, time(9, 0), now=TUESDAY_1020)


def test_a_whole_trolley_returned_within_the_hour_needs_nobody_else(
    session: Session,
    teacher: User,
    trolley: Location,
    make_device: Callable[..., Device],
    enrol: Callable[[Device], Any],
) -> None:
    """P-PHOTO-1, P-SEC-1: the wipe each return raises is never held by the fleet-disruption
    budget, so a class returning 15 iPads gets 15 wipes on their way, not an approval queue."""
    devices = [make_device(home=trolley, home_slot=n) for n in range(1, 16)]
    for device in devices:
        enrol(device)
        scan(session, teacher, device, trolley)
    for device in devices:
        assert scan(session, teacher, device, trolley, "in").wipe == "wipe pending"
    statuses = session.scalars(select(Command.status).where(Command.type == "wipe_photos")).all()
    assert statuses == [CommandStatus.QUEUED] * 15
