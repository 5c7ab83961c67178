"""Commands through Google: the kiosk's scenarios, for Chromebooks Google manages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.chromebooks import services
from server.chromebooks.models import GoogleDelivery, GoogleLink, Phase
from server.chromebooks.services.google import GoogleApi
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.crypto import SecretBox
from server.devices.models import Device, DeviceEvent, Platform
from server.errors import ValidationFailed
from server.leavers import services as leavers
from server.loans import services as loans
from server.losses import services as losses
from server.losses.models import LossKind, Outcome, RiskLevel
from server.schools.models import Location, School
from server.schools.services.clock import when
from tests.server.chromebooks.conftest import Chromebook, Clock
from tests.server.chromebooks.fake_google import FakeGoogle


def _command(session: Session, command_id: int) -> Command:
    command = session.get(Command, command_id)
    assert command is not None
    session.refresh(command)
    return command


def test_a_linked_chromebook_is_reachable_and_an_unlinked_one_is_not(
    session: Session,
    synced: Chromebook,
    make_device: Callable[..., Device],
    technician: User,
) -> None:
    device, _resource = synced()
    assert commands.can_reach(session, device)
    stranger = make_device()
    with pytest.raises(ValidationFailed, match="Not enrolled in Trolley"):
        commands.issue(session, technician, [stranger], "ping")


def test_a_return_wipes_every_user_through_google_and_the_loan_shows_it(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    chromebook: Chromebook,
    trolley: Location,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    deliver: Callable[..., None],
) -> None:
    """P-PHOTO-1: the return queues the wipe; Google's WIPE_USERS runs; the loan shows it done."""
    teacher = make_user(Role.TEACHER)
    device = make_device(
        platform=Platform.CHROMEOS, make="Lenovo", model="300e", home=trolley, asset_tag="CB-01"
    )
    resource = google.add_device(device.serial)
    services.sync_devices(session, box, api, link.school_id)
    out = loans.scan(
        session,
        teacher,
        mode="out",
        trolley_id=trolley.id,
        code="CB-01",
        base_url="http://127.0.0.1",
        key=uuid.uuid4().hex,
    )
    back = loans.scan(
        session,
        teacher,
        mode="in",
        trolley_id=trolley.id,
        code="CB-01",
        base_url="http://127.0.0.1",
        key=uuid.uuid4().hex,
    )
    assert back.wipe == "wipe pending"
    assert out.loan_id is not None
    deliver()
    (issued,) = google.issued("WIPE_USERS")
    assert issued.device_id == resource["deviceId"]
    loan = loans.get_loan(session, device.school_id, out.loan_id)
    command = loan.items[0].wipe_command
    assert command is not None and command.status is CommandStatus.SENT
    deliver()
    assert _command(session, command.id).status is CommandStatus.RECEIVED
    deliver()
    command = _command(session, command.id)
    assert command.status is CommandStatus.DONE
    assert command.detail == "Google: the Chromebook carried it out (SUCCESS)"
    assert command.result["google"]["commandId"] == issued.command_id
    assert loans.wipe_state(loan.items[0]) == ("done", "wiped (every user's data removed)")
    assert google.devices[resource["deviceId"]]["recentUsers"] == []
    assert device.photo_count == 0
    # Polled again and again, Google is never asked twice.
    deliver()
    assert len(google.issued("WIPE_USERS")) == 1


