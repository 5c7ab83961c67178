"""iPads through Apple's MDM protocol, end to end against a simulated iPad (both databases)."""

from __future__ import annotations

import plistlib
import re
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
from server.db import utcnow
from server.devices.models import Device, DeviceEvent
from server.disposals import services as disposals
from server.disposals.models import ErasureMethod
from server.ipads import services
from server.ipads.models import IpadEnrolment, Stage
from server.ipads.simulator import SimulatedIpad
from server.losses import services as losses
from server.losses.models import LossKind
from tests.server.conftest import log_in_as, settle
from tests.server.ipads.conftest import Enrol


def _command(session: Session, command_id: int) -> Command:
    session.expire_all()
    command = session.get(Command, command_id)
    assert command is not None
    return command


def _erase(
    session: Session,
    ipad: SimulatedIpad,
    device: Device,
    technician: User,
    make_user: Callable[..., User],
) -> Command:
    """Ask for a factory reset (approved by the head where the budget asks for it) and let the
    iPad take it."""
    ipad.run()
    (reset,) = commands.issue(session, technician, [device], "factory_reset")
    if reset.status is CommandStatus.PENDING_APPROVAL:
        head = settle(make_user(Role.HEADTEACHER))
        session.commit()
        commands.approve(session, head, command_id=reset.id, stepped_up_at=utcnow())
    ipad.run()
    return reset


def test_an_ipad_enrols_and_reports_what_it_is(
    enrol_ipad: Enrol, session: Session, client: FlaskClient, technician: User
) -> None:
    """P-REG-4, P-REG-7, P-REG-8: an enrolled iPad reports its apps, passcode and iPadOS, timed."""
    ipad, device = enrol_ipad(supervised=True)
    assert ipad.run() == 3  # the inventory Trolley asks every new iPad for
    assert ipad.handled == ["DeviceInformation", "SecurityInfo", "InstalledApplicationList"]
    session.expire_all()
    (inventory,) = session.scalars(select(Command).where(Command.device_id == device.id)).all()
    assert inventory.status is CommandStatus.DONE
    facts = services.ipad_facts(session, device)
    assert facts is not None and facts.supervised is True and facts.passcode is True
    assert ("iPadOS", "18.1") in facts.rows and facts.reported_at is not None
    assert facts.enrolment.apps_count == 2 and device.os_version == "iPadOS 18.1"
    log_in_as(client, technician)
    page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert "Supervised" in page and "iPadOS" in page and "18.1" in page


def test_lock_and_lost_mode_on_a_supervised_ipad(
    enrol_ipad: Enrol, session: Session, technician: User
) -> None:
    """P-LOSS-3: lost mode on a supervised iPad shows the school's message; found turns it off."""
    ipad, device = enrol_ipad(supervised=True)
    ipad.run()
    (lost,) = commands.issue(
        session, technician, [device], "lost_mode", {"enabled": True, "phone": "01632 960000"}
    )
    ipad.run()
    assert ipad.lost_mode and ipad.handled[-2:] == ["EnableLostMode", "DeviceLocation"]
    done = _command(session, lost.id)
    assert done.status is CommandStatus.DONE and done.result["lost_mode"] is True
    assert done.result["location"]["Latitude"] == 51.5
    (found,) = commands.issue(session, technician, [device], "lost_mode", {"enabled": False})
    ipad.run()
    assert not ipad.lost_mode and _command(session, found.id).status is CommandStatus.DONE


def test_an_unsupervised_ipad_is_locked_and_told_lost_mode_is_not_available(
    enrol_ipad: Enrol, session: Session, technician: User
) -> None:
    """P-LOSS-3: without supervision the iPad is locked with the message, and the record says so."""
    ipad, device = enrol_ipad(supervised=False)
    ipad.run()
    (lost,) = commands.issue(session, technician, [device], "lost_mode", {"enabled": True})
    ipad.run()
    assert ipad.locked and not ipad.lost_mode and "EnableLostMode" not in ipad.handled
    done = _command(session, lost.id)
    assert done.status is CommandStatus.DONE
    assert done.result == {"lost_mode": False, "locked": True}
    assert "Lost mode is not available" in done.detail


