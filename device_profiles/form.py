"""The settings editor's fields: filled from a profile, and turned back into profile-language text
that the loader checks exactly as it checks typed YAML.

Fields are named by key path (`device.camera`) and hold lists of strings, as a posted HTML form
does. Nothing here judges a value: a number typed as words reaches the loader as text, and the
loader's message says what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from device_profiles.descriptions import APP_CATALOGUE, SETTINGS, Control, Setting, app_name
from device_profiles.loader import PROFILE_KEYS
from device_profiles.model import FORMAT, Profile
from device_profiles.serialise import profile_to_dict

__all__ = [
    "OTHER_APPS",
    "app_choices",
    "document_from_form",
    "form_values",
    "text_from_form",
]

# The box for apps outside the catalogue, one bundle id a line.
OTHER_APPS = "apps.allow_list.other"
_WHOLE_NUMBER = re.compile(r"^[-+]?\d+$")
_TRUE = ("on", "true", "1", "yes")


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _put(document: dict[str, Any], path: str, value: Any) -> None:
    *sections, key = path.split(".")
    holder = document
    for section in sections:
        holder = holder.setdefault(section, {})
    holder[key] = value


def _line(path: str, item: Any) -> str:
    if isinstance(item, dict):  # an allowed site with its own title
        return f"{item['url']} {item['title']}"
    return str(item)


def _to_fields(setting: Setting, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list):
        if setting.control is Control.APPS:
            return [str(item) for item in value]
        return ["\n".join(_line(setting.path, item) for item in value)]
    return [str(value)]


def form_values(profile: Profile) -> dict[str, list[str]]:
    """The editor's fields filled from a profile, as a browser would post them unchanged."""
    document = profile_to_dict(profile)
    values: dict[str, list[str]] = {
        "name": [profile.name],
        "description": [profile.description],
    }
    for setting in SETTINGS:
        values[setting.path] = _to_fields(setting, _lookup(document, setting.path))
    values[OTHER_APPS] = []
    return values


def app_choices(selected: Sequence[str]) -> list[tuple[str, str, bool]]:
    """Apps to tick: the chosen ones first, in their order, then the rest of the catalogue."""
    chosen = [(bundle, app_name(bundle), True) for bundle in selected]
    taken = {bundle.lower() for bundle in selected}
    rest = [(b, name, False) for b, name in APP_CATALOGUE if b.lower() not in taken]
    return chosen + rest


def _first(fields: Mapping[str, Sequence[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0].strip()


def _lines(fields: Mapping[str, Sequence[str]], name: str) -> list[str]:
    lines = [line.strip() for value in fields.get(name) or () for line in value.splitlines()]
    return [line for line in lines if line]


def _from_fields(setting: Setting, fields: Mapping[str, Sequence[str]]) -> Any:
    path = setting.path
    control = setting.control
    if control is Control.APPS:
        apps = [v.strip() for v in fields.get(path) or () if v.strip()] + _lines(fields, OTHER_APPS)
        return apps or None
    if control is Control.LIST:
        lines = _lines(fields, path)
        if path == "web_filter.allowed_urls":
            return [_site(line) for line in lines] or None
        return lines or None
    raw = _first(fields, path)
    if control is Control.FLAG:
        return True if raw.lower() in _TRUE else None
    if not raw:
        return None
    if control in (Control.NUMBER, Control.MINUTES):
        return int(raw) if _WHOLE_NUMBER.match(raw) else raw
    if control is Control.SWITCH and raw in ("true", "false"):
        return raw == "true"
    return raw


def _site(line: str) -> str | dict[str, str]:
    """`https://example.org Our title` is an address with its bookmark title."""
    url, _, title = line.partition(" ")
    title = title.strip()
    return {"url": url, "title": title} if title else url


def document_from_form(fields: Mapping[str, Sequence[str]], *, slug: str) -> dict[str, Any]:
    """The profile-language document the fields describe; unchecked."""
    document: dict[str, Any] = {"format": FORMAT, "id": slug}
    name = _first(fields, "name")
    if name:
        document["name"] = name
    # Browsers post a text box's line breaks as CR LF; the language keeps plain LF.
    document["description"] = (fields.get("description") or [""])[0].replace("\r\n", "\n")
    for setting in SETTINGS:
        value = _from_fields(setting, fields)
        if value is not None:
            _put(document, setting.path, value)
    return _in_language_order(document, "")


def _in_language_order(document: dict[str, Any], section: str) -> dict[str, Any]:
    """Keys in the order the language lists them, so the text reads like the library's."""
    order = PROFILE_KEYS.get(section, ())
    ordered = {key: document[key] for key in order if key in document}
    ordered.update({key: value for key, value in document.items() if key not in ordered})
    for key, value in ordered.items():
        if isinstance(value, dict):
            ordered[key] = _in_language_order(value, f"{section}.{key}" if section else key)
    return ordered


def text_from_form(fields: Mapping[str, Sequence[str]], *, slug: str) -> str:
    """Profile-language YAML for the fields, for the same loader typed YAML goes through."""
    return yaml.safe_dump(
        document_from_form(fields, slug=slug),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
