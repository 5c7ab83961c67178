"""Turn the model back into the profile language (dicts, YAML) and into canonical JSON bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from device_profiles.loader import PROFILE_KEYS
from device_profiles.model import FORMAT, FilterMode, Profile
from device_profiles.urls import default_title


def canonical_json(value: object) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the byte form that hashes are taken over."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def pretty_json(value: object) -> bytes:
    """Key-sorted, indented UTF-8 JSON ending in a newline: the form written to files."""
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def profile_to_dict(profile: Profile, *, include_unset: bool = False) -> dict[str, Any]:
    """The profile in the language's own shape; unset settings are left out unless asked for."""
    p = profile
    out: dict[str, Any] = {
        "format": FORMAT,
        "id": p.slug,
        "name": p.name,
        "description": p.description,
    }
    sections: dict[str, dict[str, Any]] = {
        "device": {
            "camera": p.device.camera,
            "screenshots": p.device.screenshots,
            "airdrop": p.device.airdrop,
            "bluetooth_changes": p.device.bluetooth_changes,
            "auto_lock_minutes": p.device.auto_lock_minutes,
            "wipe_photos_on_return": p.device.wipe_photos_on_return,
            "ephemeral_sessions": p.device.ephemeral_sessions,
        },
        "apps": {
            "installation": p.apps.installation,
            "removal": p.apps.removal,
            "allow_list": None if p.apps.allow_list is None else list(p.apps.allow_list),
            "explicit_content": p.apps.explicit_content,
            "safari": p.apps.safari,
        },
        "web_filter": {
            "mode": p.web_filter.mode,
            "allowed_urls": [
                site.url
                if site.title == default_title(site.url)
                else {
                    "url": site.url,
                    "title": site.title,
                }
                for site in p.web_filter.allowed
            ]
            or None,
            "blocked_urls": list(p.web_filter.blocked_urls) or None,
            "safe_search": p.web_filter.safe_search,
            "youtube_restricted_mode": p.web_filter.youtube_restricted_mode,
        },
        "passcode": {
            "required": p.passcode.required,
            "min_length": p.passcode.min_length,
            "simple_allowed": p.passcode.simple_allowed,
            "alphanumeric_required": p.passcode.alphanumeric_required,
            "min_complex_chars": p.passcode.min_complex_chars,
            "max_failed_attempts": p.passcode.max_failed_attempts,
            "max_age_days": p.passcode.max_age_days,
            "history": p.passcode.history,
        },
        "kiosk": {
            "app": p.kiosk.app if p.kiosk else None,
            "url": p.kiosk.url if p.kiosk else None,
        },
        "browser": {
            "incognito": p.browser.incognito,
            "developer_tools": p.browser.developer_tools,
            "camera": p.browser.camera,
            "microphone": p.browser.microphone,
            "extensions": None
            if p.browser.extensions is None
            else {
                "mode": p.browser.extensions.mode,
                "allowed": list(p.browser.extensions.allowed) or None,
            },
        },
    }
    for name, values in sections.items():
        cleaned: dict[str, Any] = {}
        for key in PROFILE_KEYS[name]:
            value = values[key]
            if isinstance(value, dict) and not include_unset:
                value = {k: v for k, v in value.items() if v is not None}
            if hasattr(value, "value"):  # an enum member: keep the word the YAML uses
                value = value.value
            if isinstance(value, dict):
                value = {k: getattr(v, "value", v) for k, v in value.items()}
            if value is not None or include_unset:
                cleaned[key] = value
        if not include_unset:
            cleaned = _drop_defaults(name, cleaned, profile)
        if cleaned or include_unset:
            out[name] = cleaned
    return out


def _drop_defaults(section: str, values: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """Leave out values that only restate a default, so dumped YAML reads like a person wrote it."""
    if section == "web_filter" and profile.web_filter.mode is FilterMode.NONE:
        values.pop("mode", None)
    if section == "passcode" and not profile.passcode.required:
        values.pop("required", None)
    return values


def dump_profile(profile: Profile) -> str:
    """Profile-language YAML that loads back to an equal Profile."""
    return yaml.safe_dump(
        profile_to_dict(profile),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def profile_sha256(profile: Profile) -> str:
    """A content hash of the profile's settings, stable across key order and formatting."""
    return hashlib.sha256(canonical_json(profile_to_dict(profile, include_unset=True))).hexdigest()
