"""The two MDM endpoints: check-in (Authenticate, TokenUpdate, CheckOut) and connect.

Commands are the same `Command` rows as every channel's: handed out on a connect answer they
become `sent`; an acknowledgement finishes them (or moves them to the next MDM step); NotNow
puts them back in the queue for the iPad's next check-in. An erase is confirmed only by the
iPad's CheckOut or its enrolling again, never by the acknowledgement alone.
"""

from __future__ import annotations

import logging
import plistlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import server.ipads.services.mapping as mapping
import server.ipads.services.profiles as ipad_profiles
from mqtt.messages import AckState
from server import events
from server.activity.services import record
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.config import Settings
from server.crypto import SecretBox
from server.devices.services import add_event, record_protection
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import (
    record_enrolled,
    revoke_identities,
    write_broker_passwords,
)
from server.errors import ValidationFailed
from server.ipads.models import IpadDelivery, IpadEnrolment, Stage
from server.ipads.services.identity import message, sender
from server.ipads.services.schema import CHECKIN, command_problems, problems, response_problems
from server.schools.models import School

log = logging.getLogger(__name__)


# --- check-in ------------------------------------------------------------------------------


def check_in(
    session: Session,
    box: SecretBox,
    settings: Settings,
    body: bytes,
    signature: str | None,
    *,
    now: datetime,
) -> None:
    """Apply one signed check-in message; commits."""
    enrolment = sender(session, box, body, signature, where="checkin", now=now)
    sent = message(body)
    kind = sent.get("MessageType")
    if kind not in CHECKIN:
        raise ValidationFailed(f"Trolley does not take the check-in message {kind!r}.")
    found = problems(sent, CHECKIN[str(kind)], strict=False)
    if found:
        raise ValidationFailed("The check-in message does not follow Apple's schema: " + found[0])
    if sent["Topic"] != enrolment.topic:
        raise ValidationFailed("The check-in names another push topic than its enrolment.")
    if kind != "Authenticate" and sent["UDID"] != enrolment.udid:
        raise ValidationFailed("The check-in comes from another iPad than the one enrolled.")
    enrolment.last_seen_at = now
    enrolment.device.last_seen_at = now
    replaced = []
    if kind == "Authenticate":
        _authenticate(session, enrolment, sent, now)
    elif kind == "TokenUpdate":
        replaced = _token_update(session, enrolment, sent, now)
    else:
        _check_out(session, enrolment, now)
    session.commit()
    if replaced:
        write_broker_passwords(session, settings)  # the old kiosk login stops working


def _authenticate(
    session: Session, enrolment: IpadEnrolment, sent: dict[str, Any], now: datetime
) -> None:
    enrolment.udid = str(sent["UDID"])[:64]
    enrolment.stage = Stage.AUTHENTICATED
    said = ("DeviceName", "Model", "ModelName", "OSVersion")
    facts: dict[str, Any] = {k: sent[k] for k in said if k in sent}
    enrolment.facts = {**enrolment.facts, **facts}
    enrolment.facts_at = now
    if sent.get("OSVersion"):
        enrolment.device.os_version = f"iPadOS {sent['OSVersion']}"[:64]
    add_event(
        session,
        enrolment.device,
        kind="enrolled",
        summary="The iPad installed the enrolment profile",
        actor=None,
        details={"model": str(sent.get("Model", ""))},
    )


