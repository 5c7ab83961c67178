"""Running a termly audit: start, scans, condition, close, the report, follow-ups (P-AUDIT-1/2)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audits import services
from server.audits.models import Audit, AuditItem, AuditState, AuditUnknownTag
from server.auth.models import User
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.notifications.models import Notification
from server.schools.models import Location, School, Term
from tests.server.audits.conftest import BASE_URL, NOW, Fleet
from tests.server.conftest import confirm_reset


def _scan(session: Session, user: User, audit: Audit, code: str, place: Location, **kw: object):
    return services.scan(
        session,
        user,
        audit.id,
        code,
        location_id=place.id,
        base_url=BASE_URL,
        now=kw.pop("now", NOW),
    )


def _item(session: Session, audit: Audit, device: Device) -> AuditItem:
    item = session.scalar(
        select(AuditItem).where(AuditItem.audit_id == audit.id, AuditItem.device_id == device.id)
    )
    assert item is not None
    session.refresh(item)
    return item


def test_an_audit_starts_with_every_expected_device_missing(
    session: Session, lead: User, fleet: Fleet, make_device: Callable[..., Device]
) -> None:
    """P-AUDIT-1: every device in the register (not the disposed) starts as missing."""
    make_device(home=fleet.y4, asset_tag="GONE-1", serial="GONE00001", status=DeviceStatus.DISPOSED)
    audit = services.start_audit(session, lead, now=NOW)
    assert audit.whole_school and audit.expected_count == 7
    assert audit.term.name == "Spring 2025/26"
    states = session.execute(
        select(AuditItem.state, func.count())
        .where(AuditItem.audit_id == audit.id)
        .group_by(AuditItem.state)
    ).all()
    assert states == [(AuditState.MISSING, 7)]
    with pytest.raises(Conflict, match="already open"):
        services.start_audit(session, lead, now=NOW)


def test_an_audit_of_chosen_places_covers_the_places_inside_them(
    session: Session, lead: User, fleet: Fleet
) -> None:
    """Choosing the Year 4 room takes in the Year 4 trolley inside it, and nothing else."""
    room = fleet.y4.parent
    assert room is not None and room.name == "Year 4 classroom"
    audit = services.start_audit(session, lead, location_ids=[room.id], now=NOW)
    assert not audit.whole_school and audit.expected_count == 4
    tags = set(
        session.scalars(
            select(Device.asset_tag)
            .join(AuditItem, AuditItem.device_id == Device.id)
            .where(AuditItem.audit_id == audit.id)
        )
    )
    assert tags == {"Y4-1", "Y4-2", "Y4-3", "Y4-4"}


def test_starting_refuses_bad_places_terms_and_empty_scopes(
    session: Session, lead: User, fleet: Fleet, other_school: School
) -> None:
    from server.schools.models import LocationKind
    from server.schools.services import add_location

    theirs = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.ROOM, name="Elm room"
    )
    with pytest.raises(ValidationFailed, match="not in your school"):
        services.start_audit(session, lead, location_ids=[theirs.id], now=NOW)
    with pytest.raises(NotFound, match="No such term"):
        services.start_audit(session, lead, term_id=999999, now=NOW)
    with pytest.raises(ValidationFailed, match="No devices live"):
        services.start_audit(session, lead, location_ids=[fleet.safe.id], now=NOW)
    assert session.scalar(select(func.count()).select_from(Audit)) == 0


def test_scans_verify_misplace_and_find(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    """P-AUDIT-1 / P-TROLLEY-2: at home is verified; elsewhere is misplaced with where it was."""
    y4_1, y4_2, y4_3 = fleet.y4_devices[:3]
    y4_3.status = DeviceStatus.LOST
    session.commit()
    audit = services.start_audit(session, lead, now=NOW)
    done = _scan(session, teacher, audit, "Y4-1", fleet.y4)
    assert (done.outcome, done.tone) == ("verified", "ok")
    assert done.place is not None and done.place.text == "1 / 4 — Year 4 trolley"
    assert (done.found, done.total) == (1, 7)
    moved = _scan(session, teacher, audit, f"{BASE_URL}/d/Y4-2", fleet.y3)
    assert moved.outcome == "misplaced" and "lives in Year 4 trolley" in moved.message
    lost = _scan(session, teacher, audit, "y4-3", fleet.y4)  # caps lock the wrong way round
    assert lost.outcome == "found" and "reported lost" in lost.message
    assert _item(session, audit, y4_2).scanned_location_id == fleet.y3.id
    session.refresh(y4_2)
    assert y4_2.current_location_id == fleet.y3.id  # the register learns where it really is
    events = session.scalars(
        select(DeviceEvent.summary).where(
            DeviceEvent.device_id == y4_1.id, DeviceEvent.kind == "audit"
        )
    ).all()
    assert events == ["Termly audit: scanned in Year 4 trolley (verified)"]


def test_the_same_device_twice_is_recorded_once_and_the_newest_place_wins(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    device = fleet.y4_devices[0]
    audit = services.start_audit(session, lead, now=NOW)
    _scan(session, teacher, audit, "Y4-1", fleet.y3)
    again = _scan(session, lead, audit, "Y4-1", fleet.y4, now=NOW + timedelta(minutes=5))
    assert again.repeat and "Already scanned" in again.message and "newest place" in again.message
    assert again.outcome == "verified" and again.found == 1
    item = _item(session, audit, device)
    assert (item.state, item.scanned_location_id, item.scan_count) == (
        AuditState.VERIFIED,
        fleet.y4.id,
        2,
    )
    assert item.first_scanned_at == NOW and item.scanned_by_id == lead.id
    same = _scan(session, lead, audit, "Y4-1", fleet.y4, now=NOW + timedelta(minutes=6))
    assert same.tone == "info" and "nothing changed" in same.message
    rows = session.scalar(select(func.count()).where(AuditItem.audit_id == audit.id))
    assert rows == 7


def test_a_device_of_another_school_is_refused_and_nothing_is_recorded(
    session: Session,
    lead: User,
    fleet: Fleet,
    other_school: School,
    make_device: Callable[..., Device],
) -> None:
    theirs = make_device(in_school=other_school, asset_tag="ELM-0001", serial="ELMSERIAL1")
    audit = services.start_audit(session, lead, now=NOW)
    with pytest.raises(Conflict, match="registered to another school") as refused:
        _scan(session, lead, audit, "ELM-0001", fleet.y4)
    assert refused.value.code == "other_school"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditUnknownTag)) == 0
    assert session.scalar(select(func.count()).where(DeviceEvent.device_id == theirs.id)) == 0


def test_unknown_tags_are_kept_once_for_follow_up(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    audit = services.start_audit(session, lead, now=NOW)
    first = _scan(session, teacher, audit, "NOPE-404", fleet.y4)
    assert first.outcome == "unknown" and "kept on the audit's list" in first.message
    again = _scan(session, lead, audit, "NOPE-404", fleet.y3)
    assert again.repeat and "already on the list" in again.message
    row = session.scalar(select(AuditUnknownTag).where(AuditUnknownTag.audit_id == audit.id))
    assert row is not None and (row.scan_count, row.location_id) == (2, fleet.y3.id)


def test_codes_that_are_not_labels_and_bad_places_record_nothing(
    session: Session, lead: User, fleet: Fleet, other_school: School
) -> None:
    from server.schools.models import LocationKind
    from server.schools.services import add_location

    audit = services.start_audit(session, lead, now=NOW)
    for code in ("", "two words", "https://elsewhere.example/d/Y4-1", "x" * 600):
        with pytest.raises(ValidationFailed) as refused:
            _scan(session, lead, audit, code, fleet.y4)
        assert refused.value.code == "bad_code"
    theirs = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.ROOM, name="Elm room"
    )
    session.commit()
    with pytest.raises(ValidationFailed, match="Choose where you are scanning"):
        _scan(session, lead, audit, "Y4-1", theirs)
    session.rollback()
    assert _item(session, audit, fleet.y4_devices[0]).state is AuditState.MISSING
    with pytest.raises(NotFound):
        services.scan(session, lead, 999999, "Y4-1", location_id=fleet.y4.id, base_url=BASE_URL)


def test_a_signed_off_audit_refuses_scans_with_a_clear_message(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    """P-AUDIT-1: once signed off the audit is locked; a late scan says so, never vanishes."""
    audit = services.start_audit(session, lead, now=NOW)
    services.close_audit(session, lead, audit.id, now=NOW + timedelta(hours=1))
    with pytest.raises(Conflict, match=r"signed off by .* and is locked") as refused:
        _scan(session, teacher, audit, "Y4-1", fleet.y4)
    assert refused.value.code == "audit_closed" and "Y4-1 was not recorded" in refused.value.message
    session.rollback()
    assert _item(session, audit, fleet.y4_devices[0]).state is AuditState.MISSING
    with pytest.raises(Conflict, match="locked"):
        services.record_condition(session, lead, audit.id, "Y4-1", {"case_on": True})
    with pytest.raises(Conflict, match="signed off"):
        services.close_audit(session, lead, audit.id)


def test_the_condition_checklist_marks_damage(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    """P-AUDIT-2: case on, screen intact, charger, label readable, powers on."""
    audit = services.start_audit(session, lead, now=NOW)
    with pytest.raises(Conflict, match="Scan Y4-1 first") as early:
        services.record_condition(session, teacher, audit.id, "Y4-1", {"case_on": True})
    assert early.value.code == "not_scanned"
    _scan(session, teacher, audit, "Y4-1", fleet.y4)
    with pytest.raises(ValidationFailed, match="Unknown checks: wet"):
        services.record_condition(session, teacher, audit.id, "Y4-1", {"wet": False})
    with pytest.raises(ValidationFailed, match="at least one"):
        services.record_condition(session, teacher, audit.id, "Y4-1", {})
    with pytest.raises(NotFound):
        services.record_condition(session, teacher, audit.id, "NOPE", {"case_on": True})
    checks = {
        "case_on": False,
        "screen_intact": False,
        "charger": True,
        "label_readable": True,
        "powers_on": True,
    }
    item = services.record_condition(
        session, teacher, audit.id, "Y4-1", checks, note="Crack across the corner", now=NOW
    )
    assert item.damaged and item.problems == ["no case", "screen damaged"]
    summary = session.scalars(
        select(DeviceEvent.summary)
        .where(DeviceEvent.device_id == fleet.y4_devices[0].id)
        .order_by(DeviceEvent.id.desc())
    ).first()
    assert summary == (
        "Termly audit: damage noted (no case, screen damaged): Crack across the corner"
    )
    fixed = services.record_condition(
        session, teacher, audit.id, "Y4-1", {"case_on": True, "screen_intact": True}
    )
    assert not fixed.damaged and fixed.condition_note == "Crack across the corner"


def test_progress_is_counted_per_place(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    audit = services.start_audit(session, lead, now=NOW)
    for minute, tag in enumerate(("Y4-1", "Y4-2", "Y3-1")):
        _scan(session, teacher, audit, tag, fleet.y4, now=NOW + timedelta(minutes=minute))
    _scan(session, teacher, audit, "NOPE-1", fleet.y4)
    now = services.progress(session, lead.school_id, audit.id)
    assert [p.text for p in now.places] == ["1 / 3 — Year 3 trolley", "2 / 4 — Year 4 trolley"]
    assert (now.found, now.expected, now.unknown, now.percent) == (3, 7, 1, 42)
    assert [r.tag for r in now.recent] == ["Y3-1", "Y4-2", "Y4-1"]
    with pytest.raises(NotFound):
        services.progress(session, lead.school_id, 999999)


def _run_spring_audit(session: Session, lead: User, teacher: User, fleet: Fleet) -> Audit:
    """Y4-1 verified (silent 40 days), Y4-2 misplaced (3 photos), Y4-3 damaged, Y4-4 missing
    but online an hour ago, Y3-1 verified, Y3-2 and Y3-3 missing, plus an unknown label."""
    y4 = fleet.y4_devices
    y4[0].last_seen_at = NOW - timedelta(days=40)
    y4[1].photo_count, y4[1].photo_count_at = 3, NOW - timedelta(days=2)
    y4[1].last_seen_at = NOW - timedelta(days=2)
    y4[2].last_seen_at = NOW - timedelta(hours=2)
    y4[3].last_seen_at = NOW - timedelta(hours=1)
    fleet.y3_devices[1].holder_id = teacher.id
    session.commit()
    audit = services.start_audit(session, lead, now=NOW)
    _scan(session, teacher, audit, "Y4-1", fleet.y4)
    _scan(session, teacher, audit, "Y4-2", fleet.safe)
    _scan(session, teacher, audit, "Y4-3", fleet.y4)
    _scan(session, teacher, audit, "Y3-1", fleet.y3)
    _scan(session, teacher, audit, "LOST-LABEL", fleet.y3)
    services.record_condition(
        session, teacher, audit.id, "Y4-3", {"screen_intact": False}, note="Cracked", now=NOW
    )
    return audit


def test_the_signed_off_report_has_every_part(
    session: Session, lead: User, teacher: User, fleet: Fleet, sbm: User, head: User
) -> None:
    """P-AUDIT-1 / P-AUDIT-2: summary, per place, missing with last holder, misplaced, damaged,
    unknown, and the cross-checks with what the devices themselves report."""
    y3_3 = fleet.y3_devices[2]
    from server.devices.services import add_event

    event = add_event(session, y3_3, kind="loan_out", summary="Taken out by Amira", actor=teacher)
    event.at = NOW - timedelta(days=3)
    session.commit()
    audit = _run_spring_audit(session, lead, teacher, fleet)
    services.close_audit(session, lead, audit.id, note="All trolleys checked", now=NOW)
    got = services.report(session, lead.school_id, audit.id, now=NOW + timedelta(days=60))
    assert not got.live and got.audit.sign_off_note == "All trolleys checked"
    t = got.totals
    assert (t.expected, t.verified, t.misplaced, t.found, t.missing) == (7, 3, 1, 0, 3)
    assert (t.damaged, t.unknown, t.where_is_it, t.silent, t.photos) == (1, 1, 1, 2, 1)
    assert audit.summary["missing"] == 3 and audit.summary["damaged"] == 1
    assert [p.text for p in got.places] == [
        "1 / 3 — Year 3 classroom › Year 3 trolley",
        "3 / 4 — Year 4 classroom › Year 4 trolley",
    ]
    assert [line.asset_tag for line in got.missing.lines] == ["Y3-2", "Y3-3", "Y4-4"]
    held, taken, online = got.missing.lines
    assert held.holder == teacher.name  # the holder at sign-off
    assert taken.holder == teacher.name and taken.last_scan_note == "Taken out by Amira"
    assert taken.last_scan_at == NOW - timedelta(days=3)
    assert online.online and [line.asset_tag for line in got.where_is_it.lines] == ["Y4-4"]
    (misplaced,) = got.misplaced.lines
    assert (misplaced.asset_tag, misplaced.found_in) == ("Y4-2", "Office › Office safe")
    assert misplaced.lives_in == "Year 4 classroom › Year 4 trolley"
    (damaged,) = got.damaged.lines
    assert damaged.problems == ["screen damaged"] and damaged.condition_note == "Cracked"
    # Silent: Y4-1 last heard from 40 days ago, Y3-1 never; Y4-3 two hours before sign-off.
    assert [line.asset_tag for line in got.silent.lines] == ["Y3-1", "Y4-1"]
    assert [line.asset_tag for line in got.photos.lines] == ["Y4-2"]
    assert [u.tag for u in got.unknown] == ["LOST-LABEL"]
    assert got.previous is None and got.newly_missing.total == 0
    told = session.scalars(
        select(Notification.user_id).where(Notification.kind == "audit.signed_off")
    ).all()
    assert set(told) == {sbm.id, head.id}


def test_the_report_while_open_is_live(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    audit = _run_spring_audit(session, lead, teacher, fleet)
    got = services.report(session, lead.school_id, audit.id, now=NOW)
    assert got.live and got.totals.missing == 3 and got.totals.where_is_it == 1
    assert [line.asset_tag for line in got.where_is_it.lines] == ["Y4-4"]
    assert got.totals.silent == 2 and got.totals.photos == 1


def test_a_device_erased_since_it_counted_photos_is_not_found_with_photos(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    """P-AUDIT-2, P-PHOTO-2: Y4-2 counted 3 photos, then its storage was erased (a reset it
    confirmed): it is not listed as found with photos, live or at sign-off, and the signed-off
    report keeps its count as not known rather than the count from before the erase."""
    audit = _run_spring_audit(session, lead, teacher, fleet)
    confirm_reset(session, fleet.y4_devices[1], NOW - timedelta(days=1))
    live = services.report(session, lead.school_id, audit.id, now=NOW)
    assert live.totals.photos == 0 and live.photos.lines == []
    services.close_audit(session, lead, audit.id, now=NOW)
    got = services.report(session, lead.school_id, audit.id, now=NOW + timedelta(days=60))
    assert got.totals.photos == 0 and got.photos.lines == []
    (misplaced,) = got.misplaced.lines
    assert (misplaced.photo_count, misplaced.photo_count_at) == (None, None)


def test_the_report_compares_with_last_term(
    session: Session, lead: User, teacher: User, fleet: Fleet, terms: dict[str, Term]
) -> None:
    """P-AUDIT-1: newly missing since last term, and recovered since last term."""
    autumn = services.start_audit(
        session, lead, term_id=terms["Autumn"].id, now=NOW - timedelta(days=90)
    )
    for tag in ("Y4-2", "Y4-3", "Y4-4", "Y3-1", "Y3-2", "Y3-3"):
        _scan(session, teacher, autumn, tag, fleet.y4, now=NOW - timedelta(days=90))
    services.close_audit(session, lead, autumn.id, now=NOW - timedelta(days=89))
    spring = services.start_audit(session, lead, now=NOW)
    for tag in ("Y4-1", "Y4-3", "Y4-4", "Y3-1", "Y3-2", "Y3-3"):
        _scan(session, teacher, spring, tag, fleet.y4)
    live = services.report(session, lead.school_id, spring.id, now=NOW)
    services.close_audit(session, lead, spring.id, now=NOW)
    signed = services.report(session, lead.school_id, spring.id)
    # While open the comparison is worked out; once signed off it is read from the rows.
    for got in (live, signed):
        assert got.previous is not None and got.previous.id == autumn.id
        assert [line.asset_tag for line in got.newly_missing.lines] == ["Y4-2"]
        assert [line.asset_tag for line in got.recovered.lines] == ["Y4-1"]
        assert (got.newly_missing.total, got.recovered.total) == (1, 1)
    assert live.live and not signed.live


def test_the_report_downloads_as_csv(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    audit = _run_spring_audit(session, lead, teacher, fleet)
    services.close_audit(session, lead, audit.id, now=NOW)
    text = services.report_csv(session, lead.school_id, audit.id)
    # A byte-order mark first, so Excel reads the file as UTF-8 (the “›” in place paths).
    assert text.startswith("\ufeffAsset tag,Model,Register status,Audit result,")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [r["Asset tag"] for r in rows] == [
        "Y3-1",
        "Y3-2",
        "Y3-3",
        "Y4-1",
        "Y4-2",
        "Y4-3",
        "Y4-4",
        "LOST-LABEL",
    ]
    by_tag = {r["Asset tag"]: r for r in rows}
    assert by_tag["Y4-2"]["Audit result"] == "Misplaced"
    assert by_tag["Y4-2"]["Register status"] == "In service"
    assert by_tag["Y4-2"]["Found in"] == "Office › Office safe"
    assert by_tag["Y4-3"]["Screen intact"] == "No" and by_tag["Y4-3"]["Damaged"] == "Yes"
    assert by_tag["Y4-4"]["Online in the last 24 hours"] == "Yes"
    assert by_tag["Y3-2"]["Held by"] == teacher.name
    assert by_tag["LOST-LABEL"]["Audit result"] == "Unknown label"
    assert by_tag["Y4-1"]["Scanned at"] == "2026-03-03 10:42"
    assert "in_service" not in text and "unknown_label" not in text


def test_a_formula_in_a_name_stays_text_in_the_csv(
    session: Session, lead: User, fleet: Fleet
) -> None:
    fleet.y4_devices[0].model = '=HYPERLINK("http://evil.example")'
    session.commit()
    audit = services.start_audit(session, lead, now=NOW)
    text = services.report_csv(session, lead.school_id, audit.id)
    assert "'=HYPERLINK" in text


def test_only_the_sbm_countersigns_and_only_once(
    session: Session, lead: User, sbm: User, head: User, fleet: Fleet
) -> None:
    audit = services.start_audit(session, lead, now=NOW)
    with pytest.raises(Conflict, match="signs the audit off first"):
        services.countersign(session, sbm, audit.id)
    services.close_audit(session, lead, audit.id, now=NOW)
    with pytest.raises(Forbidden, match="school business manager"):
        services.countersign(session, head, audit.id)
    signed = services.countersign(session, sbm, audit.id, note="Seen and agreed", now=NOW)
    assert signed.countersigned_by_id == sbm.id and signed.countersign_note == "Seen and agreed"
    with pytest.raises(Conflict, match="already countersigned"):
        services.countersign(session, sbm, audit.id)


def test_follow_ups_send_the_damaged_for_repair_and_tell_the_technician(
    session: Session, lead: User, teacher: User, fleet: Fleet, technician: User
) -> None:
    """P-AUDIT-2: a repair ticket: in repair, a timeline entry and the technician told."""
    audit = _run_spring_audit(session, lead, teacher, fleet)
    with pytest.raises(Conflict, match="Sign the audit off first"):
        services.raise_follow_ups(session, lead, audit.id, now=NOW)
    services.close_audit(session, lead, audit.id, now=NOW)
    done = services.raise_follow_ups(session, lead, audit.id, now=NOW)
    damaged = fleet.y4_devices[2]
    session.refresh(damaged)
    assert done.repairs == ["Y4-3"] and damaged.status is DeviceStatus.IN_REPAIR
    summaries = session.scalars(
        select(DeviceEvent.summary).where(DeviceEvent.device_id == damaged.id)
    ).all()
    assert any(
        "Termly audit (Spring 2025/26) found screen damaged: Cracked" in s for s in summaries
    )
    notice = session.scalar(select(Notification).where(Notification.kind == "audit.repairs"))
    assert notice is not None and notice.user_id == technician.id and "Y4-3" in notice.body
    again = services.raise_follow_ups(session, lead, audit.id, now=NOW)
    assert again.repairs == [] and "Y4-3" not in [tag for tag, _why in again.skipped]


def test_follow_ups_raise_loss_reports_for_the_missing(
    session: Session, lead: User, teacher: User, fleet: Fleet, head: User
) -> None:
    """P-AUDIT-1: one action raises a loss report for each missing device (losses domain)."""
    from server.losses.models import LossReport

    audit = _run_spring_audit(session, lead, teacher, fleet)
    services.close_audit(session, lead, audit.id, now=NOW)
    done = services.raise_follow_ups(session, lead, audit.id, now=NOW + timedelta(minutes=5))
    assert sorted(tag for tag, _id in done.losses) == ["Y3-2", "Y3-3", "Y4-4"]
    reports = session.scalars(select(LossReport).order_by(LossReport.id)).all()
    assert len(reports) == 3
    assert "Not found in the Spring 2025/26 termly audit" in reports[0].circumstances
    lost = session.get(Device, fleet.y4_devices[3].id)
    assert lost is not None and lost.status is DeviceStatus.LOST
    ids = session.scalars(
        select(AuditItem.loss_report_id).where(
            AuditItem.audit_id == audit.id, AuditItem.state == AuditState.MISSING
        )
    ).all()
    assert sorted(ids) == sorted(r.id for r in reports)
    again = services.raise_follow_ups(session, lead, audit.id, now=NOW + timedelta(minutes=6))
    assert again.losses == [] and session.scalar(select(func.count()).select_from(LossReport)) == 3


def test_a_found_device_tells_its_loss_report(
    session: Session, lead: User, teacher: User, fleet: Fleet, head: User
) -> None:
    """Scanning a device reported lost marks it found and alerts the loss case's people."""
    from server.losses import services as losses
    from server.losses.models import LossKind, LossReport

    losses.report_loss(
        session,
        teacher,
        asset_tag="Y4-1",
        kind=LossKind.LOST,
        last_seen_at=NOW - timedelta(days=5),
        last_seen_where="Year 4 classroom",
        circumstances="Not back after PE.",
        now=NOW - timedelta(days=4),
    )
    audit = services.start_audit(session, lead, now=NOW)
    result = _scan(session, lead, audit, "Y4-1", fleet.y3)
    assert result.outcome == "found"
    loss = session.scalar(select(LossReport))
    assert loss is not None
    alerts = session.scalars(
        select(Notification.title).where(Notification.kind == "loss.scanned")
    ).all()
    assert alerts and "was scanned" in alerts[0]
    _scan(session, lead, audit, "Y4-1", fleet.y4)  # found again elsewhere: told once is enough
    again = session.scalars(
        select(Notification.title).where(Notification.kind == "loss.scanned")
    ).all()
    assert len(again) == len(alerts)
