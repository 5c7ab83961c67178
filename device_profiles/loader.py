"""Read the YAML profile language into the model, reporting each problem with file, line, key."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from device_profiles.errors import ProfileError, ProfileValidationError
from device_profiles.model import (
    DEFAULT_AUTO_LOCK_MINUTES,
    FORMAT,
    Access,
    AllowedSite,
    AppSettings,
    BrowserSettings,
    DeviceSettings,
    Extensions,
    ExtensionsMode,
    FilterMode,
    Kiosk,
    Passcode,
    Profile,
    SafeSearch,
    WebFilter,
    YouTubeMode,
)
from device_profiles.urls import (
    MAX_URLS_PER_LIST,
    bundle_id_problem,
    default_title,
    extension_id_problem,
    slug_problem,
    slugify,
    url_problem,
)

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL, _FLOAT = (_TAG + t for t in ("str", "int", "bool", "null", "float"))
_DECIMAL = re.compile(r"^[-+]?[0-9]+$")

MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 2000
MAX_TITLE_LENGTH = 200

# Every key the language knows, by section: the single place the loader, its suggestions and
# editor help read from.
PROFILE_KEYS: dict[str, tuple[str, ...]] = {
    "": (
        "format",
        "id",
        "name",
        "description",
        "device",
        "apps",
        "web_filter",
        "passcode",
        "kiosk",
        "browser",
    ),
    "device": (
        "camera",
        "screenshots",
        "airdrop",
        "bluetooth_changes",
        "auto_lock_minutes",
        "wipe_photos_on_return",
        "ephemeral_sessions",
    ),
    "apps": ("installation", "removal", "allow_list", "explicit_content", "safari"),
    "web_filter": (
        "mode",
        "allowed_urls",
        "blocked_urls",
        "safe_search",
        "youtube_restricted_mode",
    ),
    "web_filter.allowed_urls[]": ("url", "title"),
    "passcode": (
        "required",
        "min_length",
        "simple_allowed",
        "alphanumeric_required",
        "min_complex_chars",
        "max_failed_attempts",
        "max_age_days",
        "history",
    ),
    "kiosk": ("app", "url"),
    "browser": ("incognito", "developer_tools", "camera", "microphone", "extensions"),
    "browser.extensions": ("mode", "allowed"),
}

# Ranges come from the Apple passcode schema (§1.4): maxInactivity 0-15, minLength 0-16,
# minComplexChars 0-4, maxFailedAttempts 2-11, maxPINAgeInDays 0-730, pinHistory 1-50.
AUTO_LOCK_RANGE = (0, 15)
PASSCODE_RANGES: dict[str, tuple[int, int]] = {
    "min_length": (0, 16),
    "min_complex_chars": (0, 4),
    "max_failed_attempts": (2, 11),
    "max_age_days": (0, 730),
    "history": (1, 50),
}

E = TypeVar("E", Access, FilterMode, YouTubeMode, SafeSearch, ExtensionsMode)
T = TypeVar("T")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(node: Node) -> str:
    """What a node holds, in words a teacher would use."""
    if isinstance(node, MappingNode):
        return "a section of 'key: value' lines"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "text",
        _INT: "a whole number",
        _FLOAT: "a decimal number",
        _BOOL: "true or false",
        _NULL: "nothing",
    }.get(node.tag, f"a value tagged {node.tag}")


class _Reader:
    """Walks composed YAML nodes, building model values and collecting every error."""

    def __init__(self, filename: str | None) -> None:
        self.filename = filename
        self.errors: list[ProfileError] = []
        self.nodes: dict[str, Node] = {}

    def error(
        self,
        node: Node | None,
        path: str,
        message: str,
        *,
        allowed: Sequence[str] = (),
        suggestion: str | None = None,
    ) -> None:
        """Record one problem at the node's line."""
        line = node.start_mark.line + 1 if node is not None else None
        self.errors.append(
            ProfileError(
                message,
                file=self.filename,
                line=line,
                key_path=path or None,
                allowed=allowed,
                suggestion=suggestion,
            )
        )

    # -- containers ---------------------------------------------------------------------------

    def mapping(self, node: Node, path: str, section: str) -> dict[str, Node] | None:
        """A mapping's values by key; unknown and repeated keys are errors, never ignored."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return {}  # `browser:` with nothing under it is an empty section
        if not isinstance(node, MappingNode):
            self.error(node, path, f"expected a section of 'key: value' lines, found {_kind(node)}")
            return None
        known = PROFILE_KEYS[section]
        values: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                self.error(key_node, path, f"keys must be words, found {_kind(key_node)}")
                continue
            key = key_node.value
            key_path = _join(path, key)
            if key not in known:
                self._unknown_key(key_node, path, section, key)
                continue
            if key in values:
                first = self.nodes[key_path].start_mark.line + 1
                self.error(
                    key_node, key_path, f"this key is repeated (first given on line {first})"
                )
                continue
            values[key] = value_node
            self.nodes[key_path] = key_node
        return values

    def _unknown_key(self, key_node: Node, path: str, section: str, key: str) -> None:
        known = PROFILE_KEYS[section]
        message = f"unknown key '{key}'"
        # A right key in the wrong section is a common slip: point at where it belongs.
        homes = [s for s, keys in PROFILE_KEYS.items() if s and "[" not in s and key in keys]
        if homes:
            suggestion: str | None = _join(homes[0], key)
            message += f"; it belongs in the {' or '.join(repr(h) for h in homes)} section"
        else:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
        self.error(key_node, _join(path, key), message, allowed=known, suggestion=suggestion)

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        """The items of a list node."""
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"expected a list, found {_kind(node)}")
            return None
        return list(node.value)

    # -- scalars ------------------------------------------------------------------------------

    def text(self, node: Node, path: str, *, max_length: int, required: bool = True) -> str | None:
        """A text value (quote numbers or true/false if you mean them as text)."""
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            self.error(node, path, f"expected text, found {_kind(node)}")
            return None
        value = str(node.value)
        if required and not value.strip():
            self.error(node, path, "this cannot be empty")
            return None
        if len(value) > max_length:
            self.error(node, path, f"too long: {len(value)} characters, at most {max_length}")
            return None
        return value

    def choice(self, node: Node, path: str, options: type[E]) -> E | None:
        """One of a fixed set of words; the error lists them."""
        allowed = [o.value for o in options]
        # YAML 1.1 turns a plain `off` or `no` into a boolean; read the word as written instead.
        if isinstance(node, ScalarNode) and (
            node.tag == _STR or (node.tag == _BOOL and node.style is None)
        ):
            raw = str(node.value)
        else:
            self.error(
                node, path, f"expected one of the words below, found {_kind(node)}", allowed=allowed
            )
            return None
        for option in options:
            if option.value == raw:
                return option
        close = difflib.get_close_matches(raw, allowed, n=1, cutoff=0.6)
        self.error(
            node,
            path,
            f"'{raw}' is not a valid choice",
            allowed=allowed,
            suggestion=close[0] if close else None,
        )
        return None

    def boolean(self, node: Node, path: str) -> bool | None:
        """Exactly `true` or `false`; YAML's yes/no/on/off are refused as too easy to misread."""
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            raw = str(node.value).lower()
            if raw in ("true", "false"):
                return raw == "true"
        self.error(
            node,
            path,
            f"expected true or false, found {self._shown(node)}",
            allowed=("true", "false"),
        )
        return None

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        """A whole number in [low, high]."""
        if (
            not isinstance(node, ScalarNode)
            or node.tag != _INT
            or not _DECIMAL.match(str(node.value))
        ):
            self.error(node, path, f"expected a whole number, found {self._shown(node)}")
            return None
        value = int(str(node.value))
        if not low <= value <= high:
            self.error(node, path, f"{value} is out of range: use a number from {low} to {high}")
            return None
        return value

    @staticmethod
    def _shown(node: Node) -> str:
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            return f"'{node.value}' ({_kind(node)})"
        return _kind(node)

    def url(self, node: Node, path: str, *, allow_query: bool = False) -> str | None:
        """A full http(s) web address."""
        value = self.text(node, path, max_length=10_000)
        if value is None:
            return None
        problem = url_problem(value, allow_query=allow_query)
        if problem is not None:
            self.error(node, path, f"'{value}' is not a usable web address: {problem}")
            return None
        return value

    def identifier(self, node: Node, path: str, check: Callable[[str], str | None]) -> str | None:
        """A text identifier checked by `check` (bundle id, extension id)."""
        value = self.text(node, path, max_length=255)
        if value is None:
            return None
        problem = check(value)
        if problem is not None:
            self.error(node, path, f"'{value}' is {problem}")
            return None
        return value

    def items(
        self,
        node: Node,
        path: str,
        read: Callable[[Node, str], T | None],
        *,
        key: Callable[[T], str],
        limit: int | None = None,
        what: str = "entries",
    ) -> tuple[T, ...] | None:
        """A list read item by item; repeats and over-long lists are errors."""
        nodes = self.sequence(node, path)
        if nodes is None:
            return None
        if limit is not None and len(nodes) > limit:
            self.error(
                node,
                path,
                f"{len(nodes)} {what}, but Chrome and ChromeOS accept at most {limit} per list",
            )
        seen: dict[str, int] = {}
        values: list[T] = []
        for index, item_node in enumerate(nodes):
            item_path = f"{path}[{index}]"
            value = read(item_node, item_path)
            if value is None:
                continue
            marker = key(value)
            if marker in seen:
                self.error(item_node, item_path, f"listed twice (first at {path}[{seen[marker]}])")
                continue
            seen[marker] = index
            values.append(value)
        return tuple(values)

    def line_of(self, path: str) -> Node | None:
        """The key node recorded for `path`, for errors found after reading."""
        return self.nodes.get(path)


