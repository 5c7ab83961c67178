"""Writer for iPadOS: a `.mobileconfig` XML property list (§1.1-1.5)."""

from __future__ import annotations

import plistlib
import uuid
from typing import Any

from device_profiles.compilers.apple_lint import lint_mobileconfig
from device_profiles.compilers.base import CompileResult, CompileWarning, register, unexpressed
from device_profiles.errors import CompileOptionError, LintError
from device_profiles.model import Access, FilterMode, Profile
from device_profiles.urls import bundle_id_problem

MEDIA_TYPE = "application/x-apple-aspen-config"
DEFAULT_IDENTIFIER_PREFIX = "org.trolley"
# The project's fixed namespace: uuid5(NAMESPACE_URL, "urn:trolley:device-profiles"). Never
# change it, or every school's re-exported profile would install beside the old one.
PAYLOAD_NAMESPACE = uuid.UUID("65090d0a-1fed-5348-a81b-84fd9db74af7")

# Profile setting -> restrictions key; "allowed" becomes true (plist keys are sorted on output).
RESTRICTION_KEYS: dict[str, str] = {
    "device.camera": "allowCamera",
    "device.screenshots": "allowScreenShot",
    "device.airdrop": "allowAirDrop",
    "device.bluetooth_changes": "allowBluetoothModification",
    "apps.installation": "allowAppInstallation",
    "apps.removal": "allowAppRemoval",
    "apps.explicit_content": "allowExplicitContent",
    "apps.safari": "allowSafari",
}
SUPERVISED_KEYS = {
    "allowCamera",
    "allowAirDrop",
    "allowBluetoothModification",
    "allowAppInstallation",
    "allowAppRemoval",
    "allowExplicitContent",
    "allowSafari",
}


def payload_uuid(identifier: str) -> str:
    """The deterministic PayloadUUID for a PayloadIdentifier, so re-exports update in place."""
    return str(uuid.uuid5(PAYLOAD_NAMESPACE, identifier)).upper()


def _payload(ptype: str, identifier: str, display_name: str, **keys: Any) -> dict[str, Any]:
    return {
        "PayloadType": ptype,
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": payload_uuid(identifier),
        "PayloadDisplayName": display_name,
        **keys,
    }


def _setting(profile: Profile, path: str) -> Any:
    section, key = path.split(".", 1)
    return getattr(getattr(profile, section), key)


