"""Schema lint for iPadOS configuration profiles (§1.7).

The key tables below are a vendored subset of Apple's device-management schema (the YAML files
`mdm/profiles/TopLevel.yaml`, `CommonPayloadKeys.yaml`, `com.apple.applicationaccess.yaml`,
`com.apple.webcontent-filter.yaml`, `com.apple.mobiledevice.passwordpolicy.yaml` and
`com.apple.app.lock.yaml` of github.com/apple/device-management, snapshot "iOS 18.1 / macOS 15.1").
Copyright (c) Apple Inc.; used under the MIT-style licence in that repository's LICENSE.txt, whose
notice is kept here. Only the payload types Trolley writes are covered; keys of other payload
types are reported as unchecked rather than guessed.

iPadOS ignores unknown keys silently, so a typo would be a silent failure on the device: here an
unknown key is an error.
"""

from __future__ import annotations

import datetime
import plistlib
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from device_profiles.urls import APPLE_DENY_LIST_SOFT_LIMIT


@dataclass(frozen=True)
class KeySpec:
    """One payload key: its plist type, range, allowed words, supervision and deprecation."""

    type: str  # bool | int | real | str | list | dict | date | data
    supervised: bool = False
    default: object = None
    range: tuple[int, int] | None = None
    choices: tuple[str, ...] = ()
    replaced_by: str | None = None  # set when the key is deprecated
    items: str | None = None  # type of list items, or "bookmark"


def _b(supervised: bool = False, default: bool = True, replaced_by: str | None = None) -> KeySpec:
    return KeySpec("bool", supervised=supervised, default=default, replaced_by=replaced_by)


TOP_LEVEL: dict[str, KeySpec] = {
    "PayloadType": KeySpec("str", choices=("Configuration",)),
    "PayloadVersion": KeySpec("int", range=(1, 1)),
    "PayloadIdentifier": KeySpec("str"),
    "PayloadUUID": KeySpec("str"),
    "PayloadContent": KeySpec("list", items="dict"),
    "PayloadDisplayName": KeySpec("str"),
    "PayloadDescription": KeySpec("str"),
    "PayloadOrganization": KeySpec("str"),
    "PayloadRemovalDisallowed": KeySpec("bool", supervised=True, default=False),
    "PayloadScope": KeySpec("str", choices=("System", "User")),
    "RemovalDate": KeySpec("date"),
    "DurationUntilRemoval": KeySpec("real"),
    "IsEncrypted": KeySpec("bool", default=False),
    "EncryptedPayloadContent": KeySpec("data"),
    "HasRemovalPasscode": KeySpec("bool", default=False),
}
TOP_LEVEL_REQUIRED = ("PayloadType", "PayloadVersion", "PayloadIdentifier", "PayloadUUID")

COMMON: dict[str, KeySpec] = {
    "PayloadType": KeySpec("str"),
    "PayloadVersion": KeySpec("int", range=(1, 1)),
    "PayloadIdentifier": KeySpec("str"),
    "PayloadUUID": KeySpec("str"),
    "PayloadDisplayName": KeySpec("str"),
    "PayloadDescription": KeySpec("str"),
    "PayloadOrganization": KeySpec("str"),
}
COMMON_REQUIRED = ("PayloadType", "PayloadVersion", "PayloadIdentifier", "PayloadUUID")