def _token_update(
    session: Session, enrolment: IpadEnrolment, sent: dict[str, Any], now: datetime
) -> list[DeviceIdentity]:
    """The iPad can be reached: Trolley manages it from now on; the kiosk logins it replaced."""
    enrolment.push_token = bytes(sent["Token"]).hex()[:512]
    enrolment.push_magic = str(sent["PushMagic"])[:128]
    if enrolment.stage is Stage.ENROLLED:
        return []  # a new push token for an iPad already managed
    enrolment.stage = Stage.ENROLLED
    enrolment.enrolled_at = now
    device = enrolment.device
    older = session.scalars(
        select(IpadEnrolment).where(
            IpadEnrolment.device_id == device.id, IpadEnrolment.id != enrolment.id
        )
    ).all()
    for old in older:
        if old.stage is not Stage.CHECKED_OUT:
            old.stage = Stage.REPLACED
    # One channel per device: a kiosk client's login on the same device ends here.
    kiosk = revoke_identities(session, device, now=now, why="enrolled with Apple MDM")
    # An erase the old enrolment acknowledged is proved by the iPad enrolling again.
    _confirm_erase(session, enrolment, now, "the iPad enrolled again after the erase")
    add_event(
        session, device, kind="enrolled", summary="Enrolled with Trolley (Apple MDM)", actor=None
    )
    record_enrolled(session, device, platform="ipados", replaced=len(older))
    # The first thing Trolley wants from a new iPad is what it is.
    session.flush()
    commands.issue(session, None, [device], "report_inventory", now=now, commit=False)
    return kiosk


def _check_out(session: Session, enrolment: IpadEnrolment, now: datetime) -> None:
    enrolment.stage = Stage.CHECKED_OUT
    enrolment.checked_out_at = now
    if not _confirm_erase(session, enrolment, now, "the iPad checked out after the erase"):
        ipad_profiles.removed_with_management(session, enrolment, now)
        add_event(
            session,
            enrolment.device,
            kind="enrolled",
            summary="The iPad's management profile was removed: Trolley no longer manages it",
            actor=None,
        )
    record(
        session,
        actor=None,
        actor_label=f"device {enrolment.device.asset_tag}",
        action="ipad.checked_out",
        school_id=enrolment.school_id,
        target_type="device",
        target_id=enrolment.device.asset_tag,
    )


def _confirm_erase(session: Session, enrolment: IpadEnrolment, now: datetime, why: str) -> bool:
    """Finish an erase the iPad acknowledged; whether there was one."""
    waiting = session.scalars(
        select(Command).where(
            Command.device_id == enrolment.device_id,
            Command.type == "factory_reset",
            Command.status == CommandStatus.RECEIVED,
        )
    ).all()
    for command in waiting:
        # P-LEAVE-1: the reset is done only once the iPad itself shows it.
        commands.record_answer(
            session, command, AckState.DONE, f"Erased: {why}.", {"confirmed_by": why}, now=now
        )
    return bool(waiting)


# --- connect -------------------------------------------------------------------------------


def connect(
    session: Session, box: SecretBox, body: bytes, signature: str | None, *, now: datetime
) -> bytes:
    """Record the iPad's answer and hand it the next command (empty: nothing to do); commits."""
    enrolment = sender(session, box, body, signature, where="connect", now=now)
    if enrolment.stage is not Stage.ENROLLED:
        raise ValidationFailed("The iPad has not finished enrolling (no TokenUpdate yet).")
    answer = message(body)
    command_uuid = str(answer.get("CommandUUID") or "")
    profile_step = ipad_profiles.request_type_of(command_uuid)
    delivery = None if profile_step else _delivery_for(session, enrolment, command_uuid)
    request_type = delivery.steps[delivery.step] if delivery and _in_range(delivery) else None
    request_type = request_type or profile_step
    found = response_problems(answer, request_type, strict=False)
    if found or answer.get("UDID") != enrolment.udid:
        raise ValidationFailed(
            "The answer does not follow Apple's schema: " + (found or ["UDID mismatch"])[0]
        )
    enrolment.last_seen_at = now
    enrolment.device.last_seen_at = now
    status = str(answer["Status"])
    if delivery is not None and request_type is not None:
        _answered(session, enrolment, delivery, request_type, status, answer, now)
    elif profile_step is not None:
        words = mapping.error_words(answer) if status == "Error" else status
        ipad_profiles.answered(session, enrolment, profile_step, status, answer, words, now=now)
    elif status != "Idle":
        log.warning("%s answered an unknown command %s", enrolment.udid, answer.get("CommandUUID"))
    out = b"" if status == "NotNow" else _next(session, box, enrolment, now)
    session.commit()
    return out


def _in_range(delivery: IpadDelivery) -> bool:
    return 0 <= delivery.step < len(delivery.steps)


def _uuid(command: Command, step: int) -> str:
    return f"{command.cmd_id}.{step}"