def test_an_unsupervised_ipad_locked_for_a_loss_is_not_said_to_be_in_lost_mode(
    enrol_ipad: Enrol, session: Session, make_user: Callable[..., User]
) -> None:
    """P-LOSS-3, P-LOSS-2: an iPad that is not supervised can only be locked with the message
    (it opens with its passcode) and answers `lost_mode: false`: the case, the breach facts and
    the timeline say that, not "Active: the device is locked and shows the return message"."""
    ipad, device = enrol_ipad(supervised=False)
    ipad.run()
    teacher = make_user(Role.TEACHER)
    make_user(Role.HEADTEACHER)
    loss = losses.report_loss(
        session,
        teacher,
        asset_tag=device.asset_tag,
        kind=LossKind.LOST,
        last_seen_at=utcnow() - timedelta(hours=1),
        last_seen_where="Year 3 classroom",
        circumstances="Not in the trolley after the lesson.",
    )
    ipad.run()
    assert ipad.locked and not ipad.lost_mode
    session.expire_all()
    shown = losses.lost_mode(session, loss)
    assert shown.state == "locked_only" and "Not lost mode" in shown.label
    assert "opens with its passcode" in losses.known_facts(session, loss).lost_mode
    timeline = session.scalars(
        select(DeviceEvent.summary).where(
            DeviceEvent.device_id == device.id, DeviceEvent.kind == "command"
        )
    ).all()
    assert "Lost mode is on" not in timeline
    assert "Locked with the return message; lost mode is not available on it" in timeline


def test_an_erase_is_confirmed_only_by_the_checkout(
    enrol_ipad: Enrol, session: Session, make_user: Callable[..., User], technician: User
) -> None:
    """P-LEAVE-1: the acknowledgement alone does not finish a reset; the iPad's CheckOut does."""
    ipad, device = enrol_ipad()
    reset = _erase(session, ipad, device, technician, make_user)
    assert ipad.erased
    assert _command(session, reset.id).status is CommandStatus.RECEIVED
    assert ipad.check_in("CheckOut").status_code == 200
    assert _command(session, reset.id).status is CommandStatus.DONE
    enrolment = session.scalar(select(IpadEnrolment).where(IpadEnrolment.device_id == device.id))
    assert enrolment is not None and enrolment.stage is Stage.CHECKED_OUT


def test_an_ipad_that_enrols_again_after_an_erase_stays_managed(
    enrol_ipad: Enrol, session: Session, make_user: Callable[..., User], technician: User
) -> None:
    """P-LEAVE-1: enrolling again confirms the erase the old enrolment acknowledged; the new
    enrolment is the one Trolley manages the iPad through, not ended with the old one."""
    ipad, device = enrol_ipad()
    reset = _erase(session, ipad, device, technician, make_user)
    assert ipad.erased and _command(session, reset.id).status is CommandStatus.RECEIVED
    enrol_ipad(device)
    assert _command(session, reset.id).status is CommandStatus.DONE
    stages = session.scalars(
        select(IpadEnrolment.stage)
        .where(IpadEnrolment.device_id == device.id)
        .order_by(IpadEnrolment.id)
    ).all()
    assert stages == [Stage.REPLACED, Stage.ENROLLED]
    assert commands.can_reach(session, device)


def _panel(client: FlaskClient, device: Device) -> str:
    """The device page's "What the iPad reported" panel as text: each fact `label: value`."""
    page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    found = re.search(r'<section class="panel" aria-labelledby="ipad-.*?</section>', page, re.S)
    assert found is not None, page
    text = re.sub(r"</dt>", ": ", found.group(0))
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


@pytest.mark.parametrize("erased_by", ["device", "technician"])
def test_what_an_ipad_reported_before_an_erase_is_not_known_on_its_page(
    enrol_ipad: Enrol,
    session: Session,
    client: FlaskClient,
    make_user: Callable[..., User],
    technician: User,
    erased_by: str,
) -> None:
    """P-REG-7, P-LEAVE-1: an erase (one the iPad confirmed, or a technician's record of one
    done by hand) takes the passcode, the apps, the name, iPadOS and supervision with it: the
    iPad's panel says "not known" for each rather than "Passcode: set" and "Apps: 2", keeps the
    hardware, and says when the iPad has not checked in since; once it reports again, it shows."""
    ipad, device = enrol_ipad(supervised=True)
    ipad.run()
    log_in_as(client, technician)
    before = _panel(client, device)
    assert "Passcode: set" in before and "iPadOS: 18.1" in before and "Apps: 2" in before
    if erased_by == "device":
        _erase(session, ipad, device, technician, make_user)
        assert ipad.check_in("CheckOut").status_code == 200
    else:
        disposals.record_erasure(
            session, technician, device, ErasureMethod.FACTORY_RESET, "erased with Configurator"
        )
    session.expire_all()
    shown = _panel(client, device)
    gone = "Not known: not reported since its storage was erased"
    for fact in ("Passcode", "Supervised", "Shared iPad", "Apps", "Name and iPadOS"):
        assert f"{fact}: {gone}" in shown, (fact, shown)
    assert "18.1" not in shown and "Passcode: set" not in shown and "Apps: 2" not in shown
    serial = re.search(r"Serial number: \S+", before)
    assert serial is not None and serial.group(0) in shown  # the hardware stays as it was
    if erased_by == "device":
        assert "no longer managed" in shown
    else:  # it cannot say it lost its profile: the page says it has not been heard from since
        assert "It has not checked in since its storage was erased" in shown

    if erased_by == "technician":  # it was not erased after all: it checks in and reports
        commands.issue(session, technician, [device], "report_inventory")
        assert ipad.run() >= 1
        session.expire_all()
        again = _panel(client, device)
        assert "Passcode: set" in again and "iPadOS: 18.1" in again, again
        assert "not checked in since" not in again and gone not in again


