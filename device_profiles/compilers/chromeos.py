"""Writer for Chromebooks: a Chrome Policy API `orgunits:batchModify` request body (§2.4).

Chromebooks never read local policy files; an administrator (or the server, later) sends this
body to `POST https://chromepolicy.googleapis.com/v1/customers/my_customer/policies/orgunits:
batchModify` with the scope `https://www.googleapis.com/auth/chrome.management.policy`.

Every request in one body must share a root namespace, so this body holds `chrome.users.*`
schemas only. Schema and field names are the Chrome Policy API's own (its published schema
table). Settings whose API enum spelling we have not verified, or that live in another namespace
(device-level, kiosk, per-app), are reported as warnings, never guessed.
"""

from __future__ import annotations

import re
from typing import Any

from device_profiles.compilers.base import CompileResult, CompileWarning, register, unexpressed
from device_profiles.compilers.chrome import VIEW_SOURCE_FILTER
from device_profiles.errors import CompileOptionError, ProfileError
from device_profiles.model import Access, FilterMode, Profile, SafeSearch
from device_profiles.serialise import pretty_json
from device_profiles.urls import MAX_URLS_PER_LIST, chrome_url_filter

MEDIA_TYPE = "application/json"
INCOGNITO_VALUES = {
    Access.ALLOWED: "INCOGNITO_MODE_AVAILABILITY_ENUM_AVAILABLE",
    Access.BLOCKED: "INCOGNITO_MODE_AVAILABILITY_ENUM_UNAVAILABLE",
}
_ORG_UNIT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Which Chrome policy schemas carry each profile setting this writer expresses, so what Google
# says is in force can be told back setting by setting.
SETTING_SCHEMAS: dict[str, tuple[str, ...]] = {
    "web_filter.mode": ("chrome.users.UrlBlocking",),
    "web_filter.allowed_urls": ("chrome.users.UrlBlocking",),
    "web_filter.blocked_urls": ("chrome.users.UrlBlocking",),
    "web_filter.safe_search": ("chrome.users.SafeSearchRestrictedMode",),
    "browser.incognito": ("chrome.users.IncognitoMode",),
    "device.screenshots": ("chrome.users.Screenshot",),
    "device.camera": ("chrome.users.VideoInput",),
    "browser.camera": ("chrome.users.VideoInput",),
    "browser.microphone": ("chrome.users.AudioInput",),
    "device.ephemeral_sessions": ("chrome.devices.WipeUserData",),
}


def device_policies(profile: Profile) -> dict[str, dict[str, Any]]:
    """The profile's ChromeOS device policies ({schema: value}), sent in a body of their own."""
    values: dict[str, dict[str, Any]] = {}
    if profile.device.ephemeral_sessions is not None:
        values["chrome.devices.WipeUserData"] = {
            "ephemeralUsersEnabled": profile.device.ephemeral_sessions
        }
    return values


def _org_unit_resource(org_unit_id: str) -> str:
    """`orgunits/<id>` from an id given as `03ph8a2z…`, `id:03ph8a2z…` or `orgunits/03ph8a2z…`."""
    raw = org_unit_id.removeprefix("orgunits/").removeprefix("id:")
    if not _ORG_UNIT_ID.match(raw):
        raise CompileOptionError(
            f"'{org_unit_id}' is not an organisational unit id (Admin console ids look like "
            "03ph8a2z1xyz, not a path such as /Students)",
            key_path="org_unit_id",
        )
    return f"orgunits/{raw}"


def _request(resource: str, schema: str, value: dict[str, Any]) -> dict[str, Any]:
    # The update mask names exactly the fields we send; lists are always sent whole because
    # the API cannot edit a list in place ("you have to supply the complete list").
    return {
        "policyTargetKey": {"targetResource": resource},
        "policyValue": {"policySchema": schema, "value": value},
        "updateMask": ",".join(sorted(value)),
    }


