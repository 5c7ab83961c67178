"""Every setting of the profile language described for people: its words, its group, the control
that edits it, and what each platform does with it.

The settings editor is drawn from this table, so a new setting in the language needs one entry
here and no page of its own; a test checks the table covers every key the loader knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from device_profiles.capabilities import TARGET_PLATFORMS, Support, capability
from device_profiles.diff import Change
from device_profiles.loader import AUTO_LOCK_RANGE, PASSCODE_RANGES, PROFILE_KEYS
from device_profiles.model import (
    DEFAULT_AUTO_LOCK_MINUTES,
    Access,
    ExtensionsMode,
    FilterMode,
    SafeSearch,
    YouTubeMode,
)

__all__ = [
    "APP_CATALOGUE",
    "GROUPS",
    "LABELS",
    "NOT_MANAGED",
    "PLATFORM_WORDS",
    "SETTINGS",
    "Control",
    "PlatformNote",
    "Setting",
    "app_name",
    "describe_change",
    "in_words",
    "setting_for",
    "target_words",
    "value_words",
]


class Control(StrEnum):
    """How a setting is edited on the page."""

    SWITCH = "switch"  # two words (allowed/blocked, on/off) or not managed
    CHOICE = "choice"  # one of several words
    NUMBER = "number"  # a whole number in a range
    MINUTES = "minutes"  # a length of time in minutes
    LIST = "list"  # one entry a line
    APPS = "apps"  # iPad apps, ticked from a catalogue or given by bundle id
    TEXT = "text"  # one line of text
    FLAG = "flag"  # on or off, off meaning "leave it out"


# The groups a computing lead thinks in, in the order the editor shows them.
GROUPS: tuple[tuple[str, str], ...] = (
    ("apps", "Apps"),
    ("web", "Web"),
    ("camera", "Camera and photos"),
    ("device", "Device"),
    ("time", "Time limits"),
)

NOT_MANAGED = "Not managed"

# The platforms a profile reaches, in the words a school uses (keys of capabilities.CAPABILITIES).
PLATFORM_WORDS: dict[str, str] = {
    "apple": "iPad",
    "chromeos": "Chromebook",
    "chrome": "Chrome on Linux",
    "linux": "Trolley kiosk",
}

_ACCESS = ((Access.ALLOWED.value, "Allowed"), (Access.BLOCKED.value, "Blocked"))
_ON_OFF = (("true", "On"), ("false", "Off"))


@dataclass(frozen=True)
class Setting:
    """One setting of the language as the editor shows it."""

    path: str  # the key path in the profile language, e.g. device.camera
    label: str
    help: str
    group: str
    control: Control
    options: tuple[tuple[str, str], ...] = ()  # (the language's word, the school's word)
    low: int | None = None
    high: int | None = None
    unit: str = ""
    default: str = ""  # shown when the profile leaves the setting out
    unmanaged: str = NOT_MANAGED  # the words for leaving it out; "" when it cannot be

    @property
    def field_id(self) -> str:
        """The HTML id of the setting's control."""
        return "s-" + self.path.replace(".", "-").replace("_", "-")

    @property
    def reported_as(self) -> str:
        """The setting as compilers and devices name it (`browser.extensions` for its mode)."""
        return ".".join(self.path.split(".")[:2])

    def notes(self) -> list[PlatformNote]:
        """What each platform does with this setting, from the capability table."""
        found = []
        for platform, words in PLATFORM_WORDS.items():
            entry = capability(platform, self.reported_as)
            found.append(PlatformNote(platform, words, entry.support, in_words(entry.text)))
        return found


@dataclass(frozen=True)
class PlatformNote:
    """Whether one platform can enforce a setting, and why not when it cannot."""

    platform: str
    words: str
    support: Support
    text: str


