"""Writer for Trolley's own kiosk client: the desired-state document it enforces (JSON).

Shape of the document (format `trolley-kiosk/1`); `null` means "not managed, leave as is":

    {
      "format": "trolley-kiosk/1",
      "profile_id": "exam-kiosk", "profile_name": "Exam kiosk", "version": 3,
      "auto_lock_minutes": 10,
      "device": {"camera": "allowed"|"blocked"|null, "screenshots": ..., "bluetooth_changes": ...,
                 "wipe_photos_on_return": true|false|null},
      "kiosk": {"url": "https://..."} | null,
      "linux": {"chrome_policy": {...managed policy, exactly as the chrome target writes it...}},
      "settings": ["device.camera", ...every setting the profile manages, in the profile's order],
      "sha256": "<hex>"
    }

`settings` lists every setting of the profile, those the kiosk cannot enforce too: the device
reports each one as `enforced`, `not_supported` (with why) or `failed` (with the error). A
document without it (from an older server) means the settings its other keys carry.

`sha256` is taken over the canonical JSON (sorted keys, no spaces, UTF-8) of the document
without the `sha256` key; `kiosk_document_sha256` computes it, so the device can check what it
received and report which profile hash it applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from device_profiles.compilers.base import CompileResult, register, unexpressed
from device_profiles.compilers.chrome import chrome_policies
from device_profiles.errors import CompileOptionError
from device_profiles.model import Access, Profile
from device_profiles.serialise import canonical_json, pretty_json

KIOSK_FORMAT = "trolley-kiosk/1"
MEDIA_TYPE = "application/json"


def _word(value: Access | None) -> str | None:
    return None if value is None else value.value


def kiosk_document_sha256(document: Mapping[str, Any]) -> str:
    """The hash of a kiosk document: canonical JSON of everything except `sha256` itself."""
    body = {key: value for key, value in document.items() if key != "sha256"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def build_kiosk_document(profile: Profile, *, version: int = 1) -> tuple[dict[str, Any], set[str]]:
    """The desired-state document (with its hash) and the settings it expresses."""
    if version < 1:
        raise CompileOptionError("version must be 1 or more", key_path="version")
    policy, handled = chrome_policies(profile)
    d = profile.device
    document: dict[str, Any] = {
        "format": KIOSK_FORMAT,
        "profile_id": profile.slug,
        "profile_name": profile.name,
        "version": version,
        "auto_lock_minutes": d.auto_lock_minutes,
        "device": {
            "camera": _word(d.camera),
            "screenshots": _word(d.screenshots),
            "bluetooth_changes": _word(d.bluetooth_changes),
            "wipe_photos_on_return": d.wipe_photos_on_return,
        },
        "kiosk": None,
        "linux": {"chrome_policy": policy},
        "settings": list(profile.specified_settings()),
    }
    handled |= {
        "device.auto_lock_minutes",
        "device.camera",
        "device.screenshots",
        "device.bluetooth_changes",
        "device.wipe_photos_on_return",
    }
    if profile.kiosk is not None and profile.kiosk.url is not None:
        document["kiosk"] = {"url": profile.kiosk.url}
        handled.add("kiosk.url")
    document["sha256"] = kiosk_document_sha256(document)
    return document, handled


@register(
    "kiosk",
    media_type=MEDIA_TYPE,
    description="Desired-state document for the Trolley kiosk client (Linux devices)",
    options={"version": int},
)
def compile_kiosk(profile: Profile, *, version: int = 1) -> CompileResult:
    """Compile to the kiosk client's desired-state JSON; `version` is the profile version."""
    document, handled = build_kiosk_document(profile, version=version)
    warnings = unexpressed(profile, handled, "linux")
    return CompileResult(
        target="kiosk",
        content=pretty_json(document),
        media_type=MEDIA_TYPE,
        filename=f"{profile.slug}.kiosk.json",
        warnings=warnings,
    )
