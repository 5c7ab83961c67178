"""The Chrome policy schemas the stand-in publishes: names and fields as Google publishes them."""

from __future__ import annotations

from typing import Any

CUSTOMER = "C03az79cb"


BOOL, STRING, ENUM = "TYPE_BOOL", "TYPE_STRING", "TYPE_ENUM"
SCHEMAS: dict[str, dict[str, tuple[str, bool, tuple[str, ...]]]] = {
    # name: {field: (type, repeated, enum values)}
    "chrome.users.UrlBlocking": {
        "urlBlocklist": (STRING, True, ()),
        "urlAllowlist": (STRING, True, ()),
    },
    "chrome.users.SafeSearchRestrictedMode": {"forceGoogleSafeSearch": (BOOL, False, ())},
    "chrome.users.IncognitoMode": {
        "incognitoModeAvailability": (
            ENUM,
            False,
            (
                "INCOGNITO_MODE_AVAILABILITY_ENUM_UNSPECIFIED",
                "INCOGNITO_MODE_AVAILABILITY_ENUM_AVAILABLE",
                "INCOGNITO_MODE_AVAILABILITY_ENUM_UNAVAILABLE",
                "INCOGNITO_MODE_AVAILABILITY_ENUM_FORCED",
            ),
        )
    },
    "chrome.users.Screenshot": {"disableScreenshots": (BOOL, False, ())},
    "chrome.users.VideoInput": {"videoCaptureAllowed": (BOOL, False, ())},
    "chrome.users.AudioInput": {"audioCaptureAllowed": (BOOL, False, ())},
    "chrome.users.ShowLogoutButton": {"showLogoutButtonInTray": (BOOL, False, ())},
    "chrome.devices.WipeUserData": {"ephemeralUsersEnabled": (BOOL, False, ())},
    "chrome.devices.DisabledDeviceReturnInstructions": {
        "deviceDisabledMessage": (STRING, False, ())
    },
    "chrome.devices.Bluetooth": {"allowBluetooth": (BOOL, False, ())},
}


def schema_resource(name: str) -> dict[str, Any]:
    leaf = name.rsplit(".", 1)[1]
    fields, enums = [], []
    for number, (field_name, (kind, repeated, values)) in enumerate(SCHEMAS[name].items(), 1):
        entry: dict[str, Any] = {
            "name": field_name,
            "number": number,
            "label": "LABEL_REPEATED" if repeated else "LABEL_OPTIONAL",
            "type": kind,
        }
        if kind == ENUM:
            enum_name = field_name[0].upper() + field_name[1:] + "Enum"
            entry["typeName"] = enum_name
            enums.append(
                {
                    "name": enum_name,
                    "value": [{"name": v, "number": i} for i, v in enumerate(values)],
                }
            )
        fields.append(entry)
    return {
        "name": f"customers/{CUSTOMER}/policySchemas/{name}",
        "schemaName": name,
        "policyDescription": f"{leaf}.",
        "definition": {"messageType": [{"name": leaf, "field": fields}], "enumType": enums},
        "supportedPlatforms": ["CHROME_OS"],
        "validTargetResources": ["ORG_UNIT"],
    }


def check_policy_value(name: str, fields: dict[str, Any], mask: list[str]) -> list[str]:
    problems = []
    definition = SCHEMAS[name]
    for field_name, value in fields.items():
        if field_name not in definition:
            problems.append(f"{name} has no field {field_name}")
            continue
        kind, repeated, values = definition[field_name]
        items = value if repeated else [value]
        if repeated and not isinstance(value, list):
            problems.append(f"{field_name} should be a list")
            continue
        for item in items:
            if kind == BOOL and not isinstance(item, bool):
                problems.append(f"{field_name} should be true or false")
            elif kind == STRING and not isinstance(item, str):
                problems.append(f"{field_name} should be text")
            elif kind == ENUM and item not in values:
                problems.append(f"{field_name}={item!r} is not one of {list(values)}")
    if not mask:
        problems.append("updateMask is empty")
    for field_name in mask:
        if field_name not in fields:
            problems.append(f"updateMask names {field_name}, which has no value")
    return problems