RESTRICTIONS: dict[str, KeySpec] = {
    # "Support on unsupervised devices is deprecated": treat as needing supervision.
    "allowCamera": _b(supervised=True),
    "allowScreenShot": _b(),
    "allowRemoteScreenObservation": _b(),
    "forceClassroomUnpromptedScreenObservation": _b(supervised=True, default=False),
    "allowAirDrop": _b(supervised=True),
    "allowAirPrint": _b(supervised=True),
    "allowAppClips": _b(supervised=True),
    "allowBluetoothModification": _b(supervised=True),
    "allowExplicitContent": _b(supervised=True),
    "allowBookstoreErotica": _b(supervised=True),
    "allowAppInstallation": _b(supervised=True),
    "allowUIAppInstallation": _b(supervised=True),
    "allowAutomaticAppDownloads": _b(supervised=True),
    "allowAppRemoval": _b(supervised=True),
    "allowSystemAppRemoval": _b(supervised=True),
    "allowInAppPurchases": _b(supervised=True),
    "allowSafari": _b(supervised=True),
    "safariAllowPopups": _b(),
    "safariForceFraudWarning": _b(default=False),
    "forceAutomaticDateAndTime": _b(supervised=True, default=False),
    "allowEraseContentAndSettings": _b(supervised=True),
    "allowPasscodeModification": _b(supervised=True),
    "allowDeviceNameModification": _b(supervised=True),
    "allowWallpaperModification": _b(supervised=True),
    "allowAccountModification": _b(supervised=True),
    "allowUIConfigurationProfileInstallation": _b(supervised=True),
    "allowVPNCreation": _b(supervised=True),
    "allowPersonalHotspotModification": _b(supervised=True),
    "allowUSBRestrictedMode": _b(supervised=True),
    "allowGameCenter": _b(supervised=True),
    "allowMultiplayerGaming": _b(supervised=True),
    "allowAddingGameCenterFriends": _b(supervised=True),
    "allowAssistant": _b(),
    "allowAssistantWhileLocked": _b(),
    "allowDictation": _b(supervised=True),
    "forceAssistantProfanityFilter": _b(supervised=True, default=False),
    "allowChat": _b(supervised=True),
    "allowVideoConferencing": _b(supervised=True),
    "allowCloudPhotoLibrary": _b(),
    "allowCloudBackup": _b(),
    "allowCloudDocumentSync": _b(supervised=True),
    "allowFindMyDevice": _b(supervised=True),
    "allowFindMyFriends": _b(supervised=True),
    "allowGenmoji": _b(supervised=True),
    "allowImagePlayground": _b(supervised=True),
    "allowWritingTools": _b(supervised=True),
    "allowAutoCorrection": _b(supervised=True),
    "ratingApps": KeySpec("int", default=1000),
    "ratingMovies": KeySpec("int", default=1000),
    "ratingTVShows": KeySpec("int", default=1000),
    "ratingRegion": KeySpec("str"),
    "allowListedAppBundleIDs": KeySpec("list", supervised=True, items="str"),
    "blockedAppBundleIDs": KeySpec("list", supervised=True, items="str"),
    "whitelistedAppBundleIDs": KeySpec(
        "list", supervised=True, items="str", replaced_by="allowListedAppBundleIDs"
    ),
    "blacklistedAppBundleIDs": KeySpec(
        "list", supervised=True, items="str", replaced_by="blockedAppBundleIDs"
    ),
    "autonomousSingleAppModePermittedAppIDs": KeySpec("list", supervised=True, items="str"),
}

WEB_FILTER: dict[str, KeySpec] = {
    "FilterType": KeySpec("str", choices=("BuiltIn", "Plugin"), default="BuiltIn"),
    "AutoFilterEnabled": KeySpec("bool", default=False),
    "PermittedURLs": KeySpec("list", items="str"),
    "DenyListURLs": KeySpec("list", items="str"),
    "BlacklistedURLs": KeySpec("list", items="str", replaced_by="DenyListURLs"),
    "AllowListBookmarks": KeySpec("list", items="bookmark"),
    "WhitelistedBookmarks": KeySpec("list", items="bookmark", replaced_by="AllowListBookmarks"),
    "HideDenyListURLs": KeySpec("bool", default=False),
    "UserDefinedName": KeySpec("str"),
    "PluginBundleID": KeySpec("str"),
    "ServerAddress": KeySpec("str"),
    "UserName": KeySpec("str"),
    "Password": KeySpec("str"),
    "PayloadCertificateUUID": KeySpec("str"),
    "Organization": KeySpec("str"),
    "VendorConfig": KeySpec("dict"),
    "FilterBrowsers": KeySpec("bool", default=False),
    "FilterSockets": KeySpec("bool", default=False),
    "ContentFilterUUID": KeySpec("str"),
}

