"""The whole system with real parts: HTTP API, database, worker channel, broker, kiosks."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from kiosk_client import load_config
from kiosk_client.config import is_enrolled
from mqtt.client import make_client
from mqtt.envelope import canonical_json, key_id
from mqtt.messages import build_command
from mqtt.topics import QOS, cmd_topic
from server.activity.models import ActivityEntry
from server.commands.models import Command, CommandStatus
from server.devices.models import Device
from server.devices.services import protection_of
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import server_key
from server.escrow import services as escrow
from server.escrow.models import SecretKind
from server.profiles import services as profiles
from tests.e2e.conftest import Stack, wait_until
from tests.helpers import MOSQUITTO_ADDR


def _online(stack: Stack, count: int) -> None:
    def check() -> bool:
        with stack.database.begin() as session:
            rows = session.scalars(
                select(DeviceIdentity).where(
                    DeviceIdentity.school_id == stack.school_id,
                    DeviceIdentity.revoked_at.is_(None),
                    DeviceIdentity.online.is_(True),
                )
            ).all()
            return len(rows) >= count

    wait_until(check, 30, f"{count} device(s) online")


def test_wipe_reaches_every_device(stack: Stack) -> None:
    """P-PHOTO-1: a wipe asked for over the API empties every device's photo folder."""
    stack.enrol(stack.add_devices(3), photos=5)
    _online(stack, 3)
    assert all(k.photos() == 5 for k in stack.kiosks)
    answer = stack.api(
        stack.technician,
        "POST",
        "/commands/fleet",
        json={"type": "wipe_photos", "location_id": stack.trolley_id, "reason": "End of term"},
    )
    cmd_ids = [item["cmd_id"] for item in answer["items"]]
    assert len(cmd_ids) == 3
    assert set(stack.wait_finished(cmd_ids).values()) == {CommandStatus.DONE}
    for kiosk in stack.kiosks:
        assert kiosk.photos() == 0, kiosk.asset_tag
        assert kiosk.ran("wipe_photos") == 1, kiosk.asset_tag
    with stack.database.begin() as session:
        devices = session.scalars(select(Device).where(Device.school_id == stack.school_id)).all()
        assert [d.photo_count for d in devices] == [0, 0, 0]
        results = session.scalars(select(Command.result).where(Command.cmd_id.in_(cmd_ids))).all()
        assert all(r == {"deleted": 5, "remaining": 0} for r in results), results


def test_lost_mode_shows_the_message_and_locks(stack: Stack) -> None:
    """P-LOSS-3: lost mode shows the school's return message on the device and locks it."""
    [kiosk] = stack.enrol(stack.add_devices(1))
    _online(stack, 1)
    message = "This iPad belongs to Oakfield Primary. Please ring 01632 960000."
    answer = stack.api(
        stack.technician,
        "POST",
        f"/devices/{kiosk.asset_tag}/commands",
        json={"type": "lost_mode", "args": {"enabled": True, "message": message}},
    )
    assert stack.wait_finished([answer["cmd_id"]]) == {answer["cmd_id"]: CommandStatus.DONE}
    state = kiosk.state()
    assert state["lost_mode"] is True
    assert state["lost_message"] == message
    assert state["locked"] is True


