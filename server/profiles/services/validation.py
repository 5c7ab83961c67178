"""Checking a profile text: every problem with its line, and what each platform gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from device_profiles import (
    CompileResult,
    CompileWarning,
    ProfileError,
    ProfileValidationError,
    compile_profile,
    load_profile,
)
from device_profiles import Profile as ProfileSettings
from server.errors import ValidationFailed
from server.schools.models import School
from server.schools.services import plural

COMPILE_TARGETS = ("apple", "chrome", "chromeos", "kiosk")
TARGET_LABELS = {
    "apple": "iPad (.mobileconfig)",
    "chrome": "Chrome on Linux (policy JSON)",
    "chromeos": "ChromeOS (Chrome Policy API)",
    "kiosk": "Trolley kiosk client (desired state)",
}
# A stand-in organisational unit so the ChromeOS preview can be shown before one is chosen.
PREVIEW_ORG_UNIT = "your-org-unit-id"
MAX_YAML_CHARS = 200_000


class Validation(NamedTuple):
    """What the loader and every writer said about a text: the profile, errors and warnings."""

    profile: ProfileSettings | None
    errors: list[ProfileError]
    warnings: dict[str, list[CompileWarning]]


def _target_options(
    target: str, *, school: School | None = None, version: int = 1, org_unit_id: str | None = None
) -> dict[str, Any]:
    if target == "apple" and school is not None:
        # The school's own prefix keeps its identifiers apart from any other school's.
        return {"identifier_prefix": f"org.trolley.{school.slug}", "organisation": school.name}
    if target == "chromeos":
        return {"org_unit_id": org_unit_id or PREVIEW_ORG_UNIT}
    if target == "kiosk":
        return {"version": version}
    return {}


def validate_text(yaml_text: str, filename: str = "profile.yaml") -> Validation:
    """Load a profile text and compile it for every target: every error, warnings per target."""
    if len(yaml_text) > MAX_YAML_CHARS:
        error = ProfileError(
            f"the profile is too long ({len(yaml_text):,} characters; at most {MAX_YAML_CHARS:,})",
            file=filename,
        )
        return Validation(None, [error], {})
    try:
        profile = load_profile(yaml_text, filename)
    except ProfileValidationError as exc:
        return Validation(None, list(exc.errors), {})
    except ProfileError as exc:
        return Validation(None, [exc], {})
    errors: list[ProfileError] = []
    warnings: dict[str, list[CompileWarning]] = {}
    for target in COMPILE_TARGETS:
        try:
            warnings[target] = compile_profile(profile, target, **_target_options(target)).warnings
        except ProfileError as exc:
            # A writer that cannot produce a valid file (Apple lint) makes the profile unusable.
            errors.append(
                ProfileError(
                    f"{TARGET_LABELS[target]}: {exc.message}",
                    file=filename,
                    key_path=exc.key_path,
                    allowed=exc.allowed,
                )
            )
    return Validation(None if errors else profile, errors, warnings)


def previews(
    profile: ProfileSettings, *, school: School | None = None, version: int = 1
) -> dict[str, CompileResult]:
    """Each target's output for a valid profile, for the editor's preview."""
    return {
        target: compile_profile(
            profile, target, **_target_options(target, school=school, version=version)
        )
        for target in COMPILE_TARGETS
    }


def _refuse(errors: Sequence[ProfileError]) -> ValidationFailed:
    """The refusal of a text with problems, each with where it is."""
    return ValidationFailed(
        f"The profile has {plural(len(errors), 'problem')}; nothing was saved.",
        details=[e.as_dict() for e in errors],
        code="invalid_profile",
    )
