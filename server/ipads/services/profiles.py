"""Profiles on iPads: the desired profile installed over MDM and read back, setting by setting.

The iPad is given the school's signed `.mobileconfig` for its desired state (InstallProfile),
then asked what it has installed (ProfileList). Only that answer feeds the applied state: a
setting is `enforced` when the installed profile carries the payload that expresses it and the
iPad can apply it (supervision); never because Trolley sent it.
"""

from __future__ import annotations

import plistlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from device_profiles import capabilities
from device_profiles.compilers.apple import build_mobileconfig
from device_profiles.errors import ProfileError
from device_profiles.signing import sign_mobileconfig
from server import events
from server.enrolment.services import school_signing_identity
from server.ipads.models import IpadEnrolment
from server.profiles import services as profiles
from server.profiles.models import DeviceDesiredState

PREFIX = "profile."
STEPS = {"install": "InstallProfile", "list": "ProfileList", "remove": "RemoveProfile"}
SUPERVISION = "needs a supervised iPad (Apple Configurator or Apple School Manager)"
# The payload type that carries each section of a profile on an iPad.
PAYLOADS = {
    "device": "com.apple.applicationaccess",
    "apps": "com.apple.applicationaccess",
    "web_filter": "com.apple.webcontent-filter",
    "passcode": "com.apple.mobiledevice.passwordpolicy",
    "kiosk": "com.apple.app.lock",
}


def _payload_of(setting: str) -> str:
    if setting == "device.auto_lock_minutes":
        return "com.apple.mobiledevice.passwordpolicy"  # maxInactivity
    return PAYLOADS.get(setting.split(".", 1)[0], "")


def request_type_of(command_uuid: str) -> str | None:
    """The MDM request a profile step's CommandUUID stands for."""
    if not command_uuid.startswith(PREFIX):
        return None
    return STEPS.get(command_uuid[len(PREFIX) :].split(".", 1)[0])


def _uuid(step: str, enrolment: IpadEnrolment) -> str:
    return f"{PREFIX}{step}.{(enrolment.profile_sha256 or 'none')[:16]}"


def next_step(
    session: Session, enrolment: IpadEnrolment, box: Any, *, now: datetime
) -> dict[str, Any] | None:
    """The profile command this iPad should get next, as an MDM envelope; None for none."""
    desired = profiles.desired_state(session, enrolment.device)
    if enrolment.profile_step == "list":
        return {"CommandUUID": _uuid("list", enrolment), "Command": {"RequestType": "ProfileList"}}
    if enrolment.profile_step in ("install", "remove"):
        return None  # sent and not yet answered: the iPad answers it on this or its next visit
    if desired is None or desired.sha256 == enrolment.profile_sha256:
        return None
    if desired.document is None or desired.profile_version is None:
        enrolment.profile_sha256 = desired.sha256
        if not enrolment.profile_identifier:
            return None
        enrolment.profile_step = "remove"
        return {
            "CommandUUID": _uuid("remove", enrolment),
            "Command": {"RequestType": "RemoveProfile", "Identifier": enrolment.profile_identifier},
        }
    result = profiles.preview(session, desired.profile_version, "apple")
    identity = school_signing_identity(session, box, enrolment.school_id)
    signed = sign_mobileconfig(
        result.content, identity.certificate, identity.private_key, identity.chain, now=now
    )
    enrolment.profile_sha256 = desired.sha256
    enrolment.profile_identifier = str(plistlib.loads(result.content)["PayloadIdentifier"])
    enrolment.profile_step = "install"
    return {
        "CommandUUID": _uuid("install", enrolment),
        "Command": {"RequestType": "InstallProfile", "Payload": signed},
    }


def resend(enrolment: IpadEnrolment, request_type: str) -> None:
    """A NotNow: the step is offered again at the next check-in."""
    if request_type == "ProfileList":
        return  # still "list"
    # Install and remove are decided again from the desired state next time.
    enrolment.profile_step = ""
    enrolment.profile_sha256 = None