def test_an_ipad_that_says_not_now_is_asked_again_at_its_next_check_in(
    enrol_ipad: Enrol, session: Session, technician: User
) -> None:
    ipad, device = enrol_ipad()
    ipad.run()
    (lock,) = commands.issue(session, technician, [device], "lock", {"message": "Office please"})
    ipad.not_now = 3
    for tries in range(1, 4):
        assert ipad.run() == 1
        queued = _command(session, lock.id)
        assert queued.status is CommandStatus.QUEUED and f"{tries} time(s)" in queued.detail
    ipad.run()
    assert ipad.locked and _command(session, lock.id).status is CommandStatus.DONE


def test_an_error_fails_the_command_with_the_ipads_words(
    enrol_ipad: Enrol, session: Session, technician: User
) -> None:
    ipad, device = enrol_ipad()
    ipad.run()
    ipad.fail = {"DeviceLock"}
    (lock,) = commands.issue(session, technician, [device], "lock")
    ipad.run()
    failed = _command(session, lock.id)
    assert failed.status is CommandStatus.FAILED and "not allowed on this iPad" in failed.detail


def test_photos_on_a_shared_ipad_go_with_its_users(
    enrol_ipad: Enrol, session: Session, technician: User
) -> None:
    """P-PHOTO-1: a Shared iPad's users are signed out and deleted, their photos with them."""
    ipad, device = enrol_ipad(shared=True)
    ipad.run()
    (wipe,) = commands.issue(session, technician, [device], "wipe_photos", on_return=True)
    ipad.run()
    assert ipad.users == 0 and ipad.handled[-2:] == ["LogOutUser", "DeleteUser"]
    done = _command(session, wipe.id)
    assert done.status is CommandStatus.DONE and done.result["users_removed"] is True


def test_photos_on_an_ordinary_ipad_must_be_wiped_by_hand(
    enrol_ipad: Enrol, session: Session, technician: User
) -> None:
    """P-PHOTO-1: no MDM command deletes an ordinary iPad's photos: never claimed, done by hand."""
    ipad, device = enrol_ipad(shared=False)
    ipad.run()
    (wipe,) = commands.issue(session, technician, [device], "wipe_photos", on_return=True)
    assert ipad.run() == 0
    failed = _command(session, wipe.id)
    assert failed.status is CommandStatus.FAILED and "by hand" in failed.detail
    assert ipad.users == 2


def test_a_message_with_a_bad_or_missing_signature_is_refused_and_trailed(
    enrol_ipad: Enrol, session: Session, client: FlaskClient
) -> None:
    """Only the identity the school CA issued for this iPad can speak for it; refusals trailed."""
    ipad, _device = enrol_ipad()
    body = plistlib.dumps({"UDID": ipad.udid, "Status": "Idle"})
    forged = ipad.sign(plistlib.dumps({"UDID": "someone else", "Status": "Idle"}))
    assert (
        client.put(ipad.server_path, data=body, headers={"Mdm-Signature": forged}).status_code
        == 401
    )
    assert client.put(ipad.server_path, data=body).status_code == 401
    stranger = SimulatedIpad(client)
    stranger.__dict__.update(
        {k: getattr(ipad, k) for k in ("topic", "server_path", "checkin_path")}
    )
    from cryptography.hazmat.primitives.asymmetric import rsa

    from provisioning.ca import create_school_ca, issue_device_certificate

    other_ca = create_school_ca("Elsewhere", now=utcnow())
    stranger.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger.cert = issue_device_certificate(
        other_ca, "ipad-x", stranger.key.public_key(), now=utcnow()
    )
    assert stranger.check_in("Authenticate").status_code == 401
    session.expire_all()
    refused = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "ipad.message_refused")
    ).all()
    assert len(refused) == 3


def test_the_freeze_stops_destructive_commands_to_ipads_too(
    enrol_ipad: Enrol, session: Session, make_user: Callable[..., User], technician: User
) -> None:
    """The freeze sits above every channel: a frozen school's iPads get no lock."""
    ipad, device = enrol_ipad()
    ipad.run()
    commands.freeze(session, make_user(Role.HEADTEACHER), reason="Suspicious activity")
    with pytest.raises(Exception, match=r"(?i)frozen"):
        commands.issue(session, technician, [device], "lock")
    assert ipad.run() == 0 and not ipad.locked