def _url_key(url: str) -> str:
    return url.lower().rstrip("/")


def _opt(values: dict[str, Node], key: str, read: Callable[[Node], T | None]) -> T | None:
    """Read `key` with `read` when present; None when the profile leaves it out."""
    return read(values[key]) if key in values else None


def _read_device(r: _Reader, values: dict[str, Node]) -> DeviceSettings:
    def access(key: str) -> Access | None:
        return _opt(values, key, lambda n: r.choice(n, f"device.{key}", Access))

    minutes = _opt(
        values,
        "auto_lock_minutes",
        lambda n: r.integer(n, "device.auto_lock_minutes", *AUTO_LOCK_RANGE),
    )
    return DeviceSettings(
        camera=access("camera"),
        screenshots=access("screenshots"),
        airdrop=access("airdrop"),
        bluetooth_changes=access("bluetooth_changes"),
        auto_lock_minutes=DEFAULT_AUTO_LOCK_MINUTES if minutes is None else minutes,
        wipe_photos_on_return=_opt(
            values,
            "wipe_photos_on_return",
            lambda n: r.boolean(n, "device.wipe_photos_on_return"),
        ),
        ephemeral_sessions=_opt(
            values, "ephemeral_sessions", lambda n: r.boolean(n, "device.ephemeral_sessions")
        ),
    )