def answered(
    session: Session,
    enrolment: IpadEnrolment,
    request_type: str,
    status: str,
    answer: Mapping[str, Any],
    words: str,
    *,
    now: datetime,
) -> None:
    """Record the iPad's answer to a profile step."""
    desired = profiles.desired_state(session, enrolment.device)
    if status == "NotNow":
        resend(enrolment, request_type)
        return
    if request_type == "InstallProfile":
        if status == "Acknowledged":
            enrolment.profile_step = "list"
            return
        enrolment.profile_step = ""
        _report(
            session, enrolment, desired, _all(desired, "failed", f"not installed: {words}"), now
        )
    elif request_type == "RemoveProfile":
        enrolment.profile_step = ""
        if status == "Acknowledged":
            enrolment.profile_identifier = None
            events.publish(events.ProfileReported(session, enrolment.device, now, None, [], None))
    elif request_type == "ProfileList":
        enrolment.profile_step = ""
        if status == "Acknowledged":
            settings = _read_back(enrolment, desired, answer.get("ProfileList") or [])
            _report(session, enrolment, desired, settings, now)


def removed_with_management(session: Session, enrolment: IpadEnrolment, now: datetime) -> None:
    """The iPad said its management profile is gone, and with it every profile Trolley put on
    it: what it reported applied before no longer holds."""
    enrolment.profile_identifier = None
    enrolment.profile_step = ""
    desired = profiles.desired_state(session, enrolment.device)
    why = "removed with the iPad's management profile"
    _report(session, enrolment, desired, _all(desired, "failed", why), now)


def _report(
    session: Session,
    enrolment: IpadEnrolment,
    desired: DeviceDesiredState | None,
    settings: list[dict[str, Any]],
    now: datetime,
) -> None:
    if desired is None or desired.document is None:
        return
    installed = any(entry["state"] == "enforced" for entry in settings)
    events.publish(
        events.ProfileReported(
            session,
            enrolment.device,
            now,
            desired.sha256 if installed else None,
            settings,
            desired.sha256,
        )
    )


def _all(desired: DeviceDesiredState | None, state: str, detail: str) -> list[dict[str, Any]]:
    if desired is None or desired.document is None:
        return []
    names = desired.document.get("settings") or []
    return [{"setting": str(s), "state": state, "detail": detail[:500]} for s in names]


def _read_back(
    enrolment: IpadEnrolment, desired: DeviceDesiredState | None, listed: Sequence[Any]
) -> list[dict[str, Any]]:
    """Each setting of the desired profile as the iPad's ProfileList shows it."""
    if desired is None or desired.document is None or desired.profile_version is None:
        return []
    mine = next(
        (
            p
            for p in listed
            if isinstance(p, dict) and p.get("PayloadIdentifier") == enrolment.profile_identifier
        ),
        None,
    )
    if mine is None:
        return _all(desired, "failed", "the iPad does not list the profile as installed")
    installed_types = {
        str(p.get("PayloadType")) for p in mine.get("PayloadContent") or [] if isinstance(p, dict)
    }
    try:
        profile = profiles.loaded(desired.profile_version)
        _top, handled, supervised_only = build_mobileconfig(profile)
    except ProfileError:
        return _all(desired, "failed", "the profile could not be compiled for iPads")
    needs_supervision = {entry.split(" ", 1)[0] for entry in supervised_only}
    out: list[dict[str, Any]] = []
    for setting in desired.document.get("settings") or []:
        name = str(setting)
        entry = capabilities.capability("apple", name)
        evidence: dict[str, Any] = {
            "profile": enrolment.profile_identifier,
            "payloads": sorted(installed_types),
        }
        if name not in handled or entry.support is capabilities.Support.NO:
            out.append({"setting": name, "state": "not_supported", "detail": entry.text})
        elif not enrolment.supervised and any(
            name == s or name.startswith(s + ".") for s in needs_supervision
        ):
            out.append({"setting": name, "state": "not_supported", "detail": SUPERVISION})
        elif _payload_of(name) not in installed_types:
            out.append(
                {
                    "setting": name,
                    "state": "failed",
                    "detail": f"the installed profile has no {_payload_of(name)} payload",
                    "evidence": evidence,
                }
            )
        else:
            out.append(
                {
                    "setting": name,
                    "state": "enforced",
                    "detail": "installed (ProfileList)",
                    "evidence": evidence,
                }
            )
    return out