# com.apple.mdm (iOS keys) and com.apple.security.pkcs12: the enrolment profile's payloads.
MDM: dict[str, KeySpec] = {
    "IdentityCertificateUUID": KeySpec("str"),
    "Topic": KeySpec("str"),
    "ServerURL": KeySpec("str"),
    "CheckInURL": KeySpec("str"),
    "SignMessage": KeySpec("bool", default=False),
    "AccessRights": KeySpec("int", range=(1, 8191)),
    "UseDevelopmentAPNS": KeySpec("bool", default=False),
    "ManagedAppleID": KeySpec("str"),
    "AssignedManagedAppleID": KeySpec("str"),
    "EnrollmentMode": KeySpec("str", choices=("BYOD", "ADDE")),
    "ServerURLPinningCertificateUUIDs": KeySpec("list", items="str"),
    "CheckInURLPinningCertificateUUIDs": KeySpec("list", items="str"),
    "PinningRevocationCheckRequired": KeySpec("bool", default=False),
    "ServerCapabilities": KeySpec("list", items="str"),
    "CheckOutWhenRemoved": KeySpec("bool", default=False),
    "RequiredAppIDForMDM": KeySpec("int"),
}
PKCS12: dict[str, KeySpec] = {
    "PayloadCertificateFileName": KeySpec("str"),
    "PayloadContent": KeySpec("data"),
    "Password": KeySpec("str"),
    "AllowAllAppsAccess": KeySpec("bool", default=False),
    "KeyIsExtractable": KeySpec("bool", default=True),
}

PASSCODE: dict[str, KeySpec] = {
    "allowSimple": KeySpec("bool", default=True),
    "forcePIN": KeySpec("bool", default=False),
    "maxFailedAttempts": KeySpec("int", range=(2, 11), default=11),
    "maxInactivity": KeySpec("int", range=(0, 15)),
    "maxPINAgeInDays": KeySpec("int", range=(0, 730)),
    "minComplexChars": KeySpec("int", range=(0, 4), default=0),
    "minLength": KeySpec("int", range=(0, 16), default=0),
    "requireAlphanumeric": KeySpec("bool", default=False),
    "pinHistory": KeySpec("int", range=(1, 50)),
    "maxGracePeriod": KeySpec("int", default=0),
}

APP_LOCK: dict[str, KeySpec] = {"App": KeySpec("dict")}
APP_LOCK_APP: dict[str, KeySpec] = {
    "Identifier": KeySpec("str"),
    "Options": KeySpec("dict"),
    "UserEnabledOptions": KeySpec("dict"),
}
APP_LOCK_OPTIONS = (
    "DisableTouch",
    "DisableDeviceRotation",
    "DisableVolumeButtons",
    "DisableRingerSwitch",
    "DisableSleepWakeButton",
    "DisableAutoLock",
    "EnableVoiceOver",
    "EnableZoom",
    "EnableInvertColors",
    "EnableAssistiveTouch",
    "EnableSpeakSelection",
    "EnableMonoAudio",
    "EnableVoiceControl",
)
APP_LOCK_USER_OPTIONS = ("VoiceOver", "Zoom", "InvertColors", "AssistiveTouch", "VoiceControl")


@dataclass(frozen=True)
class PayloadSchema:
    """The keys of one payload type, whether it needs supervision, and whether it may repeat."""

    keys: dict[str, KeySpec]
    supervised: bool = False
    multiple: bool = True
    required: tuple[str, ...] = ()


