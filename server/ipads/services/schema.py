"""Apple's MDM messages as Trolley uses them: key, type, required, allowed values.

Transcribed for an iPad's device channel (device enrolment, not User Enrollment) from Apple's
published schema, github.com/apple/device-management release "iOS 18.1 / macOS 15.1":
`mdm/checkin/{authenticate,tokenupdate,checkout}.yaml` and the `mdm/commands/*.yaml` files of the
commands below. Keys Apple marks as macOS-only or User-Enrollment-only are left out. The server
checks what it receives and what it sends against these tables; the simulated iPad in the tests
checks everything it is sent with them, so a command Apple would refuse fails the test.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PLIST_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "real": (int, float),
    "data": (bytes,),
    "date": (datetime.datetime,),
    "array": (list,),
    "dictionary": (dict,),
}


@dataclass(frozen=True)
class Key:
    """One key of a message: its plist type, whether it must be there, what it may be."""

    name: str
    type: str
    required: bool = False
    allowed: tuple[str, ...] = ()
    range: tuple[int, int] | None = None
    keys: tuple[Key, ...] | None = None  # a dictionary's keys, or an array's dictionary items
    items: str | None = None  # the type of an array's items


def _s(name: str, required: bool = False, *allowed: str) -> Key:
    return Key(name, "string", required, allowed)


def _b(name: str, required: bool = False) -> Key:
    return Key(name, "boolean", required)


# --- check-in (PUT to the CheckInURL) ------------------------------------------------------

CHECKIN: dict[str, tuple[Key, ...]] = {
    "Authenticate": (
        _s("MessageType", True, "Authenticate"),
        _s("Topic", True),
        _s("UDID", True),  # optional in the file only because User Enrollment forbids it
        _s("DeviceName", True),
        _s("Model", True),
        _s("ModelName", True),
        _s("OSVersion"),
        _s("BuildVersion"),
        _s("ProductName"),
        _s("SerialNumber"),
        _s("IMEI"),
        _s("MEID"),
    ),
    "TokenUpdate": (
        _s("MessageType", True, "TokenUpdate"),
        _s("Topic", True),
        _s("UDID", True),
        Key("Token", "data", True),
        _s("PushMagic", True),
        Key("UnlockToken", "data"),
        _b("AwaitingConfiguration"),
        _s("UserShortName"),  # Shared iPad's user channel
        _s("UserID"),
        _s("UserLongName"),
    ),
    "CheckOut": (
        _s("MessageType", True, "CheckOut"),
        _s("Topic", True),
        _s("UDID", True),
    ),
}

# --- commands (the body of the server's answer on the ServerURL) ---------------------------

COMMAND_ENVELOPE = (_s("CommandUUID", True), Key("Command", "dictionary", True))

COMMANDS: dict[str, tuple[Key, ...]] = {
    "DeviceInformation": (
        Key("Queries", "array", True, items="string"),
        Key("DeviceAttestationNonce", "data"),
    ),
    "SecurityInfo": (),
    "InstalledApplicationList": (
        Key("Identifiers", "array", items="string"),
        _b("ManagedAppsOnly"),
        Key("Items", "array", items="string"),
    ),
    "DeviceLock": (_s("Message"), _s("PhoneNumber")),
    "EnableLostMode": (_s("Message"), _s("PhoneNumber"), _s("Footnote")),
    "DisableLostMode": (),
    "DeviceLocation": (),
    "EraseDevice": (
        _b("PreserveDataPlan"),
        _b("DisallowProximitySetup"),
        Key(
            "ReturnToService",
            "dictionary",
            keys=(
                _b("Enabled", True),
                Key("WiFiProfileData", "data"),
                Key("MDMProfileData", "data"),
            ),
        ),
    ),
    "InstallProfile": (Key("Payload", "data", True),),
    "ProfileList": (_b("ManagedOnly"),),
    "RemoveProfile": (_s("Identifier", True),),
    "LogOutUser": (),
    "DeleteUser": (_s("UserName"), _b("ForceDeletion"), _b("DeleteAllUsers")),
}
# Apple's notes on the files: these need a supervised iPad, or a Shared iPad.
SUPERVISED_ONLY = frozenset({"EnableLostMode", "DisableLostMode", "DeviceLocation"})
SHARED_IPAD_ONLY = frozenset({"LogOutUser", "DeleteUser"})
# The DeviceInformation queries Trolley asks for (each a key of QueryResponses).
QUERIES = (
    "DeviceName",
    "Model",
    "ModelName",
    "ProductName",
    "OSVersion",
    "BuildVersion",
    "SerialNumber",
    "IsSupervised",
    "IsMultiUser",
    "IsMDMLostModeEnabled",
)

# --- the iPad's answers (PUT to the ServerURL) ----------------------------------------------

STATUSES = ("Acknowledged", "Error", "CommandFormatError", "Idle", "NotNow")
ERROR_CHAIN_ITEM = (
    Key("ErrorCode", "integer", True),
    _s("ErrorDomain", True),
    _s("LocalizedDescription"),
    _s("USEnglishDescription"),
)
RESPONSE_COMMON = (
    _s("UDID", True),
    _s("Status", True, *STATUSES),
    _s("CommandUUID"),  # every status but Idle
    Key("ErrorChain", "array", keys=ERROR_CHAIN_ITEM),
    _s("UserID"),
    _s("UserShortName"),
    _s("UserLongName"),
)
QUERY_RESPONSES = (
    _s("UDID"),
    _s("DeviceName"),
    _s("Model"),
    _s("ModelName"),
    _s("ModelNumber"),
    _s("ProductName"),
    _s("OSVersion"),
    _s("BuildVersion"),
    _s("SerialNumber"),
    Key("BatteryLevel", "real"),
    _b("IsSupervised"),
    _b("IsMultiUser"),
    _b("IsMDMLostModeEnabled"),
    _b("IsActivationLockEnabled"),
    _b("IsDeviceLocatorServiceEnabled"),
    _b("AwaitingConfiguration"),
    Key("DeviceCapacity", "real"),
    Key("AvailableDeviceCapacity", "real"),
)
SECURITY_INFO = (
    # Bit 1: block-level encryption, bit 2: file-level encryption.
    Key("HardwareEncryptionCaps", "integer", range=(0, 3)),
    _b("PasscodePresent"),
    _b("PasscodeCompliant"),
    _b("PasscodeCompliantWithProfiles"),
    Key("PasscodeLockGracePeriod", "integer"),
    Key("PasscodeLockGracePeriodEnforced", "integer"),
    Key("AutoLockTime", "integer"),
    Key("ManagementStatus", "dictionary"),
)
APP = (
    _s("Identifier"),
    _s("Name"),
    _s("Version"),
    _s("ShortVersion"),
    Key("BundleSize", "integer"),
    Key("DynamicSize", "integer"),
    _b("IsValidated"),
    _b("Installing"),
    _b("AppStoreVendable"),
    _b("DeviceBasedVPP"),
    _b("BetaApp"),
    _b("AdHocCodeSigned"),
    _b("HasUpdateAvailable"),
    _b("IsAppClip"),
    _s("Source"),
    _s("DistributorIdentifier"),
    Key("ExternalVersionIdentifier", "integer"),
)
PROFILE_ITEM = (
    _s("PayloadUUID", True),
    _s("PayloadIdentifier", True),
    Key("PayloadVersion", "integer"),
    _s("PayloadDisplayName"),
    _s("PayloadOrganization"),
    _s("PayloadDescription"),
    _b("PayloadRemovalDisallowed"),
    _b("HasRemovalPasscode"),
    _b("IsEncrypted"),
    Key("SignerCertificates", "array", items="data"),
    _b("IsManaged"),
    _s("Source"),
    Key("PayloadContent", "array", items="dictionary"),
)
# Keys an Acknowledged answer carries for each command (none for the others).
RESPONSES: dict[str, tuple[Key, ...]] = {
    "DeviceInformation": (Key("QueryResponses", "dictionary", True, keys=QUERY_RESPONSES),),
    "SecurityInfo": (Key("SecurityInfo", "dictionary", True, keys=SECURITY_INFO),),
    "InstalledApplicationList": (Key("InstalledApplicationList", "array", True, keys=APP),),
    "ProfileList": (Key("ProfileList", "array", True, keys=PROFILE_ITEM),),
    "DeviceLocation": (
        *(
            Key(name, "real", True)
            for name in (
                "Latitude",
                "Longitude",
                "HorizontalAccuracy",
                "VerticalAccuracy",
                "Altitude",
                "Speed",
                "Course",
            )
        ),
        _s("Timestamp", True),
    ),
    "DeviceLock": (_s("MessageResult"),),
}


def _type_ok(value: object, kind: str) -> bool:
    # A plist <true/> is not an <integer/>, though Python's bool is an int.
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, PLIST_TYPES[kind])


def problems(
    values: Mapping[str, Any], keys: tuple[Key, ...], *, where: str = "", strict: bool = True
) -> list[str]:
    """What in `values` Apple's schema does not allow; `strict` also refuses unknown keys."""
    found: list[str] = []
    known = {key.name: key for key in keys}
    for required in keys:
        if required.required and required.name not in values:
            found.append(f"{where}{required.name} is required")
    for name, value in values.items():
        key = known.get(name)
        if key is None:
            if strict:
                found.append(f"{where}{name} is not a key Apple defines here")
            continue
        path = f"{where}{name}"
        if not _type_ok(value, key.type):
            found.append(f"{path} must be a {key.type}, not {type(value).__name__}")
            continue
        if key.allowed and value not in key.allowed:
            found.append(f"{path} must be one of {', '.join(key.allowed)}")
        if key.range is not None and not key.range[0] <= value <= key.range[1]:
            found.append(f"{path} must be between {key.range[0]} and {key.range[1]}")
        if key.type == "dictionary" and key.keys is not None:
            found += problems(value, key.keys, where=f"{path}.", strict=strict)
        if key.type == "array":
            for index, item in enumerate(value):
                if key.keys is not None:
                    if not isinstance(item, dict):
                        found.append(f"{path}[{index}] must be a dictionary")
                    else:
                        found += problems(item, key.keys, where=f"{path}[{index}].", strict=strict)
                elif key.items is not None and not _type_ok(item, key.items):
                    found.append(f"{path}[{index}] must be a {key.items}")
    return found


def command_problems(envelope: Mapping[str, Any]) -> list[str]:
    """What is wrong with a command the server would send (the envelope and its request)."""
    found = problems(envelope, COMMAND_ENVELOPE)
    command = envelope.get("Command")
    if not isinstance(command, dict):
        return found
    request_type = command.get("RequestType")
    if request_type not in COMMANDS:
        return [*found, f"Command.RequestType {request_type!r} is not a command Trolley sends"]
    rest = {k: v for k, v in command.items() if k != "RequestType"}
    return found + problems(rest, COMMANDS[request_type], where="Command.")


def response_problems(
    answer: Mapping[str, Any], request_type: str | None, *, strict: bool = True
) -> list[str]:
    """What is wrong with an iPad's answer (to `request_type`, when it answers a command)."""
    specific = (
        RESPONSES.get(request_type or "", ()) if answer.get("Status") == "Acknowledged" else ()
    )
    found = problems(answer, RESPONSE_COMMON + specific, strict=strict)
    if answer.get("Status") not in ("Idle", None) and "CommandUUID" not in answer:
        found.append("CommandUUID is required with every status but Idle")
    return found