def test_factory_reset_after_approval_then_enrol_again(stack: Stack) -> None:
    """P-LEAVE-1: an approved reset is confirmed over HTTP, erases the device, revokes its identity
    and destroys its escrowed PIN; enrolling again gives the device a new identity that works.
    P-PROFILE-1: once erased it is not counted as enforcing its profile; enrolled again, it is
    sent its profile on its new identity and applies it."""
    [device] = stack.add_devices(1)
    [kiosk] = stack.enrol([device], photos=3)
    _online(stack, 1)
    with stack.database.begin() as session:
        lead = session.merge(stack.lead)
        profile = profiles.create_profile(session, lead, name="Exam kiosk", start_from="exam-kiosk")
        profiles.assign(session, lead, profile, "location", stack.trolley_id)
    wait_until(lambda: _compliance(stack, device) == "compliant", 30, "the profile applied")
    old_id = load_config(kiosk.data_dir).device_id
    with stack.database.begin() as session:
        escrow.deposit(
            session,
            stack.box,
            session.merge(stack.technician),
            session.get(Device, device.id),
            SecretKind.PIN,
            "4821",
        )
    asked = stack.api(
        stack.technician,
        "POST",
        f"/devices/{kiosk.asset_tag}/commands",
        json={"type": "factory_reset"},
    )
    assert asked["status"] == "pending_approval"
    time.sleep(1)  # nothing goes before the second person says yes
    assert kiosk.ran("factory_reset") == 0
    stack.api(
        stack.head,
        "POST",
        f"/commands/{asked['id']}/approve",
        json=stack.approval_code(stack.head),
    )
    assert stack.wait_finished([asked["cmd_id"]]) == {asked["cmd_id"]: CommandStatus.DONE}, (
        stack.details([asked["cmd_id"]])
    )
    wait_until(lambda: not is_enrolled(kiosk.data_dir), 15, "the kiosk to forget its enrolment")
    assert kiosk.photos() == 0
    assert kiosk.ran("factory_reset") == 1
    with stack.database.begin() as session:
        identity = session.scalar(select(DeviceIdentity).where(DeviceIdentity.mqtt_id == old_id))
        assert identity is not None and identity.revoked_at is not None
        assert escrow.live_for_device(session, session.get(Device, device.id)) == []
        confirmations = session.scalars(
            select(ActivityEntry.details).where(ActivityEntry.action == "device.reset_confirmation")
        ).all()
        assert [c["confirmed"] for c in confirmations] == [True]
    # What it enforced before the erase is no longer claimed: it has not reported since.
    assert _compliance(stack, device) == "erased"
    kiosk.stop()

    # Enrolling again: a new identity replaces the old one and commands reach it.
    stack.kiosks.remove(kiosk)
    [again] = stack.enrol([device])
    new_id = load_config(again.data_dir).device_id
    assert new_id != old_id
    _online(stack, 1)
    ping = stack.api(
        stack.technician, "POST", f"/devices/{again.asset_tag}/commands", json={"type": "ping"}
    )
    assert stack.wait_finished([ping["cmd_id"]]) == {ping["cmd_id"]: CommandStatus.DONE}
    with stack.database.begin() as session:
        live = session.scalars(
            select(DeviceIdentity.mqtt_id).where(
                DeviceIdentity.device_id == device.id, DeviceIdentity.revoked_at.is_(None)
            )
        ).all()
        assert live == [new_id]
        sent_to = session.scalar(select(Command.mqtt_id).where(Command.cmd_id == ping["cmd_id"]))
        assert sent_to == new_id
    wait_until(lambda: again.state()["profile"] is not None, 30, "the profile on the new identity")
    wait_until(lambda: _compliance(stack, device) == "compliant", 30, "the profile applied again")


def _compliance(stack: Stack, device: Device) -> str | None:
    """The device's compliance state as the profile pages show it."""
    with stack.database.begin() as session:
        row = profiles.device_compliance(session, session.get_one(Device, device.id))
        return None if row is None else row.state


def test_enrolling_again_replaces_the_identity(stack: Stack) -> None:
    """Re-enrolment with --force revokes the old identity: its broker login stops working."""
    [device] = stack.add_devices(1)
    [first] = stack.enrol([device])
    _online(stack, 1)
    old = load_config(first.data_dir)
    first.stop()
    from kiosk_client import enrol

    enrol(
        stack.enrolment_code(device.id),
        platform="simulated",
        data_dir=first.data_dir,
        force=True,
        report_interval=0,
        fsync=False,
    )
    stack.sync_passwords()
    first.start()
    new = load_config(first.data_dir)
    assert new.device_id != old.device_id
    ping = stack.api(
        stack.technician, "POST", f"/devices/{first.asset_tag}/commands", json={"type": "ping"}
    )
    assert stack.wait_finished([ping["cmd_id"]]) == {ping["cmd_id"]: CommandStatus.DONE}
    with stack.database.begin() as session:
        rows = session.execute(
            select(DeviceIdentity.mqtt_id, DeviceIdentity.revoked_at).where(
                DeviceIdentity.device_id == device.id
            )
        ).all()
    assert {mqtt_id for mqtt_id, revoked in rows if revoked is None} == {new.device_id}
    assert {mqtt_id for mqtt_id, revoked in rows if revoked is not None} == {old.device_id}
    # The old login is refused by the broker: its password is no longer in the password file.
    first.stop()
    assert not _broker_accepts(stack, old.device_id, old.password)
    assert _broker_accepts(stack, new.device_id, new.password)


def _broker_accepts(stack: Stack, username: str, password: str) -> bool:
    port = stack.embedded.port if stack.embedded else stack.mosquitto.port  # type: ignore[union-attr]
    client = make_client(username, username=username, password=password)
    outcome: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(not reason.is_failure)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: bool(outcome), 10, "the broker to answer")
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