def test_a_loss_disables_the_chromebook_with_the_return_message_and_found_enables_it(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    synced: Chromebook,
    make_user: Callable[..., User],
    clock: Clock,
    deliver: Callable[..., None],
) -> None:
    """P-LOSS-3: lost mode disables the Chromebook in Google; found re-enables it."""
    teacher, head = make_user(Role.TEACHER), make_user(Role.HEADTEACHER)
    device, resource = synced()
    unit = resource["orgUnitId"] = next(iter(google.org_units))
    services.sync_devices(session, box, api, device.school_id)
    loss = losses.report_loss(
        session,
        teacher,
        asset_tag=device.asset_tag,
        kind=LossKind.LOST,
        last_seen_at=clock.now - timedelta(hours=1),
        last_seen_where="Hall",
        circumstances="Not back after PE.",
        now=clock.now,
    )
    deliver()
    assert google.devices[resource["deviceId"]]["status"] == "DISABLED"
    message = google.policies[unit]["chrome.devices.DisabledDeviceReturnInstructions"]
    assert message["deviceDisabledMessage"] == head.school.return_message
    # Google has disabled it; the Chromebook itself locks when it next syncs, not before.
    state = losses.lost_mode(session, loss)
    assert state.state == "in_google" and "next syncs with Google" in state.label
    assert "disabled in Google" in state.command.detail
    steps = [step.what for step in losses.incident_record(session, losses.case(session, loss))]
    assert "Lost mode on done in Google: the Chromebook follows when it next syncs" in steps
    clock.tick(120)
    resource["lastSync"] = clock.now.isoformat().replace("+00:00", "Z")
    services.sync_devices(session, box, api, device.school_id)
    assert losses.lost_mode(session, loss).state == "active"
    losses.assess(
        session,
        head,
        loss,
        personal_data="None.",
        risk=RiskLevel.UNLIKELY,
        risk_notes="Disabled.",
        now=clock.now,
    )
    losses.decide(
        session, head, loss, report_to_ico=False, justification="Disabled at once.", now=clock.now
    )
    losses.close(session, head, loss, Outcome.FOUND, note="In the hall.", now=clock.now)
    deliver()
    assert google.devices[resource["deviceId"]]["status"] == "ACTIVE"
    assert losses.lost_mode(session, loss).state == "off"


def test_a_repeated_disable_after_a_lost_answer_counts_as_done(
    session: Session,
    google: FakeGoogle,
    synced: Chromebook,
    technician: User,
    deliver: Callable[..., None],
) -> None:
    device, resource = synced()
    google.devices[resource["deviceId"]]["status"] = "DISABLED"  # the first try got through
    (command,) = commands.issue(session, technician, [device], "lost_mode", {"enabled": True})
    deliver()
    assert _command(session, command.id).status is CommandStatus.DONE


def test_a_leavers_reset_is_a_powerwash_confirmed_by_google(
    session: Session,
    box: SecretBox,
    google: FakeGoogle,
    synced: Chromebook,
    technician: User,
    make_user: Callable[..., User],
    clock: Clock,
    deliver: Callable[..., None],
    approve_as_head: Callable[[Command], None],
) -> None:
    """P-LEAVE-1: the leaver's reset goes out as REMOTE_POWERWASH; Google's answer completes it."""
    sbm = make_user(Role.SBM)
    leaver, manager = make_user(Role.TEACHER), make_user(Role.COMPUTING_LEAD)
    device, resource = synced()
    device.holder_id = leaver.id
    session.commit()
    case = leavers.open_case(
        session,
        sbm,
        leaver_id=leaver.id,
        last_day=(clock.now + timedelta(days=7)).date(),
        line_manager_id=manager.id,
        technician_id=technician.id,
        base_url="http://127.0.0.1",
    ).case
    (item,) = case.items
    leavers.hand_over_credentials(session, box, leaver, case.id, item.id, passcode="462819")
    command = leavers.send_reset(session, technician, case.id, item.id, now=clock.now)
    deliver()
    assert google.issued() == []  # a second person must approve it first
    approve_as_head(command)
    deliver(times=3)
    (issued,) = google.issued("REMOTE_POWERWASH")
    assert issued.device_id == resource["deviceId"]
    assert _command(session, command.id).status is CommandStatus.DONE
    timeline = session.scalars(
        select(DeviceEvent.summary).where(DeviceEvent.device_id == device.id)
    ).all()
    assert any("Factory reset confirmed" in line for line in timeline)
    assert leavers.note_acknowledged_resets(session, clock.now) == 1
    session.refresh(item)
    assert item.reset_at is not None


