"""Writer for Chrome/Chromium on Linux: a managed-policy JSON file (policies/managed/*.json)."""

from __future__ import annotations

from typing import Any

from device_profiles.compilers.base import CompileResult, register, unexpressed
from device_profiles.errors import ProfileError
from device_profiles.model import Access, ExtensionsMode, FilterMode, Profile, SafeSearch
from device_profiles.serialise import pretty_json
from device_profiles.urls import MAX_URLS_PER_LIST, chrome_url_filter

# Values from the Chrome policy definitions (§2.2).
YOUTUBE_RESTRICT = {"off": 0, "moderate": 1, "strict": 2}
INCOGNITO_AVAILABLE, INCOGNITO_DISABLED = 0, 1
DEVTOOLS_ALLOWED, DEVTOOLS_DISALLOWED = 1, 2
SAFE_SITES_FILTER_ADULT = 1
# DeveloperToolsAvailability=2 leaves view-source reachable; blocking it closes that gap (§2.2).
VIEW_SOURCE_FILTER = "view-source:*"

# The managed policies each profile setting becomes: what an agent reads back to show it holds.
POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "web_filter.mode": ("URLBlocklist", "URLAllowlist", "SafeSitesFilterBehavior"),
    "web_filter.allowed_urls": ("URLAllowlist",),
    "web_filter.blocked_urls": ("URLBlocklist",),
    "web_filter.safe_search": ("ForceGoogleSafeSearch",),
    "web_filter.youtube_restricted_mode": ("ForceYouTubeRestrict",),
    "browser.incognito": ("IncognitoModeAvailability",),
    "browser.developer_tools": ("DeveloperToolsAvailability",),
    "browser.camera": ("VideoCaptureAllowed",),
    "browser.microphone": ("AudioCaptureAllowed",),
    "browser.extensions": ("ExtensionInstallBlocklist", "ExtensionInstallAllowlist"),
}


def _check_size(policy: str, values: list[str], setting: str) -> None:
    if len(values) > MAX_URLS_PER_LIST:
        raise ProfileError(
            f"{policy} would hold {len(values)} entries; Chrome accepts at most "
            f"{MAX_URLS_PER_LIST}",
            key_path=setting,
        )


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def chrome_policies(profile: Profile) -> tuple[dict[str, Any], set[str]]:
    """The managed Chrome policy dict for a profile, and the settings it expresses."""
    policies: dict[str, Any] = {}
    handled: set[str] = set()
    blocklist: list[str] = []
    allowlist: list[str] = []

    wf = profile.web_filter
    allowed = [chrome_url_filter(url) for url in wf.allowed_urls]
    blocked = [chrome_url_filter(url) for url in wf.blocked_urls]
    if wf.mode is FilterMode.ALLOW_LIST_ONLY:
        # "*" blocks everything; allow entries win over it, and a more specific block entry
        # (a blocked path inside an allowed site) still wins over the allow entry.
        blocklist += ["*", *blocked]
        allowlist += allowed
    elif wf.mode is FilterMode.BLOCK_LIST:
        blocklist += blocked
        allowlist += allowed
    elif wf.mode is FilterMode.ADULT_CONTENT_FILTER:
        policies["SafeSitesFilterBehavior"] = SAFE_SITES_FILTER_ADULT
        blocklist += blocked
        allowlist += allowed
    if wf.mode is not FilterMode.NONE:
        handled |= {"web_filter.mode", "web_filter.allowed_urls", "web_filter.blocked_urls"}
    if wf.safe_search is not None:
        policies["ForceGoogleSafeSearch"] = wf.safe_search is SafeSearch.ENFORCED
        handled.add("web_filter.safe_search")
    if wf.youtube_restricted_mode is not None:
        policies["ForceYouTubeRestrict"] = YOUTUBE_RESTRICT[wf.youtube_restricted_mode.value]
        handled.add("web_filter.youtube_restricted_mode")

    b = profile.browser
    if b.incognito is not None:
        blocked_incognito = b.incognito is Access.BLOCKED
        policies["IncognitoModeAvailability"] = (
            INCOGNITO_DISABLED if blocked_incognito else INCOGNITO_AVAILABLE
        )
        handled.add("browser.incognito")
    if b.developer_tools is not None:
        if b.developer_tools is Access.BLOCKED:
            policies["DeveloperToolsAvailability"] = DEVTOOLS_DISALLOWED
            blocklist.append(VIEW_SOURCE_FILTER)
        else:
            policies["DeveloperToolsAvailability"] = DEVTOOLS_ALLOWED
        handled.add("browser.developer_tools")
    if b.camera is not None:
        policies["VideoCaptureAllowed"] = b.camera is Access.ALLOWED
        handled.add("browser.camera")
    if b.microphone is not None:
        policies["AudioCaptureAllowed"] = b.microphone is Access.ALLOWED
        handled.add("browser.microphone")
    if b.extensions is not None:
        policies["ExtensionInstallBlocklist"] = ["*"]
        if b.extensions.mode is ExtensionsMode.ALLOW_LIST:
            policies["ExtensionInstallAllowlist"] = list(b.extensions.allowed)
        handled.add("browser.extensions")

    if blocklist:
        policies["URLBlocklist"] = _unique(blocklist)
        _check_size("URLBlocklist", policies["URLBlocklist"], "web_filter.blocked_urls")
    if allowlist:
        policies["URLAllowlist"] = _unique(allowlist)
        _check_size("URLAllowlist", policies["URLAllowlist"], "web_filter.allowed_urls")
    return policies, handled


@register(
    "chrome",
    media_type="application/json",
    description="Managed policy JSON for Chrome or Chromium on Linux (policies/managed/)",
)
def compile_chrome(profile: Profile) -> CompileResult:
    """Compile to a managed-policy JSON file for Chrome/Chromium on Linux."""
    policies, handled = chrome_policies(profile)
    warnings = unexpressed(profile, handled, "chrome")
    return CompileResult(
        target="chrome",
        content=pretty_json(policies),
        media_type="application/json",
        filename=f"{profile.slug}.json",
        warnings=warnings,
    )