def test_a_profile_is_installed_and_read_back_setting_by_setting(
    enrol_ipad: Enrol, session: Session, make_user: Callable[..., User]
) -> None:
    """P-PROFILE-1: per setting, the record says what the iPad's ProfileList shows, no more."""
    from server.profiles import services as profiles
    from server.profiles.models import AppliedState, DeviceAppliedSetting, DeviceProfileStatus

    ipad, device = enrol_ipad(supervised=False)
    ipad.run()
    lead = make_user(Role.COMPUTING_LEAD)
    profile = profiles.create_profile(session, lead, name="Year 2", start_from="ks1-ipad")
    assignment = profiles.assign(session, lead, profile, "school", None)
    session.commit()
    ipad.run()
    assert ipad.handled[-2:] == ["InstallProfile", "ProfileList"] and len(ipad.profiles) == 1
    session.expire_all()
    states = {
        row.setting: row.state
        for row in session.scalars(
            select(DeviceAppliedSetting).where(DeviceAppliedSetting.device_id == device.id)
        )
    }
    assert states.get("device.screenshots") is AppliedState.ENFORCED
    # Not supervised: what only a supervised iPad applies is never claimed.
    assert states.get("device.airdrop") is AppliedState.NOT_SUPPORTED
    status = session.scalar(
        select(DeviceProfileStatus).where(DeviceProfileStatus.device_id == device.id)
    )
    desired = profiles.desired_state(session, device)
    assert status is not None and desired is not None
    assert status.applied_sha256 == status.settings_sha256 == desired.sha256
    assert ipad.run() == 0  # installed once, not again at every check-in
    profiles.unassign(session, lead, assignment.id)
    session.commit()
    assert ipad.run() == 1 and ipad.handled[-1] == "RemoveProfile" and not ipad.profiles


def test_an_ipad_whose_management_profile_is_removed_no_longer_counts_its_profile_enforced(
    enrol_ipad: Enrol, session: Session, make_user: Callable[..., User]
) -> None:
    """P-PROFILE-1, P-REG-7: removing the management profile (by hand, in Settings) takes every
    profile Trolley installed with it, and the iPad says so as it checks out: the record stops
    saying its settings are enforced, from that moment, and says why."""
    from server.profiles import services as profiles
    from server.profiles.models import AppliedState, DeviceAppliedSetting, DeviceProfileStatus

    ipad, device = enrol_ipad(supervised=True)
    ipad.run()
    lead = make_user(Role.COMPUTING_LEAD)
    profile = profiles.create_profile(session, lead, name="Year 2", start_from="ks1-ipad")
    profiles.assign(session, lead, profile, "school", None)
    session.commit()
    ipad.run()
    session.expire_all()
    status = session.scalar(
        select(DeviceProfileStatus).where(DeviceProfileStatus.device_id == device.id)
    )
    assert status is not None and status.applied_sha256 is not None
    assert ipad.check_in("CheckOut").status_code == 200
    session.expire_all()
    status = session.scalar(
        select(DeviceProfileStatus).where(DeviceProfileStatus.device_id == device.id)
    )
    assert status is not None and status.applied_sha256 is None
    rows = session.scalars(
        select(DeviceAppliedSetting).where(DeviceAppliedSetting.device_id == device.id)
    ).all()
    assert rows and {row.state for row in rows} == {AppliedState.FAILED}
    assert all("management profile" in row.detail for row in rows)
    assert profiles.applied_view(session, device).applied is False


def test_an_ipad_enrolled_with_apple_mdm_leaves_the_kiosk_channel(
    enrol_ipad: Enrol,
    session: Session,
    enrolled: Callable[[Device], Device],
    make_device: Callable[..., Device],
) -> None:
    """One channel per device: enrolling with Apple MDM ends a kiosk client's login."""
    from server.enrolment.services import active_identity

    device = enrolled(make_device())  # a kiosk client first …
    assert active_identity(session, device) is not None
    ipad, _same = enrol_ipad(device=device)  # … then Apple MDM
    assert ipad.run() == 3
    session.expire_all()
    assert active_identity(session, device) is None
    # Both enrolments are in the activity trail, as the same kind of entry.
    entries = session.scalars(
        select(ActivityEntry)
        .where(ActivityEntry.action == "device.enrolled")
        .order_by(ActivityEntry.id)
    ).all()
    assert [(e.target_id, e.actor_label) for e in entries] == [
        (device.asset_tag, f"device {device.asset_tag}")
    ] * 2
    kiosk, apple = (entry.details for entry in entries)
    assert kiosk["mqtt_id"].startswith("dev-") and kiosk["replaced"] == 0
    assert apple == {"platform": "ipados", "replaced": 0}