def _read_apps(r: _Reader, values: dict[str, Node]) -> AppSettings:
    def access(key: str) -> Access | None:
        return _opt(values, key, lambda n: r.choice(n, f"apps.{key}", Access))

    allow_list = None
    if "allow_list" in values:
        node = values["allow_list"]
        allow_list = r.items(
            node,
            "apps.allow_list",
            lambda n, path: r.identifier(n, path, bundle_id_problem),
            key=str.lower,
            what="apps",
        )
        if isinstance(node, SequenceNode) and not node.value:
            r.error(
                node,
                "apps.allow_list",
                "an empty allow list would hide every app; remove the key to allow all apps",
            )
    return AppSettings(
        installation=access("installation"),
        removal=access("removal"),
        allow_list=allow_list,
        explicit_content=access("explicit_content"),
        safari=access("safari"),
    )


def _read_allowed_site(r: _Reader, node: Node, path: str) -> AllowedSite | None:
    if isinstance(node, MappingNode):
        values = r.mapping(node, path, "web_filter.allowed_urls[]")
        if values is None:
            return None
        if "url" not in values:
            r.error(node, path, "each entry needs a url", allowed=("url", "title"))
            return None
        url = r.url(values["url"], f"{path}.url")
        title = (
            r.text(values["title"], f"{path}.title", max_length=MAX_TITLE_LENGTH)
            if "title" in values
            else None
        )
        if url is None or ("title" in values and title is None):
            return None
        return AllowedSite(url=url, title=title or default_title(url))
    url = r.url(node, path)
    return None if url is None else AllowedSite(url=url, title=default_title(url))