def test_profile_assigned_to_a_trolley_reaches_its_devices(stack: Stack) -> None:
    """P-PROFILE-1: a profile assigned to a trolley reaches its kiosks as retained desired state,
    each applies it and reports every setting enforced, and the compliance view turns green;
    P-REG-7: each kiosk's passcode and encryption arrive with its report."""
    kiosks = stack.enrol(stack.add_devices(3))
    _online(stack, 3)
    with stack.database.begin() as session:
        lead = session.merge(stack.lead)
        profile = profiles.create_profile(session, lead, name="Exam kiosk", start_from="exam-kiosk")
        profiles.assign(session, lead, profile, "location", stack.trolley_id)

    def green() -> bool:
        with stack.database.begin() as session:
            rows = profiles.compliance(session, stack.school_id)
            return len(rows) == 3 and all(r.state == "compliant" for r in rows)

    try:
        wait_until(green, 30, "compliance to turn green")
    except AssertionError:
        with stack.database.begin() as session:
            raise AssertionError(profiles.compliance(session, stack.school_id)) from None
    for kiosk in kiosks:
        assert kiosk.state()["profile"] is not None, kiosk.asset_tag
    with stack.database.begin() as session:
        for device in session.scalars(select(Device).where(Device.school_id == stack.school_id)):
            view = profiles.applied_view(session, device)
            assert view.applied and view.reported_at is not None
            assert {row.state for row in view.rows} == {"enforced"}, device.asset_tag
            guard = protection_of(session, device)
            assert guard.passcode.startswith("Yes") and guard.encryption.startswith("Encrypted")


def _forge(body: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """An envelope signed by `key` whatever kid the body claims (what an attacker can send)."""
    signature = base64.urlsafe_b64encode(key.sign(canonical_json(body))).rstrip(b"=").decode()
    return canonical_json({"body": body, "sig": signature})


def test_forged_command_on_an_open_broker_is_refused(anonymous_stack: Stack) -> None:
    """P-PHOTO-1: someone with broker access forges wipes (a made-up key under the server's kid,
    and an unknown kid): the kiosk refuses both, nothing runs, no command changes state."""
    stack = anonymous_stack
    [kiosk] = stack.enrol(stack.add_devices(1), photos=4)
    _online(stack, 1)
    device_id = load_config(kiosk.data_dir).device_id
    with stack.database.begin() as session:
        real_kid = server_key(session, stack.box).kid
        before = session.execute(select(Command.cmd_id, Command.status)).all()
    attacker = Ed25519PrivateKey.generate()
    now = int(time.time())
    forged = [
        _forge(
            build_command(
                "wipe_photos", device_id=device_id, kid=kid, seq=10_000 + n, now=now, exp=now + 600
            ).to_body(),
            attacker,
        )
        for n, kid in enumerate([real_kid, key_id(attacker.public_key())])
    ]
    client = make_client(f"attacker-{uuid.uuid4().hex[:6]}")
    client.connect(*MOSQUITTO_ADDR)
    client.loop_start()
    try:
        for payload in forged:
            client.publish(cmd_topic(device_id), payload, qos=QOS).wait_for_publish(timeout=5)
        time.sleep(2)
    finally:
        client.disconnect()
        client.loop_stop()
    assert kiosk.photos() == 4
    assert kiosk.ran("wipe_photos") == 0
    with stack.database.begin() as session:
        assert session.execute(select(Command.cmd_id, Command.status)).all() == before
    # The kiosk still obeys the real server afterwards.
    real = stack.api(
        stack.technician,
        "POST",
        f"/devices/{kiosk.asset_tag}/commands",
        json={"type": "wipe_photos"},
    )
    assert stack.wait_finished([real["cmd_id"]]) == {real["cmd_id"]: CommandStatus.DONE}
    assert kiosk.photos() == 0


def test_factory_reset_confirmed_while_the_worker_is_still_committing(stack: Stack) -> None:
    """P-LEAVE-1: a quick device asks for confirmation before the worker's publishing transaction
    has committed (a big batch waiting for PUBACKs); the server must still confirm its reset."""
    assert stack.channel is not None
    publish_all = stack.channel._publish_all

    def slow_commit(messages: list[tuple[str, bytes, bool]]) -> bool:
        taken = publish_all(messages)
        time.sleep(1.5)  # the rest of a large batch is still being acknowledged
        return taken

    stack.channel._publish_all = slow_commit  # type: ignore[method-assign]
    [kiosk] = stack.enrol(stack.add_devices(1))
    _online(stack, 1)
    asked = stack.api(
        stack.technician,
        "POST",
        f"/devices/{kiosk.asset_tag}/commands",
        json={"type": "factory_reset"},
    )
    stack.api(
        stack.head,
        "POST",
        f"/commands/{asked['id']}/approve",
        json=stack.approval_code(stack.head),
    )
    assert stack.wait_finished([asked["cmd_id"]]) == {asked["cmd_id"]: CommandStatus.DONE}, (
        stack.details([asked["cmd_id"]])
    )
    assert not is_enrolled(kiosk.data_dir)