def test_a_failure_on_the_chromebook_is_recorded_in_googles_words(
    session: Session,
    google: FakeGoogle,
    deliver: Callable[..., None],
    photo_wipe: tuple[Command, dict[str, Any]],
) -> None:
    command, resource = photo_wipe
    google.failing_commands[resource["deviceId"]] = "Device is in kiosk mode."
    deliver(times=3)
    command = _command(session, command.id)
    assert command.status is CommandStatus.FAILED
    assert command.detail == (
        "Google: the Chromebook carried it out (FAILURE): Device is in kiosk mode."
    )


def test_a_google_outage_keeps_commands_waiting_with_the_reason_and_loses_nothing(
    session: Session,
    google: FakeGoogle,
    clock: Clock,
    deliver: Callable[..., None],
    photo_wipe: tuple[Command, dict[str, Any]],
) -> None:
    """Google down: the wipe stays queued and says why; when Google is back it goes, once."""
    command, _resource = photo_wipe
    google.down()
    deliver(seconds=1)
    command = _command(session, command.id)
    assert command.status is CommandStatus.QUEUED
    assert command.detail.startswith("Waiting for Google: Google could not be reached")
    delivery = session.scalar(select(GoogleDelivery).where(GoogleDelivery.command_id == command.id))
    assert delivery is not None and delivery.phase is Phase.WAITING
    # The next try on the school's clock, in the words every page uses, not a bare UTC hour.
    retry = when(delivery.next_at, session.get_one(School, command.school_id))
    assert command.detail.endswith(f"Trying again at {retry}."), command.detail
    first_wait = delivery.next_at - clock.now
    deliver(seconds=1)  # not due yet: nothing is tried
    assert delivery.attempts == 1
    clock.tick(first_wait.total_seconds())
    deliver(seconds=1)
    assert delivery.attempts == 2
    assert delivery.next_at - clock.now > first_wait  # backing off
    google.up()
    clock.tick(3600)
    deliver(times=3)
    assert _command(session, command.id).status is CommandStatus.DONE
    assert len(google.issued("WIPE_USERS")) == 1


def test_quota_errors_are_retried_after_googles_delay(
    session: Session,
    google: FakeGoogle,
    clock: Clock,
    deliver: Callable[..., None],
    photo_wipe: tuple[Command, dict[str, Any]],
) -> None:
    command, _resource = photo_wipe
    google.fail(429, match="issueCommand")
    deliver(seconds=0)
    command = _command(session, command.id)
    assert command.status is CommandStatus.QUEUED
    assert "slow down (quota)" in command.detail
    clock.tick(60)
    deliver(times=3)
    assert _command(session, command.id).status is CommandStatus.DONE
    assert len(google.issued("WIPE_USERS")) == 1


def test_a_reset_whose_answer_was_lost_is_never_sent_again(
    session: Session,
    google: FakeGoogle,
    synced: Chromebook,
    technician: User,
    clock: Clock,
    deliver: Callable[..., None],
    approve_as_head: Callable[[Command], None],
) -> None:
    """A worker stopped mid-call: Google may hold the powerwash; Trolley says so, never repeats."""
    device, _resource = synced()
    (command,) = commands.issue(session, technician, [device], "factory_reset", {})
    approve_as_head(command)
    session.add(
        GoogleDelivery(
            command_id=command.id,
            school_id=command.school_id,
            phase=Phase.IN_FLIGHT,
            attempts=1,
            next_at=clock.now,
            last_error="",
        )
    )
    session.commit()
    deliver()
    command = _command(session, command.id)
    assert command.status is CommandStatus.FAILED
    assert "Check the Chromebook in the Google Admin console" in command.detail
    assert google.issued() == []


def test_inventory_is_a_fresh_read_from_google(
    session: Session,
    google: FakeGoogle,
    synced: Chromebook,
    technician: User,
    deliver: Callable[..., None],
) -> None:
    """P-REG-4: report inventory reads the device's facts from Google again."""
    device, resource = synced()
    google.devices[resource["deviceId"]]["osVersion"] = "127.0.6533.100"
    (command,) = commands.issue(session, technician, [device], "report_inventory", {})
    deliver()
    command = _command(session, command.id)
    assert command.status is CommandStatus.DONE
    assert command.result["os_version"] == "127.0.6533.100"
    assert device.os_version == "127.0.6533.100"