def _read_web_filter(r: _Reader, values: dict[str, Node]) -> WebFilter:
    p = "web_filter"
    mode = FilterMode.NONE
    if "mode" in values:
        mode = r.choice(values["mode"], f"{p}.mode", FilterMode) or FilterMode.NONE
    allowed: tuple[AllowedSite, ...] = ()
    blocked: tuple[str, ...] = ()
    if "allowed_urls" in values:
        allowed = (
            r.items(
                values["allowed_urls"],
                f"{p}.allowed_urls",
                lambda n, path: _read_allowed_site(r, n, path),
                key=lambda site: _url_key(site.url),
                limit=MAX_URLS_PER_LIST,
                what="addresses",
            )
            or ()
        )
    if "blocked_urls" in values:
        blocked = (
            r.items(
                values["blocked_urls"],
                f"{p}.blocked_urls",
                lambda n, path: r.url(n, path),
                key=_url_key,
                limit=MAX_URLS_PER_LIST,
                what="addresses",
            )
            or ()
        )
    safe_search = (
        r.choice(values["safe_search"], f"{p}.safe_search", SafeSearch)
        if "safe_search" in values
        else None
    )
    youtube = (
        r.choice(values["youtube_restricted_mode"], f"{p}.youtube_restricted_mode", YouTubeMode)
        if "youtube_restricted_mode" in values
        else None
    )
    _check_filter_lists(r, values, mode)
    return WebFilter(
        mode=mode,
        allowed=allowed,
        blocked_urls=blocked,
        safe_search=safe_search,
        youtube_restricted_mode=youtube,
    )


def _check_filter_lists(r: _Reader, values: dict[str, Node], mode: FilterMode) -> None:
    """Each filter mode needs (or forbids) particular lists."""

    def empty(key: str) -> bool:
        node = values.get(key)
        return node is None or (isinstance(node, SequenceNode) and not node.value)

    mode_node = values.get("mode")
    if mode is FilterMode.NONE:
        for key in ("allowed_urls", "blocked_urls"):
            if not empty(key):
                r.error(
                    values[key],
                    f"web_filter.{key}",
                    "web addresses are listed but the filter mode is none; choose a mode",
                    allowed=[m.value for m in FilterMode if m is not FilterMode.NONE],
                )
    elif mode is FilterMode.ALLOW_LIST_ONLY and empty("allowed_urls"):
        r.error(
            values.get("allowed_urls", mode_node),
            "web_filter.allowed_urls",
            "an allow_list_only filter needs at least one address in allowed_urls, "
            "otherwise every site is blocked",
        )
    elif mode is FilterMode.BLOCK_LIST and empty("blocked_urls"):
        r.error(
            values.get("blocked_urls", mode_node),
            "web_filter.blocked_urls",
            "a block_list filter needs at least one address in blocked_urls",
        )


