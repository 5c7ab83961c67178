"""The intermediate model: one typed, frozen description of a profile that every writer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

FORMAT = "trolley-profile/1"
FORMAT_VERSION = 1

# P-PROFILE-2: "lock-out after 10 minutes idle" is the default unless a profile says otherwise.
DEFAULT_AUTO_LOCK_MINUTES = 10


class Access(StrEnum):
    """Whether pupils (or staff) may use a feature."""

    ALLOWED = "allowed"
    BLOCKED = "blocked"


class FilterMode(StrEnum):
    """How the web filter decides what may be opened."""

    NONE = "none"
    ALLOW_LIST_ONLY = "allow_list_only"
    BLOCK_LIST = "block_list"
    ADULT_CONTENT_FILTER = "adult_content_filter"


class YouTubeMode(StrEnum):
    """YouTube Restricted Mode levels, named as Google names them."""

    OFF = "off"
    MODERATE = "moderate"
    STRICT = "strict"


class SafeSearch(StrEnum):
    """Whether Google SafeSearch is forced on."""

    ENFORCED = "enforced"
    OFF = "off"


class ExtensionsMode(StrEnum):
    """How browser extensions are managed when the profile manages them at all."""

    ALLOW_LIST = "allow_list"
    BLOCK_ALL = "block_all"


@dataclass(frozen=True)
class DeviceSettings:
    """Hardware and system features; None means "leave the device's own setting alone"."""

    camera: Access | None = None
    screenshots: Access | None = None
    airdrop: Access | None = None
    bluetooth_changes: Access | None = None
    auto_lock_minutes: int = DEFAULT_AUTO_LOCK_MINUTES
    wipe_photos_on_return: bool | None = None
    # Every user's local data erased at sign-out (a Chromebook device policy; P-PHOTO-1).
    ephemeral_sessions: bool | None = None


@dataclass(frozen=True)
class AppSettings:
    """App installation, removal and which apps can be opened at all."""

    installation: Access | None = None
    removal: Access | None = None
    allow_list: tuple[str, ...] | None = None
    explicit_content: Access | None = None
    safari: Access | None = None


@dataclass(frozen=True)
class AllowedSite:
    """A web address on an allow list, with the title Apple shows as a bookmark."""

    url: str
    title: str


@dataclass(frozen=True)
class WebFilter:
    """Web filtering, SafeSearch and YouTube Restricted Mode."""

    mode: FilterMode = FilterMode.NONE
    allowed: tuple[AllowedSite, ...] = ()
    blocked_urls: tuple[str, ...] = ()
    safe_search: SafeSearch | None = None
    youtube_restricted_mode: YouTubeMode | None = None

    @property
    def allowed_urls(self) -> tuple[str, ...]:
        """The allowed addresses without their titles."""
        return tuple(site.url for site in self.allowed)


@dataclass(frozen=True)
class Passcode:
    """Passcode rules; the rules only exist when a passcode is required."""

    required: bool = False
    min_length: int | None = None
    simple_allowed: bool | None = None
    alphanumeric_required: bool | None = None
    min_complex_chars: int | None = None
    max_failed_attempts: int | None = None
    max_age_days: int | None = None
    history: int | None = None


@dataclass(frozen=True)
class Kiosk:
    """Lock the device to one app (iPad bundle id) or one web address; never both."""

    app: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Extensions:
    """Browser extensions: an allow list (everything else blocked) or block them all."""

    mode: ExtensionsMode
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class BrowserSettings:
    """Settings of the web browser itself (Chrome or Chromium)."""

    incognito: Access | None = None
    developer_tools: Access | None = None
    camera: Access | None = None
    microphone: Access | None = None
    extensions: Extensions | None = None


@dataclass(frozen=True)
class Profile:
    """A whole restriction profile, as the school wrote it."""

    slug: str
    name: str
    description: str = ""
    device: DeviceSettings = field(default_factory=DeviceSettings)
    apps: AppSettings = field(default_factory=AppSettings)
    web_filter: WebFilter = field(default_factory=WebFilter)
    passcode: Passcode = field(default_factory=Passcode)
    kiosk: Kiosk | None = None
    browser: BrowserSettings = field(default_factory=BrowserSettings)

    def specified_settings(self) -> tuple[str, ...]:
        """Key paths of every setting this profile manages, in a fixed order.

        Each compiler must either express each of these or warn about it; tests check that no
        setting is ever dropped silently.
        """
        paths: list[str] = []

        def add(path: str, value: object) -> None:
            if value is not None:
                paths.append(path)

        d = self.device
        add("device.camera", d.camera)
        add("device.screenshots", d.screenshots)
        add("device.airdrop", d.airdrop)
        add("device.bluetooth_changes", d.bluetooth_changes)
        add("device.auto_lock_minutes", d.auto_lock_minutes)
        add("device.wipe_photos_on_return", d.wipe_photos_on_return)
        add("device.ephemeral_sessions", d.ephemeral_sessions)
        a = self.apps
        add("apps.installation", a.installation)
        add("apps.removal", a.removal)
        add("apps.allow_list", a.allow_list)
        add("apps.explicit_content", a.explicit_content)
        add("apps.safari", a.safari)
        w = self.web_filter
        if w.mode is not FilterMode.NONE:
            paths.append("web_filter.mode")
            add("web_filter.allowed_urls", w.allowed or None)
            add("web_filter.blocked_urls", w.blocked_urls or None)
        add("web_filter.safe_search", w.safe_search)
        add("web_filter.youtube_restricted_mode", w.youtube_restricted_mode)
        p = self.passcode
        if p.required:
            paths.append("passcode.required")
            add("passcode.min_length", p.min_length)
            add("passcode.simple_allowed", p.simple_allowed)
            add("passcode.alphanumeric_required", p.alphanumeric_required)
            add("passcode.min_complex_chars", p.min_complex_chars)
            add("passcode.max_failed_attempts", p.max_failed_attempts)
            add("passcode.max_age_days", p.max_age_days)
            add("passcode.history", p.history)
        if self.kiosk is not None:
            add("kiosk.app", self.kiosk.app)
            add("kiosk.url", self.kiosk.url)
        b = self.browser
        add("browser.incognito", b.incognito)
        add("browser.developer_tools", b.developer_tools)
        add("browser.camera", b.camera)
        add("browser.microphone", b.microphone)
        add("browser.extensions", b.extensions)
        return tuple(paths)
