"""The settings editor: switches and lists in, a checked profile out, through the same loader and
the same saving as typed YAML; and what each platform would get, in words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from device_profiles import CompileResult, diff_profiles, profile_sha256
from device_profiles import Profile as ProfileSettings
from device_profiles.descriptions import (
    GROUPS,
    SETTINGS,
    Setting,
    describe_change,
    in_words,
    setting_for,
    target_words,
)
from device_profiles.form import text_from_form
from server.auth.models import User
from server.profiles.models import Profile, ProfileVersion
from server.profiles.services.lookups import get_school, latest_version, loaded
from server.profiles.services.profile_versions import save_version
from server.profiles.services.validation import previews, validate_text

# Anything that is not a general problem is shown next to its setting; these go next to the
# profile's own name and description.
_OWN_FIELDS = ("name", "description")


@dataclass(frozen=True)
class Group:
    """One group of settings on the page."""

    key: str
    title: str
    settings: tuple[Setting, ...]


def groups() -> list[Group]:
    """The settings in the groups a computing lead thinks in."""
    return [
        Group(key, title, tuple(s for s in SETTINGS if s.group == key)) for key, title in GROUPS
    ]


@dataclass(frozen=True)
class PlatformPreview:
    """What one kind of device gets, in words, with the file itself to look at."""

    target: str
    label: str
    enforced: list[str]
    not_enforced: list[tuple[str, str]]  # (setting in words, why)
    notes: list[str]  # e.g. which settings need a supervised iPad
    content: str


@dataclass(frozen=True)
class FormCheck:
    """The form's profile as the loader sees it: problems by field, or the profile and its
    changes against the version in force."""

    text: str
    profile: ProfileSettings | None
    field_errors: dict[str, list[str]] = field(default_factory=dict)
    general_errors: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    platforms: list[PlatformPreview] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(map(len, self.field_errors.values())) + len(self.general_errors)


def _message(error: Mapping[str, Any]) -> str:
    text = in_words(str(error.get("message", "")))
    text = text[:1].upper() + text[1:].rstrip(".") + "."
    allowed = error.get("allowed") or ()
    setting = setting_for(str(error.get("key_path") or ""))
    if allowed and setting is not None and setting.options:
        words = dict(setting.options)
        text += " Choose " + " or ".join(words.get(str(a), str(a)) for a in allowed) + "."
    return text


def errors_by_field(
    errors: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, list[str]], list[str]]:
    """Loader errors (as `ProfileError.as_dict()`) put next to the setting they are about."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for error in errors:
        key_path = str(error.get("key_path") or "")
        setting = setting_for(key_path)
        name = (
            setting.path if setting is not None else key_path if key_path in _OWN_FIELDS else None
        )
        if name is None:
            general.append(_message(error))
        else:
            by_field.setdefault(name, []).append(_message(error))
    return by_field, general


def platform_previews(
    settings: ProfileSettings, results: Mapping[str, CompileResult]
) -> list[PlatformPreview]:
    """Each platform's output summarised: what it enforces, what it cannot and why."""
    found = []
    labels = {s.reported_as: s.label for s in SETTINGS}
    for target, result in results.items():
        cannot: dict[str, str] = {}
        notes: list[str] = []
        for warning in result.warnings:
            if warning.kind == "unsupported" and warning.setting:
                cannot.setdefault(warning.setting, in_words(warning.message))
            else:
                notes.append(in_words(str(warning.message)))
        specified = settings.specified_settings()
        found.append(
            PlatformPreview(
                target=target,
                label=target_words(target),
                enforced=[labels.get(p, p) for p in specified if p not in cannot],
                not_enforced=[(labels.get(p, p), why) for p, why in cannot.items()],
                notes=notes,
                content=result.content.decode("utf-8"),
            )
        )
    return found


def check_form(
    session: Session, profile: Profile, fields: Mapping[str, Sequence[str]]
) -> FormCheck:
    """Turn the posted fields into profile text and check it as typed YAML is checked."""
    text = text_from_form(fields, slug=profile.slug)
    checked = validate_text(text, f"{profile.slug}.yaml")
    if checked.profile is None:
        by_field, general = errors_by_field(e.as_dict() for e in checked.errors)
        return FormCheck(text, None, by_field, general)
    latest = latest_version(session, profile)
    changes = [describe_change(c) for c in diff_profiles(loaded(latest), checked.profile)]
    results = previews(
        checked.profile, school=get_school(session, profile.school_id), version=latest.number
    )
    return FormCheck(
        text,
        checked.profile,
        changes=changes,
        platforms=platform_previews(checked.profile, results),
    )


def save_form(
    session: Session,
    actor: User,
    profile: Profile,
    fields: Mapping[str, Sequence[str]],
    note: str = "",
) -> ProfileVersion | None:
    """Save the form as a new version; None when its settings are those in force already."""
    text = text_from_form(fields, slug=profile.slug)
    checked = validate_text(text, f"{profile.slug}.yaml")
    latest = latest_version(session, profile)
    if checked.profile is not None and profile_sha256(checked.profile) == latest.sha256:
        return None
    return save_version(session, actor, profile, text, note)