def _delivery_for(
    session: Session, enrolment: IpadEnrolment, command_uuid: object
) -> IpadDelivery | None:
    if not isinstance(command_uuid, str) or "." not in command_uuid:
        return None
    cmd_id, _, step = command_uuid.rpartition(".")
    delivery = session.scalar(
        select(IpadDelivery)
        .join(Command, Command.id == IpadDelivery.command_id)
        .where(Command.cmd_id == cmd_id, IpadDelivery.enrolment_id == enrolment.id)
    )
    if delivery is None or str(delivery.step) != step:
        return None  # a late answer to a step already settled changes nothing
    return delivery


def _answered(
    session: Session,
    enrolment: IpadEnrolment,
    delivery: IpadDelivery,
    request_type: str,
    status: str,
    answer: dict[str, Any],
    now: datetime,
) -> None:
    command = delivery.command
    delivery.updated_at = now
    if status == "NotNow":
        # The iPad is busy or locked: offered again at its next check-in, still counted as sent.
        delivery.not_now += 1
        if command.status is CommandStatus.SENT:
            command.status = CommandStatus.QUEUED
        command.detail = (
            f"The iPad said 'not now' {delivery.not_now} time(s) (locked or busy); "
            "it is offered again when the iPad next checks in."
        )[:500]
        return
    if status in ("Error", "CommandFormatError"):
        words = mapping.error_words(answer) if status == "Error" else "Apple's format refused"
        commands.record_answer(
            session,
            command,
            AckState.FAILED,
            f"The iPad refused {request_type}: {words}",
            {"mdm": {"request": request_type, "status": status, "errors": _plain(answer)}},
            now=now,
        )
        delivery.step = len(delivery.steps)
        return
    if status != "Acknowledged":
        return
    delivery.answers = {**delivery.answers, request_type: _kept(request_type, answer)}
    _learn(session, enrolment, request_type, answer, now)
    delivery.step += 1
    if command.type == "factory_reset":
        commands.record_answer(
            session,
            command,
            AckState.RECEIVED,
            "The iPad acknowledged the erase; waiting for it to check out or enrol again.",
            {},
            now=now,
        )
        return
    if delivery.step < len(delivery.steps):
        commands.record_answer(
            session,
            command,
            AckState.RECEIVED,
            f"Step {delivery.step} of {len(delivery.steps)} done ({request_type}).",
            {},
            now=now,
        )
        return
    detail, result = mapping.summary(command, delivery.answers)
    commands.record_answer(session, command, AckState.DONE, detail, result, now=now)


def _plain(answer: dict[str, Any]) -> Any:
    """The answer as JSON can hold it (data as its length)."""
    if isinstance(answer, dict):
        return {k: _plain(v) for k, v in answer.items()}
    if isinstance(answer, list):
        return [_plain(v) for v in answer]
    if isinstance(answer, bytes):
        return f"<{len(answer)} bytes>"
    if isinstance(answer, datetime):
        return answer.isoformat()
    return answer


def _kept(request_type: str, answer: dict[str, Any]) -> Any:
    if request_type == "InstalledApplicationList":
        return {"count": len(answer.get("InstalledApplicationList") or [])}
    if request_type == "DeviceLocation":
        keys = ("Latitude", "Longitude", "HorizontalAccuracy", "Timestamp")
        return {k: answer[k] for k in keys if k in answer}
    return _plain({k: v for k, v in answer.items() if k not in ("UDID", "Status", "CommandUUID")})