PAYLOADS: dict[str, PayloadSchema] = {
    "com.apple.applicationaccess": PayloadSchema(RESTRICTIONS),
    # The built-in filter is installable unsupervised only with a Plugin's ContentFilterUUID.
    "com.apple.webcontent-filter": PayloadSchema(WEB_FILTER, supervised=True),
    "com.apple.mobiledevice.passwordpolicy": PayloadSchema(PASSCODE),
    "com.apple.app.lock": PayloadSchema(
        APP_LOCK, supervised=True, multiple=False, required=("App",)
    ),
    "com.apple.mdm": PayloadSchema(
        MDM, multiple=False, required=("IdentityCertificateUUID", "Topic", "ServerURL")
    ),
    "com.apple.security.pkcs12": PayloadSchema(PKCS12, required=("PayloadContent",)),
}


@dataclass(frozen=True)
class LintIssue:
    """One finding: an error makes the profile unusable, a warning deserves a look."""

    severity: Literal["error", "warning"]
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "real": (int, float),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
    "date": (datetime.datetime,),
    "data": (bytes,),
}


def _type_ok(value: object, kind: str) -> bool:
    # bool is a subclass of int in Python but <true/> is not an <integer/> in a plist.
    if isinstance(value, bool) and kind not in ("bool",):
        return False
    return isinstance(value, _PY_TYPES[kind])


class _Linter:
    def __init__(self, supervised: bool) -> None:
        self.supervised = supervised
        self.issues: list[LintIssue] = []

    def error(self, path: str, message: str) -> None:
        self.issues.append(LintIssue("error", path, message))

    def warn(self, path: str, message: str) -> None:
        self.issues.append(LintIssue("warning", path, message))

    def keys(self, where: str, payload: Mapping[str, Any], table: Mapping[str, KeySpec]) -> None:
        """Check every key of a dict against its table: known, typed, in range, not stale."""
        for key, value in payload.items():
            path = f"{where}.{key}" if where else key
            spec = table.get(key)
            if spec is None:
                self.error(path, "unknown key (the device would ignore it silently)")
                continue
            if not _type_ok(value, spec.type):
                self.error(path, f"must be of type {spec.type}, not {type(value).__name__}")
                continue
            if spec.range is not None and isinstance(value, int):
                low, high = spec.range
                if not low <= value <= high:
                    self.error(path, f"{value} is outside the allowed range {low}-{high}")
            if spec.choices and value not in spec.choices:
                self.error(path, f"'{value}' is not one of {', '.join(spec.choices)}")
            if spec.replaced_by is not None:
                self.warn(path, f"deprecated; use {spec.replaced_by}")
            if spec.items is not None and isinstance(value, list):
                self.items(path, value, spec.items)
            if spec.supervised and not self.supervised and value != spec.default:
                self.warn(path, "only takes effect on a supervised device")

    def items(self, path: str, values: list[Any], kind: str) -> None:
        for index, item in enumerate(values):
            item_path = f"{path}[{index}]"
            if kind == "bookmark":
                if not isinstance(item, dict):
                    self.error(item_path, "must be a dict with URL and Title")
                    continue
                for field in ("URL", "Title"):
                    if not isinstance(item.get(field), str):
                        self.error(f"{item_path}.{field}", "required text is missing")
                extra = sorted(set(item) - {"URL", "Title"})
                if extra:
                    self.error(item_path, f"unknown keys {', '.join(extra)}")
            elif not _type_ok(item, kind):
                self.error(item_path, f"must be of type {kind}, not {type(item).__name__}")

    def payload(self, path: str, payload: Mapping[str, Any]) -> None:
        for key in COMMON_REQUIRED:
            if key not in payload:
                self.error(f"{path}.{key}", "required payload key is missing")
        ptype = payload.get("PayloadType")
        schema = PAYLOADS.get(ptype) if isinstance(ptype, str) else None
        if schema is None:
            self.keys(path, {k: v for k, v in payload.items() if k in COMMON}, COMMON)
            self.warn(path, f"payload type {ptype!r} is not covered by this lint; keys unchecked")
            return
        self.keys(path, payload, {**COMMON, **schema.keys})
        for key in schema.required:
            if key not in payload:
                self.error(f"{path}.{key}", "required key is missing")
        if schema.supervised and not self.supervised:
            self.warn(path, f"{ptype} only takes effect on a supervised device")
        if ptype == "com.apple.webcontent-filter":
            self.web_filter(path, payload)
        if ptype == "com.apple.app.lock" and isinstance(payload.get("App"), dict):
            self.app_lock(f"{path}.App", payload["App"])

    def web_filter(self, path: str, payload: Mapping[str, Any]) -> None:
        if "PermittedURLs" in payload and payload.get("AutoFilterEnabled") is not True:
            self.error(f"{path}.PermittedURLs", "PermittedURLs requires AutoFilterEnabled = true")
        deny = payload.get("DenyListURLs")
        if isinstance(deny, list) and len(deny) > APPLE_DENY_LIST_SOFT_LIMIT:
            self.warn(
                f"{path}.DenyListURLs",
                f"{len(deny)} entries; Apple asks to keep this list to about "
                f"{APPLE_DENY_LIST_SOFT_LIMIT}",
            )

    def app_lock(self, path: str, app: Mapping[str, Any]) -> None:
        self.keys(path, app, APP_LOCK_APP)
        if not isinstance(app.get("Identifier"), str):
            self.error(f"{path}.Identifier", "the app's bundle id is required")
        bool_spec = KeySpec("bool", default=False)
        for key, names in (
            ("Options", APP_LOCK_OPTIONS),
            ("UserEnabledOptions", APP_LOCK_USER_OPTIONS),
        ):
            options = app.get(key)
            if isinstance(options, dict):
                self.keys(f"{path}.{key}", options, dict.fromkeys(names, bool_spec))


