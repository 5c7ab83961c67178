"""Disposal rules: who may join a batch, completion all or nothing, records stay (P-DISPOSE-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.activity.services import verify_chain
from server.auth.models import Role, User
from server.db import utcnow
from server.devices import services as register
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.disposals import services
from server.disposals.models import (
    DeviceErasure,
    Disposal,
    DisposalItem,
    DisposalStatus,
    ErasureMethod,
    ErasureSource,
    WipeMethod,
)
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.schools.models import School
from tests.server.disposals.conftest import DETAILS


def _erasures(session: Session, device: Device) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(DeviceErasure)
            .where(DeviceErasure.device_id == device.id)
        )
        or 0
    )


def test_a_device_with_no_erasure_record_cannot_join(
    session: Session, sbm: User, batch: Disposal, make_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: only devices already factory reset or destroyed can join a batch."""
    device = make_device(status=DeviceStatus.IN_STOCK)
    with pytest.raises(ValidationFailed) as refused:
        services.add_device(
            session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    assert "no record of a factory reset" in refused.value.message
    session.rollback()
    assert services.batch_of(session, device) is None


def test_a_reset_the_device_acknowledged_lets_it_join(
    session: Session, sbm: User, batch: Disposal, make_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: the device's own acknowledgement of its factory reset is the evidence."""
    device = make_device(status=DeviceStatus.IN_REPAIR)
    at = utcnow() - timedelta(hours=2)
    erasure = services.mark_reset_confirmed(session, device, at)
    again = services.mark_reset_confirmed(session, device, at)  # a redelivered acknowledgement
    session.commit()
    assert again.id == erasure.id and _erasures(session, device) == 1
    assert erasure.source is ErasureSource.DEVICE_ACKNOWLEDGEMENT
    worded = services.mark_reset_confirmed(session, device, utcnow(), "device acknowledgement")
    assert worded.source is ErasureSource.DEVICE_ACKNOWLEDGEMENT and worded.id != erasure.id
    with pytest.raises(ValueError, match="unknown erasure source"):
        services.mark_reset_confirmed(session, device, utcnow(), "a rumour")
    session.commit()
    erasure = worded
    item = services.add_device(
        session,
        sbm,
        batch.id,
        device.asset_tag,
        wipe_method=WipeMethod.FORENSIC_WIPE,
        certificate_line="12",
    )
    assert item.erasure_id == erasure.id
    assert "Factory reset confirmed by the device at " in item.erasure_evidence
    assert item.certificate_line == "12"


def test_a_technician_can_vouch_with_evidence_when_adding(
    session: Session, technician: User, batch: Disposal, make_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: a person's evidence is kept with their name, and must say something."""
    device = make_device(status=DeviceStatus.IN_REPAIR)
    with pytest.raises(ValidationFailed, match="Say what shows"):
        services.add_device(
            session,
            technician,
            batch.id,
            device.asset_tag,
            wipe_method=WipeMethod.PHYSICAL_DESTRUCTION,
            erasure_method=ErasureMethod.DESTROYED,
            erasure_evidence="   ",
        )
    session.rollback()
    item = services.add_device(
        session,
        technician,
        batch.id,
        device.asset_tag,
        wipe_method=WipeMethod.PHYSICAL_DESTRUCTION,
        erasure_method=ErasureMethod.DESTROYED,
        erasure_evidence="screen and storage destroyed",
    )
    erasure = services.latest_erasure(session, device)
    assert erasure is not None and erasure.source is ErasureSource.TECHNICIAN_EVIDENCE
    assert erasure.recorded_by_id == technician.id and erasure.method is ErasureMethod.DESTROYED
    assert technician.name in item.erasure_evidence
    assert "screen and storage destroyed" in item.erasure_evidence


def test_destroyed_storage_cannot_be_forensically_wiped(
    session: Session, technician: User, batch: Disposal, make_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: the wipe method must be possible for what is left of the device."""
    device = make_device(status=DeviceStatus.IN_STOCK)
    with pytest.raises(ValidationFailed, match="choose physical destruction"):
        services.add_device(
            session,
            technician,
            batch.id,
            device.asset_tag,
            wipe_method=WipeMethod.FORENSIC_WIPE,
            erasure_method=ErasureMethod.DESTROYED,
            erasure_evidence="screen and storage destroyed",
        )
    session.rollback()
    assert _erasures(session, device) == 0  # nothing half-written


def test_a_device_out_on_loan_is_refused(
    session: Session,
    sbm: User,
    batch: Disposal,
    make_user: Callable[..., User],
    reset_device: Callable[..., Device],
    make_device: Callable[..., Device],
) -> None:
    """P-DISPOSE-1 (bad input): a device out on loan cannot be disposed of, evidence or not."""
    teacher = make_user(Role.TEACHER)
    loaned = reset_device(holder_id=teacher.id)
    with pytest.raises(ValidationFailed) as refused:
        services.add_device(
            session, sbm, batch.id, loaned.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    assert f"out on loan with {teacher.name}" in refused.value.message
    session.rollback()
    other = make_device(status=DeviceStatus.IN_STOCK, holder_id=teacher.id)
    with pytest.raises(ValidationFailed, match="out on loan"):
        services.add_device(
            session,
            sbm,
            batch.id,
            other.asset_tag,
            wipe_method=WipeMethod.PHYSICAL_DESTRUCTION,
            erasure_method=ErasureMethod.DESTROYED,
            erasure_evidence="destroyed",
        )
    session.rollback()
    assert _erasures(session, other) == 0
    assert session.scalar(select(func.count()).select_from(DisposalItem)) == 0


@pytest.mark.parametrize("status", [DeviceStatus.LOST, DeviceStatus.STOLEN])
def test_lost_or_stolen_devices_join_only_once_written_off(
    session: Session,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
    status: DeviceStatus,
) -> None:
    """P-DISPOSE-1: a lost or stolen device is refused until it is written off."""
    device = reset_device(status=status)
    with pytest.raises(ValidationFailed, match="written off"):
        services.add_device(
            session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    session.rollback()
    services.record_write_off(session, sbm, device, "Insurance claim ZX-1182")
    session.commit()
    item = services.add_device(
        session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    assert item.device_id == device.id


def test_a_write_off_needs_a_lost_device_and_a_reference(
    session: Session, sbm: User, reset_device: Callable[..., Device]
) -> None:
    in_stock = reset_device()
    with pytest.raises(ValidationFailed, match="Only a lost or stolen"):
        services.record_write_off(session, sbm, in_stock, "ref")
    lost = reset_device(status=DeviceStatus.LOST)
    with pytest.raises(ValidationFailed, match="reference"):
        services.record_write_off(session, sbm, lost, "  ")


def test_in_service_disposed_and_batched_devices_are_refused(
    session: Session,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
) -> None:
    """P-DISPOSE-1: each refusal says why in the SBM's words."""
    in_service = reset_device(status=DeviceStatus.IN_SERVICE)
    with pytest.raises(ValidationFailed, match="Take it out of service"):
        services.add_device(
            session, sbm, batch.id, in_service.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    session.rollback()
    disposed = reset_device(status=DeviceStatus.DISPOSED)
    with pytest.raises(ValidationFailed, match="already been disposed of"):
        services.add_device(
            session, sbm, batch.id, disposed.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    session.rollback()
    ready = reset_device()
    services.add_device(
        session, sbm, batch.id, ready.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    second = services.create_batch(session, sbm, {})
    with pytest.raises(Conflict, match=f"already in disposal batch {batch.reference}"):
        services.add_device(
            session, sbm, second.id, ready.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    session.rollback()
    with pytest.raises(NotFound):
        services.add_device(session, sbm, batch.id, "NO-SUCH", wipe_method=WipeMethod.FORENSIC_WIPE)


def test_only_the_sbm_completes_and_every_detail_is_needed(
    session: Session, sbm: User, technician: User, reset_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: agency, WEEE note, certificate and date are all on the record."""
    draft = services.create_batch(session, technician, {})
    with pytest.raises(Forbidden, match="school business manager"):
        services.complete_batch(session, technician, draft.id)
    with pytest.raises(ValidationFailed) as incomplete:
        services.complete_batch(session, sbm, draft.id)
    fields = {p["field"] for p in incomplete.value.details}
    assert fields == {
        "collection_date",
        "agency_name",
        "waste_transfer_note",
        "erasure_certificate",
        "devices",
    }
    session.rollback()
    services.update_batch(session, technician, draft.id, DETAILS)
    device = reset_device()
    services.add_device(
        session, technician, draft.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    services.update_batch(
        session, sbm, draft.id, {"collection_date": date.today() + timedelta(days=3)}
    )
    with pytest.raises(ValidationFailed) as early:
        services.complete_batch(session, sbm, draft.id)
    assert [p["field"] for p in early.value.details] == ["collection_date"]
    session.rollback()
    assert session.get(Device, device.id).status is DeviceStatus.IN_STOCK  # type: ignore[union-attr]


def test_completion_refuses_the_whole_batch_when_one_device_went_out(
    session: Session,
    sbm: User,
    batch: Disposal,
    make_user: Callable[..., User],
    reset_device: Callable[..., Device],
) -> None:
    """P-DISPOSE-1: a device lent out after it joined stops the batch; none is disposed."""
    first, second = reset_device(), reset_device()
    for device in (first, second):
        services.add_device(
            session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    teacher = make_user(Role.TEACHER)
    second.holder_id = teacher.id
    session.commit()
    with pytest.raises(ValidationFailed) as refused:
        services.complete_batch(session, sbm, batch.id)
    assert refused.value.details == [
        {
            "field": second.asset_tag,
            "message": f"{second.asset_tag} is out on loan with {teacher.name}. It must be "
            "returned before it can be disposed of.",
        }
    ]
    session.rollback()
    session.expire_all()
    assert session.get(Device, first.id).status is DeviceStatus.IN_STOCK  # type: ignore[union-attr]
    assert session.get(Disposal, batch.id).status is DisposalStatus.DRAFT  # type: ignore[union-attr]


def test_completion_is_all_or_nothing_when_a_change_fails_midway(
    session: Session,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """P-DISPOSE-1: if the second device's change fails, the first is not disposed either."""
    devices = [reset_device(), reset_device(), reset_device()]
    for device in devices:
        services.add_device(
            session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    real = register.change_status
    calls: list[str] = []

    def failing(*args: Any, **kwargs: Any) -> Device:
        calls.append(args[2].asset_tag)
        if len(calls) == 2:
            raise Conflict("simulated failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "change_status", failing)
    entries_before = session.scalar(select(func.count()).select_from(ActivityEntry))
    with pytest.raises(Conflict):
        services.complete_batch(session, sbm, batch.id)
    session.expire_all()
    assert calls == [devices[0].asset_tag, devices[1].asset_tag]
    assert all(session.get(Device, d.id).status is DeviceStatus.IN_STOCK for d in devices)  # type: ignore[union-attr]
    assert session.get(Disposal, batch.id).status is DisposalStatus.DRAFT  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(ActivityEntry)) == entries_before


def test_completion_disposes_every_device_and_the_record_is_read_only(
    session: Session, sbm: User, batch: Disposal, reset_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: completed → disposed, with history kept; a completed batch cannot change."""
    devices = [reset_device(), reset_device()]
    for device in devices:
        services.add_device(
            session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    done = services.complete_batch(session, sbm, batch.id)
    assert done.status is DisposalStatus.COMPLETED and done.completed_by_id == sbm.id
    for device in devices:
        session.refresh(device)
        assert device.status is DeviceStatus.DISPOSED and device.current_location_id is None
    another = reset_device()
    for attempt in (
        lambda: services.update_batch(session, sbm, batch.id, {"agency_name": "Other Ltd"}),
        lambda: services.add_device(
            session, sbm, batch.id, another.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        ),
        lambda: services.remove_device(session, sbm, batch.id, devices[0].asset_tag),
        lambda: services.update_device(
            session, sbm, batch.id, devices[0].asset_tag, certificate_line="9"
        ),
        lambda: services.discard_batch(session, sbm, batch.id),
        lambda: services.complete_batch(session, sbm, batch.id),
    ):
        with pytest.raises(Conflict, match="it is a record"):
            attempt()
        session.rollback()
    assert (
        services.get_batch(session, sbm.school_id, batch.id).agency_name == DETAILS["agency_name"]
    )


def test_disposed_devices_leave_the_live_register_but_keep_their_history(
    session: Session, sbm: User, batch: Disposal, reset_device: Callable[..., Device]
) -> None:
    """P-DISPOSE-1: a disposed device leaves the live register but keeps its history."""
    device = reset_device()
    kept = reset_device()
    services.add_device(
        session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    services.complete_batch(session, sbm, batch.id)
    live = register.search_devices(session, sbm.school_id)
    assert [d.asset_tag for d in live.items] == [kept.asset_tag]
    found = register.search_devices(session, sbm.school_id, q=device.serial, include_disposed=True)
    assert [d.asset_tag for d in found.items] == [device.asset_tag]
    kinds = [e.kind for e in register.timeline(session, device)]
    assert {"erasure", "disposal", "status"} <= set(kinds)
    status_event = next(e for e in register.timeline(session, device) if e.kind == "status")
    assert batch.reference in status_event.summary and "CERT-88231" in status_event.summary


def test_every_change_is_in_the_activity_trail(
    session: Session,
    sbm: User,
    technician: User,
    reset_device: Callable[..., Device],
    make_device: Callable[..., Device],
) -> None:
    """P-DISPOSE-1 / P-SEC-1: who prepared, changed and completed each disposal is recorded."""
    draft = services.create_batch(session, technician, {"agency_name": "Green IT"})
    services.update_batch(session, technician, draft.id, DETAILS)
    kept, taken_out = reset_device(), reset_device()
    destroyed = make_device(status=DeviceStatus.IN_REPAIR)
    services.add_device(
        session, technician, draft.id, kept.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    services.add_device(
        session, technician, draft.id, taken_out.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    services.record_erasure(session, technician, destroyed, ErasureMethod.DESTROYED, "shredded")
    services.add_device(
        session,
        technician,
        draft.id,
        destroyed.asset_tag,
        wipe_method=WipeMethod.PHYSICAL_DESTRUCTION,
    )
    services.update_device(session, technician, draft.id, kept.asset_tag, certificate_line="3")
    services.remove_device(session, technician, draft.id, taken_out.asset_tag)
    services.complete_batch(session, sbm, draft.id)
    scrap = services.create_batch(session, technician, {})
    services.discard_batch(session, technician, scrap.id)
    actions = session.scalars(
        select(ActivityEntry.action).where(ActivityEntry.school_id == sbm.school_id)
    ).all()
    for action in (
        "disposal.batch_created",
        "disposal.batch_edited",
        "disposal.device_added",
        "disposal.erasure_confirmed",
        "disposal.erasure_recorded",
        "disposal.device_edited",
        "disposal.device_removed",
        "disposal.completed",
        "disposal.batch_discarded",
        "device.status_changed",
    ):
        assert action in actions, action
    assert verify_chain(session).ok
    assert session.get(Device, taken_out.id).status is DeviceStatus.IN_STOCK  # type: ignore[union-attr]


def test_ready_to_dispose_lists_erased_devices_not_yet_batched(
    session: Session,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
    make_device: Callable[..., Device],
) -> None:
    waiting, batched = reset_device(), reset_device()
    make_device(status=DeviceStatus.IN_STOCK)  # no erasure: not a candidate
    services.add_device(
        session, sbm, batch.id, batched.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    assert [d.asset_tag for d in services.ready_to_dispose(session, sbm.school_id)] == [
        waiting.asset_tag
    ]


@pytest.mark.parametrize("since", ["enrolled", "counted photos", "lent"])
def test_an_erasure_the_device_has_since_outlived_is_not_evidence(
    session: Session,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
    make_user: Callable[..., User],
    since: str,
) -> None:
    """P-DISPOSE-1: a reset from before the device was enrolled again, counted photos or went
    out on a loan says nothing of what is on it now: the device is not offered as ready to
    dispose of, and adding it on that evidence is refused until a fresh erasure is recorded."""
    from server.enrolment.models import DeviceIdentity
    from server.loans.models import ItemState, Loan, LoanItem

    device, kept = reset_device(), reset_device()
    later = utcnow() + timedelta(minutes=5)
    if since == "enrolled":
        session.add(
            DeviceIdentity(
                school_id=device.school_id,
                device_id=device.id,
                mqtt_id="dev-used-again",
                public_key="x",
                kid="k",
                broker_secret_hash="x",
                platform="linux",
                enrolled_at=later,
            )
        )
    elif since == "counted photos":
        device.photo_count, device.photo_count_at = 4, later
    else:
        loan = Loan(
            school_id=device.school_id,
            teacher_id=make_user(Role.TEACHER).id,
            started_at=later,
            due_at=later + timedelta(hours=1),
            closed_at=later + timedelta(hours=1),
        )
        session.add(loan)
        session.flush()
        session.add(
            LoanItem(
                school_id=device.school_id,
                loan_id=loan.id,
                device_id=device.id,
                out_at=later,
                state=ItemState.RETURNED,
                returned_at=later + timedelta(hours=1),
            )
        )
    session.commit()
    ready = [d.asset_tag for d in services.ready_to_dispose(session, sbm.school_id)]
    assert ready == [kept.asset_tag]
    with pytest.raises(ValidationFailed, match="since its last erasure") as refused:
        services.add_device(
            session, sbm, batch.id, device.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    assert refused.value.details[0]["field"] == "erasure_evidence"
    session.rollback()
    item = services.add_device(  # a fresh erasure, vouched for now, is evidence again
        session,
        sbm,
        batch.id,
        device.asset_tag,
        wipe_method=WipeMethod.FORENSIC_WIPE,
        erasure_method=ErasureMethod.FACTORY_RESET,
        erasure_evidence="reset again at the desk",
    )
    assert item.device_id == device.id


def test_batches_and_devices_of_another_school_are_out_of_reach(
    session: Session,
    sbm: User,
    batch: Disposal,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-SEC-1: a school sees and changes only its own disposals."""
    their_sbm = make_user(Role.SBM, in_school=other_school)
    theirs = make_device(in_school=other_school, status=DeviceStatus.IN_STOCK)
    services.mark_reset_confirmed(session, theirs, utcnow())
    session.commit()
    with pytest.raises(NotFound):
        services.get_batch(session, their_sbm.school_id, batch.id)
    with pytest.raises(NotFound):
        services.complete_batch(session, their_sbm, batch.id)
    with pytest.raises(NotFound):
        services.add_device(
            session, sbm, batch.id, theirs.asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
        )
    assert services.list_batches(session, their_sbm.school_id) == []
    assert services.ready_to_dispose(session, sbm.school_id) == []
    assert (
        session.scalar(
            select(func.count()).select_from(DeviceEvent).where(DeviceEvent.device_id == theirs.id)
        )
        == 1
    )


# A summer evening: 23:30 UTC is 00:30 the next day on the school's clocks.
LATE = datetime(2026, 7, 1, 23, 30, tzinfo=UTC)


def test_an_erasure_is_described_on_the_school_clock_even_before_it_is_saved(
    school: School,
) -> None:
    """An erasure's line gives the school's time in the one format, never a bare UTC time."""
    unsaved = DeviceErasure(
        method=ErasureMethod.FACTORY_RESET,
        source=ErasureSource.DEVICE_ACKNOWLEDGEMENT,
        confirmed_at=LATE,
    )
    assert (
        services.describe_erasure(unsaved, school)
        == "Factory reset confirmed by the device at 00:30 on Thu 2 Jul 2026"
    )


def test_a_completed_batch_names_its_completion_day_on_the_school_calendar(
    session: Session, sbm: User, batch: Disposal, reset_device: Callable[..., Device]
) -> None:
    """A batch completed late on a summer evening was completed the next day in school."""
    services.add_device(
        session, sbm, batch.id, reset_device().asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    services.complete_batch(session, sbm, batch.id)
    batch.completed_at = LATE
    session.commit()
    with pytest.raises(Conflict) as refused:
        services.update_batch(session, sbm, batch.id, {"notes": "late"})
    assert f"{batch.reference} was completed on Thu 2 July 2026;" in refused.value.message