def _choices(*pairs: tuple[object, str]) -> tuple[tuple[str, str], ...]:
    def word(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(getattr(value, "value", value))

    return tuple((word(value), words) for value, words in pairs)


def _range(key: str) -> tuple[int, int]:
    return PASSCODE_RANGES[key]


SETTINGS: tuple[Setting, ...] = (
    # --- apps ---------------------------------------------------------------------------------
    Setting(
        "apps.allow_list",
        "Only approved apps",
        "Tick the apps pupils can open; every other app is hidden. Tick none to allow every app. "
        "Needs a supervised iPad.",
        "apps",
        Control.APPS,
        unmanaged="",
    ),
    Setting(
        "apps.installation",
        "Installing apps",
        "Whether the App Store can install apps.",
        "apps",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "apps.removal",
        "Removing apps",
        "Whether apps can be deleted from the device.",
        "apps",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "apps.explicit_content",
        "Explicit music and video",
        "Music, films, podcasts and books marked explicit in Apple's stores.",
        "apps",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "kiosk.app",
        "Locked to one app",
        "The app's bundle id, for example com.apple.Pages: the device opens only that app. "
        "If only approved apps can open, it must be one of them.",
        "apps",
        Control.TEXT,
        unmanaged="",
    ),
    Setting(
        "browser.extensions.mode",
        "Browser extensions",
        "Extensions added to Chrome.",
        "apps",
        Control.CHOICE,
        _choices(
            (ExtensionsMode.BLOCK_ALL, "Block every extension"),
            (ExtensionsMode.ALLOW_LIST, "Only the extensions listed"),
        ),
    ),
    Setting(
        "browser.extensions.allowed",
        "Extensions allowed",
        "One extension id a line: the 32 letters at the end of its Chrome Web Store address.",
        "apps",
        Control.LIST,
        unmanaged="",
    ),
    # --- web ----------------------------------------------------------------------------------
    Setting(
        "web_filter.mode",
        "Web filter",
        "How websites are filtered on the device itself, on top of the school's own filtering.",
        "web",
        Control.CHOICE,
        _choices(
            (FilterMode.ADULT_CONTENT_FILTER, "Block adult content"),
            (FilterMode.BLOCK_LIST, "Block only the websites listed"),
            (FilterMode.ALLOW_LIST_ONLY, "Only the websites listed"),
        ),
        unmanaged="No web filter",
    ),
    Setting(
        "web_filter.allowed_urls",
        "Websites always allowed",
        "One web address a line, starting https://. A name after the address (with a space) "
        "is the bookmark's title on an iPad.",
        "web",
        Control.LIST,
        unmanaged="",
    ),
    Setting(
        "web_filter.blocked_urls",
        "Websites blocked",
        "One web address a line, starting https://.",
        "web",
        Control.LIST,
        unmanaged="",
    ),
    Setting(
        "web_filter.safe_search",
        "SafeSearch",
        "Google SafeSearch hides explicit search results.",
        "web",
        Control.SWITCH,
        _choices((SafeSearch.ENFORCED, "On"), (SafeSearch.OFF, "Off")),
    ),
    Setting(
        "web_filter.youtube_restricted_mode",
        "YouTube Restricted Mode",
        "Hides videos YouTube marks as mature.",
        "web",
        Control.CHOICE,
        _choices(
            (YouTubeMode.STRICT, "Strict"),
            (YouTubeMode.MODERATE, "Moderate"),
            (YouTubeMode.OFF, "Off"),
        ),
    ),
    Setting(
        "apps.safari",
        "Safari",
        "The iPad's web browser. Blocked hides it completely.",
        "web",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "browser.incognito",
        "Incognito windows",
        "Private windows keep no history, so blocking them keeps browsing checkable.",
        "web",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "browser.developer_tools",
        "Developer tools",
        "Chrome's tools for inspecting web pages.",
        "web",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "kiosk.url",
        "Locked to one web page",
        "A web address starting https://: the device shows only this page (an exam station).",
        "web",
        Control.TEXT,
        unmanaged="",
    ),
    # --- camera and photos --------------------------------------------------------------------
    Setting(
        "device.camera",
        "Camera",
        "The device's own camera.",
        "camera",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "device.screenshots",
        "Screenshots",
        "Screenshots and screen recording; also lets a teacher's app show pupils' screens.",
        "camera",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "device.airdrop",
        "AirDrop",
        "Sending photos and files to nearby Apple devices.",
        "camera",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "device.wipe_photos_on_return",
        "Photos wiped on return",
        "Photos and videos are deleted when the device goes back in the trolley.",
        "camera",
        Control.SWITCH,
        _ON_OFF,
    ),
    Setting(
        "device.ephemeral_sessions",
        "Everything erased at sign-out",
        "Each pupil's files and photos are erased from a Chromebook when they sign out.",
        "camera",
        Control.SWITCH,
        _ON_OFF,
    ),
    Setting(
        "browser.camera",
        "Camera in web pages",
        "Whether websites can use the camera.",
        "camera",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "browser.microphone",
        "Microphone in web pages",
        "Whether websites can use the microphone.",
        "camera",
        Control.SWITCH,
        _ACCESS,
    ),
    # --- device -------------------------------------------------------------------------------
    Setting(
        "device.bluetooth_changes",
        "Bluetooth",
        "Blocked: Bluetooth settings cannot be changed and nothing new can be paired.",
        "device",
        Control.SWITCH,
        _ACCESS,
    ),
    Setting(
        "passcode.required",
        "Passcode",
        "A passcode is needed to unlock the device. The rules below only apply when this is on.",
        "device",
        Control.FLAG,
        unmanaged="",
    ),
    Setting(
        "passcode.min_length",
        "Passcode length",
        "The fewest characters a passcode can have.",
        "device",
        Control.NUMBER,
        low=_range("min_length")[0],
        high=_range("min_length")[1],
        unit="characters",
    ),
    Setting(
        "passcode.simple_allowed",
        "Simple passcodes",
        "Passcodes such as 1234 or 1111.",
        "device",
        Control.SWITCH,
        _choices((True, "Allowed"), (False, "Not allowed")),
    ),
    Setting(
        "passcode.alphanumeric_required",
        "Letters and numbers in the passcode",
        "The passcode must have at least one letter and one number.",
        "device",
        Control.SWITCH,
        _choices((True, "Needed"), (False, "Not needed")),
    ),
    Setting(
        "passcode.min_complex_chars",
        "Symbols in the passcode",
        "The fewest characters that are not a letter or a number.",
        "device",
        Control.NUMBER,
        low=_range("min_complex_chars")[0],
        high=_range("min_complex_chars")[1],
        unit="symbols",
    ),
    Setting(
        "passcode.max_failed_attempts",
        "Wrong passcodes before erasing",
        "Careful: after this many wrong passcodes an iPad erases itself.",
        "device",
        Control.NUMBER,
        low=_range("max_failed_attempts")[0],
        high=_range("max_failed_attempts")[1],
        unit="tries",
    ),
    Setting(
        "passcode.history",
        "Passcodes remembered",
        "How many old passcodes cannot be used again.",
        "device",
        Control.NUMBER,
        low=_range("history")[0],
        high=_range("history")[1],
        unit="passcodes",
    ),
    # --- time limits --------------------------------------------------------------------------
    Setting(
        "device.auto_lock_minutes",
        "Locks itself when idle",
        f"Minutes without use before the screen locks; {DEFAULT_AUTO_LOCK_MINUTES} unless you "
        "choose otherwise.",
        "time",
        Control.MINUTES,
        low=AUTO_LOCK_RANGE[0],
        high=AUTO_LOCK_RANGE[1],
        unit="minutes",
        default=str(DEFAULT_AUTO_LOCK_MINUTES),
        unmanaged="",
    ),
    Setting(
        "passcode.max_age_days",
        "Passcode age",
        "Days before the passcode must be changed (0: never). Needs the passcode on.",
        "time",
        Control.NUMBER,
        low=_range("max_age_days")[0],
        high=_range("max_age_days")[1],
        unit="days",
    ),
)

_BY_PATH = {setting.path: setting for setting in SETTINGS}
# Each setting as compilers and devices name it, in words (the first label where two share
# it), in the language's own order so reports list settings as the profile does.
_LANGUAGE_ORDER = [f"{section}.{key}" for section, keys in PROFILE_KEYS.items() for key in keys]
LABELS: dict[str, str] = {}
for _setting in sorted(SETTINGS, key=lambda s: _LANGUAGE_ORDER.index(s.reported_as)):
    LABELS.setdefault(_setting.reported_as, _setting.label)


def setting_for(key_path: str) -> Setting | None:
    """The setting a key path is in (also of one list entry: `web_filter.allowed_urls[2].url`)."""
    path = re.sub(r"\[\d+\].*$", "", key_path)
    while path:
        if path in _BY_PATH:
            return _BY_PATH[path]
        if "." not in path:  # a whole section (`kiosk`): its first setting
            return next((s for s in SETTINGS if s.path.startswith(path + ".")), None)
        path = path.rpartition(".")[0]
    return None


# Well-known iPad apps, ticked by name instead of typed as bundle ids.
APP_CATALOGUE: tuple[tuple[str, str], ...] = (
    ("com.apple.Preferences", "Settings"),
    ("com.apple.mobilesafari", "Safari"),
    ("com.apple.camera", "Camera"),
    ("com.apple.mobileslideshow", "Photos"),
    ("com.apple.Keynote", "Keynote"),
    ("com.apple.Pages", "Pages"),
    ("com.apple.Numbers", "Numbers"),
    ("com.apple.mobilegarageband", "GarageBand"),
    ("com.apple.clips", "Clips"),
    ("com.apple.iMovie", "iMovie"),
    ("com.apple.Playgrounds", "Swift Playgrounds"),
    ("com.apple.mobilenotes", "Notes"),
    ("com.apple.freeform", "Freeform"),
    ("com.apple.iBooks", "Books"),
    ("com.apple.Maps", "Maps"),
    ("com.apple.calculator", "Calculator"),
    ("com.apple.mobiletimer", "Clock"),
)
_APP_NAMES = {bundle.lower(): name for bundle, name in APP_CATALOGUE}


def app_name(bundle_id: str) -> str:
    """An app's name when it is a well-known one, else its bundle id."""
    return _APP_NAMES.get(bundle_id.lower(), bundle_id)


def value_words(path: str, value: object) -> str:
    """A setting's value in the school's words."""
    if value is None:
        setting = _BY_PATH.get(path)
        if setting is not None and setting.default:
            return f"{setting.default} {setting.unit}".strip()
        return (setting.unmanaged if setting is not None else "") or NOT_MANAGED
    if isinstance(value, list):
        return ", ".join(_item_words(path, item) for item in value) or "none"
    setting = _BY_PATH.get(path)
    raw = str(value).lower() if isinstance(value, bool) else str(getattr(value, "value", value))
    if setting is not None:
        for word, words in setting.options:
            if word == raw:
                return words
        if setting.control is Control.FLAG:
            return "On" if value else "Off"
        if setting.unit:
            return f"{raw} {setting.unit}"
    return raw


def _item_words(path: str, item: object) -> str:
    if isinstance(item, dict):
        return str(item.get("url", ""))
    if path == "apps.allow_list":
        return app_name(str(item))
    return str(item)


_TOP_LABELS = {"name": "Name", "description": "Description", "id": "Id", "format": "Format"}


def describe_change(change: Change) -> str:
    """One change between two versions, in the school's words."""
    setting = _BY_PATH.get(change.path)
    label = setting.label if setting is not None else _TOP_LABELS.get(change.path, change.path)
    if change.added or change.removed:
        parts = []
        if change.added:
            parts.append("added " + ", ".join(_item_words(change.path, i) for i in change.added))
        if change.removed:
            parts.append(
                "removed " + ", ".join(_item_words(change.path, i) for i in change.removed)
            )
        return f"{label}: {'; '.join(parts)}"
    old = value_words(change.path, change.old)
    new = value_words(change.path, change.new)
    return f"{label}: {old} → {new}"


# Whole phrases of the loader's messages that read better rewritten than word by word.
_PHRASES = {
    "add 'required: true' for the passcode rules": "turn “Passcode” on for the passcode rules",
    "the filter mode is none; choose a mode": "there is no web filter; choose one",
    "set passcode.required: true": "turn “Passcode” on",
    "required is true": "“Passcode” is on",
    "mode allow_list": "“Only the extensions listed”",
}
_KEY_NAMES = [setting.path.rpartition(".")[2] for setting in SETTINGS]
# Key names the capability table and the loader's messages use, and the words shown instead.
_KEY_WORDS = {
    **{setting.path: setting.label for setting in SETTINGS},
    # A key named alone when it is no plain English word (min_length) and only one setting has it.
    **{
        setting.path.rpartition(".")[2]: setting.label
        for setting in SETTINGS
        if "_" in setting.path.rpartition(".")[2]
        and _KEY_NAMES.count(setting.path.rpartition(".")[2]) == 1
    },
    **{
        word: words
        for setting in SETTINGS
        for word, words in setting.options
        if "_" in word  # only the language's own words (allow_list_only), never "on"
    },
    "allowed_urls": "Websites always allowed",
    "blocked_urls": "Websites blocked",
    "allow_list": "Only approved apps",
}
_PHRASE_PATTERN = re.compile("|".join(re.escape(p) for p in _PHRASES), re.IGNORECASE)
_KEY_PATTERN = re.compile(
    r"'?(?<![\w.])("
    + "|".join(re.escape(key) for key in sorted(_KEY_WORDS, key=len, reverse=True))
    + r")(?![\w.])'?"
)
_REQUIREMENT_ID = re.compile(r"\s*\(?\bP-[A-Z]+-\d+\b\)?:?")


def in_words(text: str) -> str:
    """Text from the capability table or the loader with the language's key names in words."""
    text = _REQUIREMENT_ID.sub("", text)
    text = _PHRASE_PATTERN.sub(lambda m: _PHRASES[m.group(0).lower()], text)
    return _KEY_PATTERN.sub(lambda m: f"“{_KEY_WORDS[m.group(1)]}”", text)


def target_words(target: str) -> str:
    """The platform a compile target speaks for, in words."""
    return PLATFORM_WORDS[TARGET_PLATFORMS[target]]
