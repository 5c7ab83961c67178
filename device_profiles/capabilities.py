"""What each platform can enforce, setting by setting: the one table behind every writer's warnings
and every agent's `not_supported`.

A platform here is a way a profile reaches a device: a writer's output (`apple`, `chrome`,
`chromeos`) or a kiosk client adapter (`linux`, `simulated`). Each entry says whether the platform
can enforce the setting (`yes`), only in some cases (`partly`, the text says when), or not at
all (`no`, the text says why and what to do instead). A `yes` may still need a facility on the
machine itself (`needs`): a kiosk without it reports the setting `not_supported`, never enforced.

Entries are looked up by key path, then by section ("passcode" covers every passcode.* setting),
then the platform's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from device_profiles.model import Profile

__all__ = [
    "CAPABILITIES",
    "NEEDS",
    "PLATFORMS",
    "TARGET_PLATFORMS",
    "Capability",
    "Support",
    "cannot_enforce",
    "capability",
    "reasons",
]


class Support(StrEnum):
    """Whether a platform can enforce a setting."""

    YES = "yes"
    PARTLY = "partly"
    NO = "no"


@dataclass(frozen=True)
class Capability:
    """How a platform enforces one setting, or why it cannot."""

    support: Support
    text: str
    needs: str = ""  # a key of NEEDS: what the machine must have for a `yes` to hold


# What a kiosk must have for the settings that need it; an agent without it says so.
NEEDS = {
    "idle": "a display session whose idle time the kiosk can read (the X screen saver "
    "extension, or logind)",
    "rfkill": "a Bluetooth radio that rfkill can switch off",
}

_DEFAULT = "*"


def _yes(text: str, needs: str = "") -> Capability:
    return Capability(Support.YES, text, needs)


def _partly(text: str) -> Capability:
    return Capability(Support.PARTLY, text)


def _no(text: str) -> Capability:
    return Capability(Support.NO, text)


_AIRDROP = _no("AirDrop exists only on Apple devices")
_CHROME_POLICY = "Chromium's managed policy"
_ADMIN_CONSOLE = "set it in the Google Admin console"
_SAFARI_SETTINGS = "Safari on iPad has no profile key for this; manage it through the web filter"

_APPLE: dict[str, Capability] = {
    _DEFAULT: _no("iPadOS profiles cannot express this"),
    "device.camera": _yes("restrictions payload (allowCamera)"),
    "device.screenshots": _yes("restrictions payload (allowScreenShot)"),
    "device.airdrop": _yes("restrictions payload (allowAirDrop)"),
    "device.bluetooth_changes": _yes("restrictions payload (allowBluetoothModification)"),
    "device.auto_lock_minutes": _partly(
        "iPadOS only enforces auto-lock through the passcode policy (maxInactivity), which "
        "makes the iPad ask for a passcode; set passcode.required: true to enforce it"
    ),
    "device.wipe_photos_on_return": _no(
        "a profile cannot delete photos; Trolley's wipe-photos command does that"
    ),
    "device.ephemeral_sessions": _no(
        "erasing user data at sign-out is a Chromebook policy; on an iPad Trolley's wipe-photos "
        "command deletes photos on return"
    ),
    "apps": _yes("restrictions payload"),
    "web_filter": _yes("web content filter payload"),
    "web_filter.allowed_urls": _partly(
        "on iPad a block list cannot have exceptions (PermittedURLs needs the adult-content "
        "filter); use mode adult_content_filter, or remove the address from blocked_urls"
    ),
    "web_filter.safe_search": _no(
        "iPadOS has no SafeSearch setting in a profile; enforce it on the school's DNS or "
        "filtering service"
    ),
    "web_filter.youtube_restricted_mode": _no(
        "iPadOS has no YouTube Restricted Mode setting in a profile; enforce it on the school's "
        "DNS or filtering service"
    ),
    "passcode": _yes("passcode policy payload"),
    "kiosk.app": _yes("App Lock payload (Single App Mode)"),
    "kiosk.url": _no(
        "Single App Mode locks an iPad to an app, not a web address; use kiosk.app with a "
        "browser app and an allow_list_only web filter"
    ),
    "browser.incognito": _no("there is no profile key for Safari private browsing"),
    "browser.developer_tools": _no(_SAFARI_SETTINGS),
    "browser.camera": _no("iPadOS has no separate camera switch for web pages; use device.camera"),
    "browser.microphone": _no("iPadOS has no microphone restriction for web pages"),
    "browser.extensions": _no("Safari extensions cannot be managed by this profile"),
}

_CHROME: dict[str, Capability] = {
    _DEFAULT: _no("Chrome policy on Linux cannot express this setting"),
    "device.camera": _no(
        "Chrome policy cannot switch off the computer's camera; use browser.camera for web "
        "pages (the kiosk target carries the device setting)"
    ),
    "device.screenshots": _no(
        "no Chrome policy in the school set controls screenshots; the kiosk target carries it "
        "for the kiosk client"
    ),
    "device.airdrop": _AIRDROP,
    "device.bluetooth_changes": _no(
        "Chrome policy cannot control Bluetooth; the kiosk target carries it for the kiosk client"
    ),
    "device.auto_lock_minutes": _no(
        "Chrome policy has no screen lock; a Trolley kiosk locks its screen after the idle time "
        "where it can read the session's idle time, and reports whether it does (kiosk target)"
    ),
    "device.wipe_photos_on_return": _no("photo wiping is done by the kiosk client (kiosk target)"),
    "device.ephemeral_sessions": _no(
        "erasing user data at sign-out is a ChromeOS device policy; on a Linux kiosk the kiosk "
        "client wipes photos on return"
    ),
    "apps": _no("app installation and app allow lists are iPad settings with no Chrome policy"),
    "apps.safari": _no("Safari exists only on Apple devices"),
    "apps.explicit_content": _no("explicit music and video is an Apple store setting"),
    "web_filter": _yes(f"{_CHROME_POLICY} (URLBlocklist, URLAllowlist, SafeSitesFilterBehavior)"),
    "web_filter.safe_search": _yes(f"{_CHROME_POLICY} (ForceGoogleSafeSearch)"),
    "web_filter.youtube_restricted_mode": _yes(f"{_CHROME_POLICY} (ForceYouTubeRestrict)"),
    "passcode": _no("Chrome policy cannot set the computer's passcode"),
    "kiosk.url": _no(
        "Chrome policy cannot start kiosk mode; the kiosk client launches Chrome with --kiosk "
        "and this address (kiosk target)"
    ),
    "kiosk.app": _no("kiosk.app is an iPad app; Chrome can only show a web address"),
    "browser.incognito": _yes(f"{_CHROME_POLICY} (IncognitoModeAvailability)"),
    "browser.developer_tools": _yes(f"{_CHROME_POLICY} (DeveloperToolsAvailability)"),
    "browser.camera": _yes(f"{_CHROME_POLICY} (VideoCaptureAllowed)"),
    "browser.microphone": _yes(f"{_CHROME_POLICY} (AudioCaptureAllowed)"),
    "browser.extensions": _yes(f"{_CHROME_POLICY} (ExtensionInstallBlocklist)"),
}

_CHROMEOS: dict[str, Capability] = {
    _DEFAULT: _no("this ChromeOS export cannot express the setting"),
    "device.camera": _yes("chrome.users.VideoInput"),
    "device.screenshots": _yes("chrome.users.Screenshot"),
    "device.airdrop": _AIRDROP,
    "device.bluetooth_changes": _no(
        "Bluetooth is a device policy (chrome.devices.Bluetooth), outside this user-policy "
        f"request; {_ADMIN_CONSOLE} (Devices > Settings)"
    ),
    "device.auto_lock_minutes": _no(
        "idle and screen-lock delays are not in this export; "
        f"{_ADMIN_CONSOLE} (Users & browsers > Security > Idle settings)"
    ),
    "device.wipe_photos_on_return": _no(
        "Chromebooks keep no local photo library to wipe; use the kiosk target on Linux devices"
    ),
    "device.ephemeral_sessions": _no(
        "erasing user data at sign-out is a device policy (chrome.devices.WipeUserData), outside "
        "this user-policy request; Trolley sends it when it pushes the profile through Google, "
        f"or {_ADMIN_CONSOLE} (Devices > Settings > User data)"
    ),
    "apps": _no("iPad app settings have no ChromeOS equivalent in this export"),
    "passcode": _no(
        "Chromebooks sign in with the user's account password; "
        f"{_ADMIN_CONSOLE} for screen-lock rules"
    ),
    "web_filter": _yes("chrome.users.UrlBlocking"),
    "web_filter.mode": _partly(
        "the SafeSites adult-content filter's API values are not verified here; "
        f"{_ADMIN_CONSOLE} (SafeSites URL filter); the address lists are exported"
    ),
    "web_filter.safe_search": _yes("chrome.users.SafeSearchRestrictedMode"),
    "web_filter.youtube_restricted_mode": _no(
        "the API's spelling of the YouTube Restricted Mode values is not verified here; "
        f"{_ADMIN_CONSOLE} (SafeSearch and Restricted Mode)"
    ),
    "browser.incognito": _yes("chrome.users.IncognitoMode"),
    "browser.developer_tools": _no(
        "the API's spelling of the developer-tools values is not verified here; "
        f"{_ADMIN_CONSOLE} (Developer tools); view-source is still blocked"
    ),
    "browser.camera": _yes("chrome.users.VideoInput"),
    "browser.microphone": _yes("chrome.users.AudioInput"),
    "browser.extensions": _no(
        "extensions are per-app chrome.users.apps.InstallType requests, which need their own "
        f"batchModify body; {_ADMIN_CONSOLE} (Apps & extensions)"
    ),
    "kiosk": _no(
        "kiosk apps are device settings (chrome.devices.kiosk); "
        f"{_ADMIN_CONSOLE} (Devices > Apps & extensions > Kiosks)"
    ),
}

# Trolley's kiosk client on a Linux PC: Chromium in kiosk mode plus the adapter's own enforcement.
_LINUX: dict[str, Capability] = {
    _DEFAULT: _no("the kiosk client cannot express this"),
    "device.camera": _yes(
        f"{_CHROME_POLICY} (VideoCaptureAllowed) and the camera's device files' permissions"
    ),
    "device.screenshots": _yes(f"{_CHROME_POLICY} (DisableScreenshots, ScreenCaptureAllowed)"),
    "device.airdrop": _AIRDROP,
    "device.bluetooth_changes": _yes("Bluetooth radios switched off with rfkill", "rfkill"),
    "device.auto_lock_minutes": _yes("the kiosk's lock screen after the idle time", "idle"),
    "device.wipe_photos_on_return": _yes("the kiosk deletes its photo folders when told"),
    "device.ephemeral_sessions": _no(
        "erasing user data at sign-out is a ChromeOS device policy; the kiosk client wipes "
        "photos on return instead"
    ),
    "apps": _no("iPad app settings do not apply to the kiosk client's Linux devices"),
    "web_filter": _CHROME["web_filter"],
    "web_filter.safe_search": _CHROME["web_filter.safe_search"],
    "web_filter.youtube_restricted_mode": _CHROME["web_filter.youtube_restricted_mode"],
    "passcode": _no("the kiosk client does not manage the computer's passcode"),
    "kiosk.url": _yes("Chromium started in kiosk mode on the address"),
    "kiosk.app": _no("kiosk.app is an iPad app; the kiosk client can only open a web address"),
    "browser": _yes(_CHROME_POLICY),
    "browser.incognito": _CHROME["browser.incognito"],
    "browser.developer_tools": _CHROME["browser.developer_tools"],
    "browser.camera": _CHROME["browser.camera"],
    "browser.microphone": _CHROME["browser.microphone"],
    "browser.extensions": _CHROME["browser.extensions"],
}

# The fleet simulator pretends to be a kiosk that has every facility.
_SIMULATED = {key: replace(entry, needs="") for key, entry in _LINUX.items()}

CAPABILITIES: Mapping[str, Mapping[str, Capability]] = {
    "apple": _APPLE,
    "chrome": _CHROME,
    "chromeos": _CHROMEOS,
    "linux": _LINUX,
    "simulated": _SIMULATED,
}
PLATFORMS: tuple[str, ...] = tuple(CAPABILITIES)
# Which platform each compile target's warnings speak for.
TARGET_PLATFORMS: Mapping[str, str] = {
    "apple": "apple",
    "chrome": "chrome",
    "chromeos": "chromeos",
    "kiosk": "linux",
}


def capability(platform: str, setting: str) -> Capability:
    """The table's entry for a setting (by key path, then section, then the default)."""
    table = CAPABILITIES[platform]
    section = setting.split(".", 1)[0]
    return table.get(setting) or table.get(section) or table[_DEFAULT]


def reasons(platform: str) -> dict[str, str]:
    """Why the platform cannot (or not always) enforce each setting, for a writer's warnings."""
    return {
        key: entry.text
        for key, entry in CAPABILITIES[platform].items()
        if entry.support is not Support.YES
    }


def cannot_enforce(profile: Profile, platform: str) -> list[tuple[str, Capability]]:
    """Every setting the profile manages that the platform cannot, or not always, enforce."""
    found = []
    for setting in profile.specified_settings():
        entry = capability(platform, setting)
        if entry.support is not Support.YES:
            found.append((setting, entry))
    return found