def _learn(
    session: Session,
    enrolment: IpadEnrolment,
    request_type: str,
    answer: dict[str, Any],
    now: datetime,
) -> None:
    """What an acknowledged query tells the register (with its time)."""
    device = enrolment.device
    if request_type == "DeviceInformation":
        facts = dict(answer["QueryResponses"])
        enrolment.facts = _plain({**enrolment.facts, **facts})
        enrolment.facts_at = now
        if "IsSupervised" in facts:
            enrolment.supervised = bool(facts["IsSupervised"])
        if "IsMultiUser" in facts:
            enrolment.shared_ipad = bool(facts["IsMultiUser"])
        if facts.get("OSVersion"):
            device.os_version = f"iPadOS {facts['OSVersion']}"[:64]
        if facts.get("SerialNumber") and not device.serial:
            device.serial = str(facts["SerialNumber"])[:64]
    elif request_type == "SecurityInfo":
        info = answer["SecurityInfo"]
        caps = info.get("HardwareEncryptionCaps")
        present = info.get("PasscodePresent")
        enrolment.facts = {**enrolment.facts, "SecurityInfo": _plain(info)}
        enrolment.facts_at = now
        record_protection(
            session,
            device,
            passcode=present if isinstance(present, bool) else None,
            # An iPad with a passcode and data protection encrypts its files.
            storage_encrypted=(bool(caps & 2) and present is True)
            if isinstance(caps, int)
            else None,
            details={
                "passcode": "reported by the iPad (SecurityInfo)",
                "storage_encrypted": f"HardwareEncryptionCaps {caps}",
            },
            at=now,
        )
    elif request_type == "InstalledApplicationList":
        apps = [
            {
                "app_id": str(a.get("Identifier", "")),
                "name": str(a.get("Name") or a.get("Identifier")),
            }
            for a in answer["InstalledApplicationList"]
            if a.get("Identifier")
        ]
        enrolment.apps_count, enrolment.apps_at = len(apps), now
        events.publish(events.AppsReported(session, device, now, apps))


def _next(session: Session, box: SecretBox, enrolment: IpadEnrolment, now: datetime) -> bytes:
    """The next MDM command for this iPad, as the plist body of the answer; b"" for none."""
    waiting = session.scalars(
        select(Command)
        .where(
            Command.device_id == enrolment.device_id,
            Command.status.in_([CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RECEIVED]),
            Command.expires_at > now,
        )
        .order_by(Command.id)
    ).all()
    for command in waiting:
        delivery = session.scalar(select(IpadDelivery).where(IpadDelivery.command_id == command.id))
        if delivery is None or delivery.enrolment_id != enrolment.id:
            chosen = mapping.plan(command, enrolment)
            if delivery is None:
                delivery = IpadDelivery(
                    command_id=command.id, school_id=command.school_id, answers={}, not_now=0
                )
                session.add(delivery)
            delivery.enrolment_id, delivery.steps, delivery.step = enrolment.id, chosen.steps, 0
            delivery.updated_at = now
            if chosen.finish:
                commands.mark_sent(session, [command.id], now=now)
                session.refresh(command)
                state = AckState.DONE if chosen.finish == "done" else AckState.FAILED
                commands.record_answer(session, command, state, chosen.detail, {}, now=now)
                session.flush()
                continue
        if _in_range(delivery):
            return _hand_out(session, enrolment, command, delivery, now)
        # Every step answered: the command waits on something else (an erase's proof).
    envelope = ipad_profiles.next_step(session, enrolment, box, now=now)
    if envelope is None:
        return b""
    return _envelope(envelope)


def _envelope(envelope: dict[str, Any]) -> bytes:
    """The plist body for a command, refused if Apple's schema would refuse it."""
    wrong = command_problems(envelope)
    if wrong:  # a bug of ours: never send Apple what it would refuse
        raise AssertionError(f"the command does not follow Apple's schema: {wrong}")
    return plistlib.dumps(envelope, fmt=plistlib.FMT_XML, sort_keys=True)


def _hand_out(
    session: Session,
    enrolment: IpadEnrolment,
    command: Command,
    delivery: IpadDelivery,
    now: datetime,
) -> bytes:
    school = session.get(School, enrolment.school_id)
    request_type = delivery.steps[delivery.step]
    envelope = {
        "CommandUUID": _uuid(command, delivery.step),
        "Command": mapping.request(
            command, request_type, return_message=school.return_message if school else ""
        ),
    }
    body = _envelope(envelope)
    if command.status is CommandStatus.QUEUED:
        commands.mark_sent(session, [command.id], now=now)
        session.refresh(command)
        command.detail = f"Handed to the iPad ({request_type})."
    delivery.offered_at = now
    session.flush()
    return body