@register(
    "chromeos",
    media_type=MEDIA_TYPE,
    description="Chrome Policy API batchModify request body for a ChromeOS organisational unit",
    options={"org_unit_id": str},
    required_options=("org_unit_id",),
)
def compile_chromeos(profile: Profile, *, org_unit_id: str) -> CompileResult:
    """Compile to a batchModify body that applies the profile to one organisational unit."""
    resource = _org_unit_resource(org_unit_id)
    values: dict[str, dict[str, Any]] = {}
    handled: set[str] = set()
    extra: list[CompileWarning] = []

    wf = profile.web_filter
    blocklist: list[str] = []
    allowlist = [chrome_url_filter(url) for url in wf.allowed_urls]
    blocked = [chrome_url_filter(url) for url in wf.blocked_urls]
    if wf.mode is FilterMode.ALLOW_LIST_ONLY:
        blocklist += ["*", *blocked]
    elif wf.mode in (FilterMode.BLOCK_LIST, FilterMode.ADULT_CONTENT_FILTER):
        blocklist += blocked
    if wf.mode is not FilterMode.NONE:
        handled |= {"web_filter.allowed_urls", "web_filter.blocked_urls"}
        if wf.mode is not FilterMode.ADULT_CONTENT_FILTER:
            handled.add("web_filter.mode")
    if profile.browser.developer_tools is Access.BLOCKED:
        blocklist.append(VIEW_SOURCE_FILTER)
    if blocklist or allowlist:
        url_blocking: dict[str, Any] = {}
        if blocklist:
            url_blocking["urlBlocklist"] = list(dict.fromkeys(blocklist))
        if allowlist:
            url_blocking["urlAllowlist"] = list(dict.fromkeys(allowlist))
        for field, entries in url_blocking.items():
            if len(entries) > MAX_URLS_PER_LIST:
                raise ProfileError(
                    f"{field} would hold {len(entries)} entries; ChromeOS accepts at most "
                    f"{MAX_URLS_PER_LIST}",
                    key_path="web_filter",
                )
        values["chrome.users.UrlBlocking"] = url_blocking

    if wf.safe_search is not None:
        values["chrome.users.SafeSearchRestrictedMode"] = {
            "forceGoogleSafeSearch": wf.safe_search is SafeSearch.ENFORCED
        }
        handled.add("web_filter.safe_search")

    b = profile.browser
    if b.incognito is not None:
        values["chrome.users.IncognitoMode"] = {
            "incognitoModeAvailability": INCOGNITO_VALUES[b.incognito]
        }
        handled.add("browser.incognito")
    if profile.device.screenshots is not None:
        values["chrome.users.Screenshot"] = {
            "disableScreenshots": profile.device.screenshots is Access.BLOCKED
        }
        handled.add("device.screenshots")

    # ChromeOS has one camera switch for web pages and apps alike (chrome.users.VideoInput).
    cameras = {"device.camera": profile.device.camera, "browser.camera": b.camera}
    set_cameras = {path: value for path, value in cameras.items() if value is not None}
    if set_cameras:
        allowed = all(value is Access.ALLOWED for value in set_cameras.values())
        values["chrome.users.VideoInput"] = {"videoCaptureAllowed": allowed}
        handled |= set(set_cameras)
        if len(set(set_cameras.values())) > 1:
            extra.append(
                CompileWarning(
                    "browser.camera" if b.camera is Access.ALLOWED else "device.camera",
                    "device.camera and browser.camera differ, but ChromeOS has one camera "
                    "switch for apps and web pages; the camera is blocked for both",
                )
            )
    if b.microphone is not None:
        values["chrome.users.AudioInput"] = {"audioCaptureAllowed": b.microphone is Access.ALLOWED}
        handled.add("browser.microphone")

    body = {"requests": [_request(resource, schema, values[schema]) for schema in sorted(values)]}
    warnings = unexpressed(profile, handled, "chromeos")
    return CompileResult(
        target="chromeos",
        content=pretty_json(body),
        media_type=MEDIA_TYPE,
        filename=f"{profile.slug}.chromeos-batchModify.json",
        warnings=warnings + extra,
    )