def _read_passcode(r: _Reader, values: dict[str, Node], node: Node) -> Passcode:
    def number(key: str) -> int | None:
        low, high = PASSCODE_RANGES[key]
        return _opt(values, key, lambda n: r.integer(n, f"passcode.{key}", low, high))

    def flag(key: str) -> bool | None:
        return _opt(values, key, lambda n: r.boolean(n, f"passcode.{key}"))

    required = flag("required")
    rules = [k for k in PROFILE_KEYS["passcode"] if k != "required" and k in values]
    if rules and "required" not in values:
        r.error(
            node,
            "passcode.required",
            f"add 'required: true' for the passcode rules ({', '.join(rules)}) to apply",
        )
    elif rules and required is False:
        r.error(
            values["required"],
            "passcode.required",
            f"passcode rules ({', '.join(rules)}) only apply when required is true",
        )
    return Passcode(
        required=bool(required),
        min_length=number("min_length"),
        simple_allowed=flag("simple_allowed"),
        alphanumeric_required=flag("alphanumeric_required"),
        min_complex_chars=number("min_complex_chars"),
        max_failed_attempts=number("max_failed_attempts"),
        max_age_days=number("max_age_days"),
        history=number("history"),
    )


def _read_kiosk(r: _Reader, values: dict[str, Node], node: Node) -> Kiosk | None:
    app = r.identifier(values["app"], "kiosk.app", bundle_id_problem) if "app" in values else None
    # A kiosk address may carry a query (an exam link often does): it is opened, not matched.
    url = r.url(values["url"], "kiosk.url", allow_query=True) if "url" in values else None
    if "app" in values and "url" in values:
        r.error(
            values["url"],
            "kiosk",
            "a kiosk is one app OR one web address, not both",
            allowed=("app", "url"),
        )
        return None
    if "app" not in values and "url" not in values:
        r.error(node, "kiosk", "a kiosk needs an app or a url", allowed=("app", "url"))
        return None
    if app is None and url is None:
        return None
    return Kiosk(app=app, url=url)


def _read_browser(r: _Reader, values: dict[str, Node]) -> BrowserSettings:
    def access(key: str) -> Access | None:
        return _opt(values, key, lambda n: r.choice(n, f"browser.{key}", Access))

    return BrowserSettings(
        incognito=access("incognito"),
        developer_tools=access("developer_tools"),
        camera=access("camera"),
        microphone=access("microphone"),
        extensions=_opt(values, "extensions", lambda n: _read_extensions(r, n)),
    )


def _read_extensions(r: _Reader, node: Node) -> Extensions | None:
    p = "browser.extensions"
    values = r.mapping(node, p, p)
    if values is None:
        return None
    if "mode" not in values:
        r.error(
            node,
            f"{p}.mode",
            "say how extensions are managed",
            allowed=[m.value for m in ExtensionsMode],
        )
        return None
    mode = r.choice(values["mode"], f"{p}.mode", ExtensionsMode)
    allowed: tuple[str, ...] = ()
    if "allowed" in values:
        allowed = (
            r.items(
                values["allowed"],
                f"{p}.allowed",
                lambda n, path: r.identifier(n, path, extension_id_problem),
                key=str,
                what="extensions",
            )
            or ()
        )
    if mode is ExtensionsMode.BLOCK_ALL and "allowed" in values:
        r.error(
            values["allowed"],
            f"{p}.allowed",
            "block_all blocks every extension; use mode allow_list to allow some",
        )
    if mode is ExtensionsMode.ALLOW_LIST and not allowed and "allowed" not in values:
        r.error(node, f"{p}.allowed", "mode allow_list needs at least one extension id")
    return None if mode is None else Extensions(mode=mode, allowed=allowed)