def _uuid_ok(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def lint_mobileconfig(
    profile: bytes | Mapping[str, Any], *, supervised: bool = False
) -> list[LintIssue]:
    """Check a .mobileconfig (bytes or parsed dict) against the §1.7 rules.

    `supervised=True` says the profile is for supervised iPads, which silences the warnings
    about supervised-only keys.
    """
    linter = _Linter(supervised)
    if isinstance(profile, bytes):
        try:
            loaded = plistlib.loads(profile)
        except Exception as exc:  # plistlib raises several unrelated types on bad input
            return [LintIssue("error", "", f"not a property list: {exc}")]
        if not isinstance(loaded, dict):
            return [LintIssue("error", "", "the top level must be a dict")]
        top: Mapping[str, Any] = loaded
    else:
        top = profile

    for key in TOP_LEVEL_REQUIRED:
        if key not in top:
            linter.error(key, "required top-level key is missing")
    if "PayloadContent" not in top and top.get("IsEncrypted") is not True:
        linter.error("PayloadContent", "required unless the profile is encrypted")
    linter.keys("", top, TOP_LEVEL)

    content = top.get("PayloadContent")
    payloads = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    for index, payload in enumerate(payloads):
        linter.payload(f"PayloadContent[{index}]", payload)

    identifiers = [top.get("PayloadIdentifier")] + [p.get("PayloadIdentifier") for p in payloads]
    uuids = [top.get("PayloadUUID")] + [p.get("PayloadUUID") for p in payloads]
    for ident, count in Counter(i for i in identifiers if isinstance(i, str)).items():
        if count > 1:
            linter.error("PayloadIdentifier", f"'{ident}' is used {count} times in one profile")
    for upper, count in Counter(u.upper() for u in uuids if isinstance(u, str)).items():
        if count > 1:
            linter.error("PayloadUUID", f"'{upper}' is used {count} times in one profile")
    for index, raw in enumerate(uuids):
        where = "PayloadUUID" if index == 0 else f"PayloadContent[{index - 1}].PayloadUUID"
        if raw is not None and not _uuid_ok(raw):
            linter.error(where, f"'{raw}' is not a UUID")
    types = Counter(p.get("PayloadType") for p in payloads)
    for ptype, schema in PAYLOADS.items():
        if not schema.multiple and types[ptype] > 1:
            linter.error("PayloadContent", f"only one {ptype} payload is allowed per device")
    return linter.issues
