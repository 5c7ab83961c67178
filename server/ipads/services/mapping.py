"""What each Trolley command becomes in Apple's MDM, and what each answer means for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.commands.models import Command
from server.ipads.models import IpadEnrolment
from server.ipads.services.schema import QUERIES

INVENTORY = ["DeviceInformation", "SecurityInfo", "InstalledApplicationList"]
LOST_MODE_NEEDS_SUPERVISION = (
    "Lost mode is not available: this iPad is not supervised (Apple allows lost mode only on "
    "supervised iPads). It was locked with the school's message instead."
)
NOT_SHARED = (
    "Apple's MDM has no command that deletes the photos on an iPad that is not a Shared iPad, "
    "so Trolley cannot wipe them: check and wipe this iPad by hand."
)


@dataclass(frozen=True)
class Plan:
    """The MDM requests for one command, or why none is sent (`finish` says how it ends)."""

    steps: list[str]
    finish: str = ""  # "" | done | failed: settled without asking the iPad
    detail: str = ""


def plan(command: Command, enrolment: IpadEnrolment) -> Plan:
    """The MDM requests that carry `command` to this iPad, decided when it is first handed out."""
    supervised = enrolment.supervised is True
    kind, args = command.type, command.args
    if kind in ("report_inventory", "ping"):
        return Plan(list(INVENTORY) if kind == "report_inventory" else ["DeviceInformation"])
    if kind == "lock":
        return Plan(["DeviceLock"])
    if kind == "lost_mode":
        if args.get("enabled"):
            # P-LOSS-3: a supervised iPad shows the message in lost mode and can be located.
            return Plan(["EnableLostMode", "DeviceLocation"] if supervised else ["DeviceLock"])
        if supervised:
            return Plan(["DisableLostMode"])
        return Plan(
            [],
            "done",
            "Nothing to switch off: this iPad is not supervised, so it was only locked; it "
            "unlocks with its passcode.",
        )
    if kind == "factory_reset":
        return Plan(["EraseDevice"])
    if kind == "wipe_photos":
        if enrolment.shared_ipad:
            # P-PHOTO-1: on a Shared iPad the photos live in the user's data; deleting every
            # user removes them.
            return Plan(["LogOutUser", "DeleteUser"])
        return Plan([], "failed", NOT_SHARED)
    return Plan([], "failed", f"An iPad has no equivalent of {kind!r} in Apple's MDM.")


def request(command: Command, request_type: str, *, return_message: str) -> dict[str, Any]:
    """The `Command` dictionary for one step (RequestType and its keys)."""
    args = command.args
    message = str(args.get("message") or return_message or "")
    keys: dict[str, Any] = {}
    if request_type == "DeviceInformation":
        keys = {"Queries": list(QUERIES)}
    elif request_type == "InstalledApplicationList":
        keys = {"ManagedAppsOnly": False}
    elif request_type in ("DeviceLock", "EnableLostMode"):
        if message:
            keys["Message"] = message
        if args.get("phone"):
            keys["PhoneNumber"] = str(args["phone"])
    elif request_type == "EraseDevice":
        keys = {"DisallowProximitySetup": True}
    elif request_type == "DeleteUser":
        keys = {"DeleteAllUsers": True, "ForceDeletion": True}
    return {"RequestType": request_type, **keys}


def error_words(answer: dict[str, Any]) -> str:
    """The iPad's own words for an Error, from its ErrorChain."""
    chain = answer.get("ErrorChain") or []
    words = [
        str(e.get("USEnglishDescription") or e.get("LocalizedDescription") or e.get("ErrorCode"))
        for e in chain
        if isinstance(e, dict)
    ]
    return "; ".join(words) or "no reason given"


def summary(command: Command, answers: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The detail and result recorded when every step of `command` was acknowledged."""
    if command.type == "lost_mode" and command.args.get("enabled"):
        if "EnableLostMode" in answers:
            where = answers.get("DeviceLocation") or {}
            result = {"lost_mode": True, "location": where} if where else {"lost_mode": True}
            return "The iPad is in lost mode, showing the school's message.", result
        return LOST_MODE_NEEDS_SUPERVISION, {"lost_mode": False, "locked": True}
    if command.type == "wipe_photos":
        # Every user's data is gone, photos with it; the iPad does not count them.
        return "Every Shared iPad user was signed out and deleted; their photos went with them.", {
            "remaining": 0,
            "users_removed": True,
        }
    if command.type == "lock":
        return "The iPad is locked.", {"locked": True}
    if command.type == "lost_mode":
        return "Lost mode is off.", {"lost_mode": False}
    return "The iPad answered.", {}