def build_mobileconfig(
    profile: Profile,
    *,
    identifier_prefix: str = DEFAULT_IDENTIFIER_PREFIX,
    organisation: str | None = None,
    removal_disallowed: bool = False,
) -> tuple[dict[str, Any], set[str], list[str]]:
    """The profile as a plist dict, the settings it expresses, and the supervised-only ones."""
    problem = bundle_id_problem(identifier_prefix)
    if problem is not None:
        raise CompileOptionError(
            f"identifier_prefix '{identifier_prefix}' must be reverse DNS, like uk.sch.oakfield",
            key_path="identifier_prefix",
        )
    top_id = f"{identifier_prefix}.{profile.slug}"
    handled: set[str] = set()
    supervised_only: list[str] = []
    content: list[dict[str, Any]] = []

    restrictions: dict[str, Any] = {}
    for path, key in RESTRICTION_KEYS.items():
        value = _setting(profile, path)
        if value is not None:
            restrictions[key] = value is Access.ALLOWED
            handled.add(path)
            if key in SUPERVISED_KEYS and value is Access.BLOCKED:
                supervised_only.append(f"{path} ({key})")
    if profile.apps.allow_list is not None:
        restrictions["allowListedAppBundleIDs"] = list(profile.apps.allow_list)
        handled.add("apps.allow_list")
        supervised_only.append("apps.allow_list (allowListedAppBundleIDs)")
    if restrictions:
        content.append(
            _payload(
                "com.apple.applicationaccess",
                f"{top_id}.restrictions",
                "Restrictions",
                **restrictions,
            )
        )

    wf = profile.web_filter
    if wf.mode is not FilterMode.NONE:
        # iOS 16+ installs a web filter on an unsupervised iPad only with a ContentFilterUUID;
        # derived from the payload's identifier so a re-sent profile replaces the same filter.
        keys: dict[str, Any] = {
            "FilterType": "BuiltIn",
            "ContentFilterUUID": payload_uuid(f"{top_id}.webfilter.content-filter"),
        }
        if wf.mode is FilterMode.ALLOW_LIST_ONLY:
            keys["AllowListBookmarks"] = [{"URL": s.url, "Title": s.title} for s in wf.allowed]
            handled.add("web_filter.allowed_urls")
        elif wf.mode is FilterMode.ADULT_CONTENT_FILTER:
            keys["AutoFilterEnabled"] = True
            if wf.allowed:
                keys["PermittedURLs"] = list(wf.allowed_urls)
            handled.add("web_filter.allowed_urls")
        if wf.blocked_urls:
            keys["DenyListURLs"] = list(wf.blocked_urls)
        handled |= {"web_filter.mode", "web_filter.blocked_urls"}
        supervised_only.append("web_filter (built-in web content filter)")
        content.append(
            _payload("com.apple.webcontent-filter", f"{top_id}.webfilter", "Web filter", **keys)
        )

    pc = profile.passcode
    if pc.required:
        rules = {
            "forcePIN": True,
            "maxInactivity": profile.device.auto_lock_minutes,
            "minLength": pc.min_length,
            "allowSimple": pc.simple_allowed,
            "requireAlphanumeric": pc.alphanumeric_required,
            "minComplexChars": pc.min_complex_chars,
            "maxFailedAttempts": pc.max_failed_attempts,
            "maxPINAgeInDays": pc.max_age_days,
            "pinHistory": pc.history,
        }
        handled |= {p for p in profile.specified_settings() if p.startswith("passcode.")}
        handled.add("device.auto_lock_minutes")
        content.append(
            _payload(
                "com.apple.mobiledevice.passwordpolicy",
                f"{top_id}.passcode",
                "Passcode and auto-lock",
                **{k: v for k, v in rules.items() if v is not None},
            )
        )

    if profile.kiosk is not None and profile.kiosk.app is not None:
        handled.add("kiosk.app")
        supervised_only.append("kiosk.app (App Lock)")
        content.append(
            _payload(
                "com.apple.app.lock",
                f"{top_id}.applock",
                "Single App Mode",
                App={"Identifier": profile.kiosk.app},
            )
        )

    top: dict[str, Any] = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": top_id,
        "PayloadUUID": payload_uuid(top_id),
        "PayloadDisplayName": profile.name,
        "PayloadContent": content,
    }
    if profile.description:
        top["PayloadDescription"] = profile.description
    if organisation:
        top["PayloadOrganization"] = organisation
    if removal_disallowed:
        top["PayloadRemovalDisallowed"] = True
        supervised_only.append("removal_disallowed (PayloadRemovalDisallowed)")
    return top, handled, supervised_only


# Plist key -> profile setting, so lint findings are reported in the school's words.
_LINT_SETTINGS = {
    "DenyListURLs": "web_filter.blocked_urls",
    "PermittedURLs": "web_filter.allowed_urls",
    "AllowListBookmarks": "web_filter.allowed_urls",
}


@register(
    "apple",
    media_type=MEDIA_TYPE,
    description="iPadOS configuration profile (.mobileconfig, XML plist)",
    options={
        "identifier_prefix": str,
        "organisation": str,
        "supervised": bool,
        "removal_disallowed": bool,
    },
)
def compile_apple(
    profile: Profile,
    *,
    identifier_prefix: str = DEFAULT_IDENTIFIER_PREFIX,
    organisation: str | None = None,
    supervised: bool = False,
    removal_disallowed: bool = False,
) -> CompileResult:
    """Compile to an unsigned .mobileconfig; `supervised=True` silences the supervision warning."""
    top, handled, supervised_only = build_mobileconfig(
        profile,
        identifier_prefix=identifier_prefix,
        organisation=organisation,
        removal_disallowed=removal_disallowed,
    )
    warnings = unexpressed(profile, handled, "apple")
    if not top["PayloadContent"]:
        warnings.append(CompileWarning("", "nothing in this profile applies to iPads"))
    if supervised_only and not supervised:
        warnings.append(
            CompileWarning(
                "supervision",
                "these settings only take effect on a supervised iPad (Apple Configurator or "
                "Automated Device Enrollment): " + "; ".join(supervised_only),
                kind="supervision",
            )
        )
    # Supervision is reported above in one place; the lint checks everything else.
    for issue in lint_mobileconfig(top, supervised=True):
        last_key = issue.path.rsplit(".", 1)[-1].split("[", 1)[0]
        setting = _LINT_SETTINGS.get(last_key, issue.path)
        if issue.severity == "error":
            raise LintError(issue.message, key_path=setting)
        warnings.append(CompileWarning(setting, issue.message, kind="lint"))
    content = plistlib.dumps(top, fmt=plistlib.FMT_XML, sort_keys=True)
    return CompileResult(
        target="apple",
        content=content,
        media_type=MEDIA_TYPE,
        filename=f"{profile.slug}.mobileconfig",
        warnings=warnings,
    )