def _format_ok(r: _Reader, root: Node) -> bool:
    """Check `format:` first: another version has other rules, so report only that."""
    if not isinstance(root, MappingNode):
        return True  # the mapping check reports it
    for key_node, value_node in root.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "format":
            fmt = r.text(value_node, "format", max_length=100)
            if fmt is not None and fmt != FORMAT:
                r.error(
                    value_node,
                    "format",
                    f"this version of Trolley reads {FORMAT}, not {fmt}",
                    allowed=(FORMAT,),
                )
            return fmt == FORMAT
    r.error(
        root,
        "format",
        f"the first line of a profile must be 'format: {FORMAT}'",
        allowed=(FORMAT,),
    )
    return False


def _read_profile(r: _Reader, root: Node) -> Profile | None:
    if not _format_ok(r, root):
        return None
    top = r.mapping(root, "", "")
    if top is None:
        return None

    name = None
    if "name" in top:
        name = r.text(top["name"], "name", max_length=MAX_NAME_LENGTH)
    else:
        r.error(root, "name", "every profile needs a name")
    description = ""
    if "description" in top:
        description = (
            r.text(
                top["description"], "description", max_length=MAX_DESCRIPTION_LENGTH, required=False
            )
            or ""
        )
    slug = None
    if "id" in top:
        slug = r.identifier(top["id"], "id", slug_problem)
    elif name is not None:
        slug = slugify(name)
        if not slug:
            r.error(
                top["name"],
                "id",
                "the name has no letters or digits to make an id from; add an id such as ks1-ipad",
            )

    def section(key: str, read: Callable[[dict[str, Node]], T]) -> T | None:
        if key not in top:
            return None
        values = r.mapping(top[key], key, key)
        return None if values is None else read(values)

    device = section("device", lambda v: _read_device(r, v)) or DeviceSettings()
    apps = section("apps", lambda v: _read_apps(r, v)) or AppSettings()
    web_filter = section("web_filter", lambda v: _read_web_filter(r, v)) or WebFilter()
    passcode = (
        section("passcode", lambda v: _read_passcode(r, v, r.nodes["passcode"])) or Passcode()
    )
    kiosk = section("kiosk", lambda v: _read_kiosk(r, v, r.nodes["kiosk"]))
    browser = section("browser", lambda v: _read_browser(r, v)) or BrowserSettings()

    if kiosk is not None and kiosk.app is not None and apps.allow_list is not None:
        if kiosk.app.lower() not in {b.lower() for b in apps.allow_list}:
            r.error(
                r.line_of("kiosk.app"),
                "kiosk.app",
                f"the kiosk app {kiosk.app} is not in apps.allow_list, so it could not open",
            )

    if name is None or slug is None:
        return None
    return Profile(
        slug=slug,
        name=name,
        description=description,
        device=device,
        apps=apps,
        web_filter=web_filter,
        passcode=passcode,
        kiosk=kiosk,
        browser=browser,
    )


def load_profile(text: str, filename: str | None = None) -> Profile:
    """Parse and validate profile YAML; raise ProfileValidationError listing every problem."""
    reader = _Reader(filename)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "unreadable YAML"
        error = ProfileError(f"not valid YAML: {problem}", file=filename, line=line)
        raise ProfileValidationError([error], file=filename) from exc
    except yaml.YAMLError as exc:
        error = ProfileError(f"not valid YAML: {exc}", file=filename)
        raise ProfileValidationError([error], file=filename) from exc
    if root is None:
        error = ProfileError(
            f"the profile is empty; start with 'format: {FORMAT}'", file=filename, line=1
        )
        raise ProfileValidationError([error], file=filename)
    profile = _read_profile(reader, root)
    if reader.errors or profile is None:
        errors = sorted(reader.errors, key=lambda e: (e.line or 0, e.key_path or ""))
        raise ProfileValidationError(errors, file=filename)
    return profile


def load_profile_file(path: str | os.PathLike[str]) -> Profile:
    """Read a profile file (UTF-8) and load it; errors carry the file's name."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the profile: {exc}", file=file_path.name) from exc
    return load_profile(text, file_path.name)
