"""Restriction profiles: versions, assignment, resolution, desired state, compliance, exceptions.

Public functions that change something commit once; helpers documented as "joins the caller's
transaction" (the worker's `mark_published` and `record_applied`, `recompute_desired`,
`expire_exceptions`) flush and leave the commit to their caller.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from device_profiles import (
    TARGETS,
    Change,
    CompileResult,
    CompileWarning,
    ProfileError,
    ProfileValidationError,
    SigningIdentity,
    builtin_profile_texts,
    builtin_profiles,
    compile_profile,
    diff_profiles,
    load_profile,
    load_signing_identity,
    profile_sha256,
    sign_mobileconfig,
    with_filter_exceptions,
)
from device_profiles import Profile as ProfileSettings
from device_profiles.urls import MAX_SLUG_LENGTH, url_problem
from server.activity.models import ActivityEntry
from server.activity.services import record
from server.auth.models import User
from server.auth.permissions import ROLE_PERMISSIONS, Permission, has_permission
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.profiles.models import (
    CLEARED_SHA256,
    DeviceDesiredState,
    DeviceGroup,
    DeviceGroupMember,
    DeviceProfileStatus,
    ExceptionStatus,
    FilterException,
    Profile,
    ProfileAssignment,
    ProfileVersion,
    TargetType,
)
from server.schools.models import Location, School
from server.schools.services import location_path

log = logging.getLogger(__name__)

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
MAX_EXCEPTION_DAYS = 14
MAX_EXCEPTION_URLS = 20
MAX_EXCEPTION_LEAD_DAYS = 60
EXCEPTION_TARGETS = (TargetType.LOCATION, TargetType.GROUP, TargetType.DEVICE)
FILTERING_ACTIONS = ("profile.", "device_group.", "filter_exception.")


# --- permissions and lookups ----------------------------------------------------------------


def _require(actor: User, permission: Permission) -> None:
    if not has_permission(actor.role, permission):
        raise Forbidden("Your role does not allow this. Ask your computing lead.")


def _require_staff(actor: User) -> None:
    """Staff who may ask for filter exceptions, or who manage filtering."""
    if not (_manages(actor) or has_permission(actor.role, Permission.LOANS_USE)):
        raise Forbidden("Your role does not allow this. Ask your computing lead.")


def _require_manage(actor: User) -> None:
    # P-PROFILE-4: only the 'web filtering management' role changes or reads filtering.
    _require(actor, Permission.FILTERING_MANAGE)


def get_profile(session: Session, actor: User, profile_id: int) -> Profile:
    """One of the actor's school's profiles (404 otherwise)."""
    _require_manage(actor)
    profile = session.scalar(
        select(Profile).where(Profile.id == profile_id, Profile.school_id == actor.school_id)
    )
    if profile is None:
        raise NotFound("There is no such profile in your school.")
    return profile


def list_profiles(
    session: Session, actor: User, *, include_archived: bool = False
) -> Sequence[Profile]:
    """The school's profiles by name."""
    _require_manage(actor)
    query = select(Profile).where(Profile.school_id == actor.school_id)
    if not include_archived:
        query = query.where(Profile.archived.is_(False))
    return session.scalars(query.order_by(Profile.archived, Profile.name)).all()


def versions(session: Session, profile: Profile) -> Sequence[ProfileVersion]:
    """Every version of a profile, newest first."""
    return session.scalars(
        select(ProfileVersion)
        .where(ProfileVersion.profile_id == profile.id)
        .order_by(ProfileVersion.number.desc())
    ).all()


def latest_version(session: Session, profile: Profile) -> ProfileVersion:
    """The newest version (every profile has at least one)."""
    version = session.scalar(
        select(ProfileVersion)
        .where(ProfileVersion.profile_id == profile.id)
        .order_by(ProfileVersion.number.desc())
        .limit(1)
    )
    if version is None:  # pragma: no cover - create_profile always writes version 1
        raise NotFound("This profile has no saved version.")
    return version


def get_version(session: Session, profile: Profile, number: int) -> ProfileVersion:
    """Version `number` of `profile` (404 otherwise)."""
    version = session.scalar(
        select(ProfileVersion).where(
            ProfileVersion.profile_id == profile.id, ProfileVersion.number == number
        )
    )
    if version is None:
        raise NotFound(f"{profile.name} has no version {number}.")
    return version


def get_school(session: Session, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None:  # pragma: no cover - every user belongs to a school
        raise NotFound("No such school.")
    return school


# --- validation -----------------------------------------------------------------------------


class Validation(NamedTuple):
    """What the loader and every writer said about a text: the profile, errors and warnings."""

    profile: ProfileSettings | None
    errors: list[ProfileError]
    warnings: dict[str, list[CompileWarning]]


def _target_options(
    target: str,
    *,
    school: School | None = None,
    version: int = 1,
    org_unit_id: str | None = None,
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
    noun = "problem" if len(errors) == 1 else "problems"
    return ValidationFailed(
        f"The profile has {len(errors)} {noun}; nothing was saved.",
        details=[e.as_dict() for e in errors],
        code="invalid_profile",
    )


# --- profile texts --------------------------------------------------------------------------

BLANK_TEXT = """format: trolley-profile/1
id: {slug}
name: {name}
description: {description}

device:
  auto_lock_minutes: 10   # P-PROFILE-2: lock after 10 minutes idle
"""


def slugify(name: str) -> str:
    """A profile id from its name: lower-case words joined by hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")


def _scalar(text: str) -> str:
    """`text` as a YAML value: plain when it reads back unchanged, else double-quoted."""
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    # JSON strings are valid YAML double-quoted scalars, so any name is written safely.
    return json.dumps(text, ensure_ascii=False)


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip() + "\n"


def _set_top_level(text: str, key: str, value: str) -> str:
    """Replace a top-level `key:` line, or add it after the `format:` line (or at the top)."""
    line = f"{key}: {value}"
    pattern = re.compile(rf"^{key}:[^\n]*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _m: line, text, count=1)
    fmt = re.compile(r"^format:[^\n]*$", re.MULTILINE).search(text)
    if fmt:
        return text[: fmt.end()] + "\n" + line + text[fmt.end() :]
    return line + "\n" + text


def with_identity(yaml_text: str, name: str) -> str:
    """The text with its top-level `id` and `name` set from `name`.

    A copy of a library profile thus gets its own id, and so its own Apple identifiers.
    """
    text = _set_top_level(_normalise(yaml_text), "id", slugify(name))
    return _set_top_level(text, "name", _scalar(name))


def library() -> dict[str, str]:
    """Built-in starting points by id, with their names: {"ks2-ipad": "KS2 iPad", ...}."""
    return {slug: profile.name for slug, profile in builtin_profiles().items()}


def starting_text(name: str, start_from: str | None = None) -> str:
    """The first text of a new profile: a library profile renamed, or a blank one."""
    if not start_from:
        return BLANK_TEXT.format(
            slug=slugify(name), name=_scalar(name), description=_scalar(f"{name}.")
        )
    texts = builtin_profile_texts()
    if start_from not in texts:
        raise ValidationFailed(
            f"There is no built-in profile called {start_from!r}. "
            f"Choose one of: {', '.join(sorted(texts))}."
        )
    return with_identity(texts[start_from], name)


def _check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > 120:
        raise ValidationFailed("Give the profile a name of up to 120 characters.")
    if not slugify(name):
        raise ValidationFailed("Use some letters or digits in the profile's name.")
    return name


# --- creating and saving versions -----------------------------------------------------------


def create_profile(
    session: Session,
    actor: User,
    *,
    name: str,
    yaml_text: str | None = None,
    note: str = "",
    start_from: str | None = None,
) -> Profile:
    """A new profile and its version 1, from a text, a library profile or a blank start."""
    _require_manage(actor)
    name = _check_name(name)
    slug = slugify(name)
    if yaml_text and yaml_text.strip():
        text = with_identity(yaml_text, name)
    else:
        text = _normalise(starting_text(name, start_from))
    checked = validate_text(text, f"{slug}.yaml")
    if checked.profile is None:
        raise _refuse(checked.errors)
    exists = session.scalar(
        select(Profile.id).where(Profile.school_id == actor.school_id, Profile.slug == slug)
    )
    if exists is not None:
        raise Conflict(f"There is already a profile called {name!r} (id {slug}). Pick a new name.")
    profile = Profile(school_id=actor.school_id, slug=slug, name=checked.profile.name)
    session.add(profile)
    session.flush()
    version = ProfileVersion(
        profile_id=profile.id,
        number=1,
        yaml_text=text,
        sha256=profile_sha256(checked.profile),
        note=note.strip()[:500] or "First version",
        created_by_id=actor.id,
    )
    session.add(version)
    record(
        session,
        actor=actor,
        action="profile.created",
        school_id=actor.school_id,
        target_type="profile",
        target_id=profile.id,
        details={"name": profile.name, "slug": slug, "start_from": start_from, "version": 1},
    )
    _commit(session)
    log.info("profile %s created in school %s", slug, actor.school_id)
    return profile


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "Someone else changed this at the same moment. Reload the page and try again."
        ) from exc


def _id_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("id:"):
            return number
    return None


def save_version(
    session: Session, actor: User, profile: Profile, yaml_text: str, note: str = ""
) -> ProfileVersion | None:
    """Save a new version after validating it; None (nothing saved) when the text is unchanged."""
    _require_manage(actor)
    if profile.school_id != actor.school_id:
        raise NotFound("There is no such profile in your school.")
    if profile.archived:
        raise Conflict("This profile is archived. Restore it before changing it.")
    text = _normalise(yaml_text)
    latest = latest_version(session, profile)
    if text == latest.yaml_text:
        return None
    filename = f"{profile.slug}.yaml"
    checked = validate_text(text, filename)
    errors = list(checked.errors)
    if checked.profile is not None and checked.profile.slug != profile.slug:
        errors.append(
            ProfileError(
                f"the id must stay '{profile.slug}': iPads know the profile by it, and a new id "
                "would install a second profile next to the old one",
                file=filename,
                line=_id_line(text),
                key_path="id",
                allowed=[profile.slug],
            )
        )
    if errors or checked.profile is None:
        raise _refuse(errors)
    changes = diff_profiles(load_profile(latest.yaml_text, filename), checked.profile)
    version = ProfileVersion(
        profile_id=profile.id,
        number=latest.number + 1,
        yaml_text=text,
        sha256=profile_sha256(checked.profile),
        note=note.strip()[:500],
        created_by_id=actor.id,
    )
    session.add(version)
    profile.name = checked.profile.name
    session.flush()
    record(
        session,
        actor=actor,
        action="profile.version_saved",
        school_id=profile.school_id,
        target_type="profile",
        target_id=profile.id,
        details={
            "name": profile.name,
            "version": version.number,
            "note": version.note,
            "changes": [c.describe() for c in changes][:100] or ["only comments or layout"],
        },
    )
    if _is_assigned(session, profile):
        recompute_desired(session, profile.school_id)
    _commit(session)
    return version


def set_archived(session: Session, actor: User, profile: Profile, archived: bool) -> None:
    """Archive a profile nobody uses any more (or restore it)."""
    _require_manage(actor)
    if profile.school_id != actor.school_id:
        raise NotFound("There is no such profile in your school.")
    if archived and _is_assigned(session, profile):
        raise Conflict("This profile is still assigned. Remove its assignments first.")
    if profile.archived == archived:
        return
    profile.archived = archived
    record(
        session,
        actor=actor,
        action="profile.archived" if archived else "profile.restored",
        school_id=profile.school_id,
        target_type="profile",
        target_id=profile.id,
        details={"name": profile.name},
    )
    session.commit()


def _is_assigned(session: Session, profile: Profile) -> bool:
    return (
        session.scalar(
            select(ProfileAssignment.id).where(ProfileAssignment.profile_id == profile.id).limit(1)
        )
        is not None
    )


def loaded(version: ProfileVersion) -> ProfileSettings:
    """The settings of a saved version (saved versions always load)."""
    return load_profile(version.yaml_text, f"{version.profile.slug}.yaml")


@dataclass(frozen=True)
class HistoryEntry:
    """A version with what changed since the one before it."""

    version: ProfileVersion
    changes: list[Change]
    first: bool

    @property
    def summary(self) -> list[str]:
        if self.first:
            return ["First version"]
        return [c.describe() for c in self.changes] or ["Only comments or layout changed"]


def history(session: Session, actor: User, profile: Profile) -> list[HistoryEntry]:
    """Every version, newest first, each with its diff from the previous one (P-PROFILE-4)."""
    _require_manage(actor)
    if profile.school_id != actor.school_id:
        raise NotFound("There is no such profile in your school.")
    ordered = list(reversed(versions(session, profile)))
    entries: list[HistoryEntry] = []
    previous: ProfileSettings | None = None
    for version in ordered:
        current = loaded(version)
        changes = [] if previous is None else diff_profiles(previous, current)
        entries.append(HistoryEntry(version, changes, previous is None))
        previous = current
    return list(reversed(entries))


def signing_identity(
    settings: object, session: Session | None = None, box: Any = None, school_id: int | None = None
) -> SigningIdentity | None:
    """The configured signing certificate and key, else the school CA's own signing identity."""
    cert_path = getattr(settings, "profile_signing_cert", None)
    key_path = getattr(settings, "profile_signing_key", None)
    if not cert_path or not key_path:
        if session is None or box is None or school_id is None:
            return None
        from server.enrolment.services import school_signing_identity

        identity: SigningIdentity = school_signing_identity(session, box, school_id)
        return identity
    try:
        return load_signing_identity(Path(cert_path).read_bytes(), Path(key_path).read_bytes())
    except (OSError, ProfileError):
        log.exception("the profile-signing certificate or key cannot be used")
        return None


def preview(
    session: Session, version: ProfileVersion, target: str, *, org_unit_id: str | None = None
) -> CompileResult:
    """One target's output for a saved version (ChromeOS with a stand-in unit unless given)."""
    if target not in TARGETS:
        raise ValidationFailed(
            f"Unknown output {target!r}; choose one of {', '.join(COMPILE_TARGETS)}."
        )
    school = get_school(session, version.profile.school_id)
    try:
        return compile_profile(
            loaded(version),
            target,
            **_target_options(
                target, school=school, version=version.number, org_unit_id=org_unit_id
            ),
        )
    except ProfileError as exc:
        raise ValidationFailed(exc.describe(), details=[exc.as_dict()]) from exc


def export(
    session: Session,
    version: ProfileVersion,
    target: str,
    *,
    sign: bool,
    identity: SigningIdentity | None,
    now: datetime,
    org_unit_id: str | None = None,
) -> CompileResult:
    """A download: the target's file for a version, signed for iPads when asked and possible."""
    if target == "chromeos" and not (org_unit_id or "").strip():
        raise ValidationFailed(
            "Give the ChromeOS organisational unit id (from the Google Admin console) to export "
            "for ChromeOS."
        )
    result = preview(session, version, target, org_unit_id=(org_unit_id or "").strip() or None)
    filename = result.filename.replace(
        version.profile.slug, f"{version.profile.slug}-v{version.number}", 1
    )
    result = dataclasses.replace(result, filename=filename)
    if not sign:
        return result
    if target != "apple":
        raise ValidationFailed("Only iPad profiles (.mobileconfig) are signed.")
    if identity is None:
        raise ValidationFailed(
            "Profile signing is not set up for this school yet, so only the unsigned profile can "
            "be downloaded. iPads will show it as 'Not verified'."
        )
    try:
        signed = sign_mobileconfig(
            result.content, identity.certificate, identity.private_key, identity.chain, now=now
        )
    except ProfileError as exc:
        raise ValidationFailed(f"The profile could not be signed: {exc.message}.") from exc
    return dataclasses.replace(
        result, content=signed, filename=filename.replace(".mobileconfig", ".signed.mobileconfig")
    )


# --- targets: the school, places, groups, devices -------------------------------------------


def _location(session: Session, school_id: int, location_id: int) -> Location:
    location = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if location is None:
        raise NotFound("There is no such place in your school.")
    return location


def _device(session: Session, school_id: int, device_id: int) -> Device:
    device = session.scalar(
        select(Device).where(Device.id == device_id, Device.school_id == school_id)
    )
    if device is None:
        raise NotFound("There is no such device in your school.")
    return device


def device_by_tag(session: Session, school_id: int, asset_tag: str) -> Device:
    """A device of the school by its asset tag (404 otherwise)."""
    device = session.scalar(
        select(Device).where(Device.school_id == school_id, Device.asset_tag == asset_tag.strip())
    )
    if device is None:
        raise NotFound(f"No device with asset tag {asset_tag.strip()!r} in your school.")
    return device


def get_group(session: Session, school_id: int, group_id: int) -> DeviceGroup:
    """One of the school's device groups (404 otherwise)."""
    group = session.scalar(
        select(DeviceGroup).where(DeviceGroup.id == group_id, DeviceGroup.school_id == school_id)
    )
    if group is None:
        raise NotFound("There is no such device group in your school.")
    return group


def describe_target(
    session: Session, school_id: int, target_type: TargetType, target_id: int
) -> str:
    """A target in words, checking it belongs to the school (404 otherwise)."""
    if target_type is TargetType.SCHOOL:
        if target_id != school_id:
            raise NotFound("That is not your school.")
        return "the whole school"
    if target_type is TargetType.LOCATION:
        return location_path(_location(session, school_id, target_id))
    if target_type is TargetType.GROUP:
        return f"the group {get_group(session, school_id, target_id).name}"
    return f"device {_device(session, school_id, target_id).asset_tag}"


def target_labels(
    session: Session, school_id: int, targets: Iterable[tuple[TargetType, int]]
) -> dict[tuple[TargetType, int], str]:
    """Words for many targets in three queries (lists of assignments and exceptions)."""
    wanted = set(targets)
    ids = {kind: {i for k, i in wanted if k is kind} for kind in TargetType}
    labels: dict[tuple[TargetType, int], str] = {}
    if ids[TargetType.LOCATION]:
        places = {
            loc.id: loc
            for loc in session.scalars(select(Location).where(Location.school_id == school_id))
        }
        for location_id in ids[TargetType.LOCATION]:
            if location_id in places:
                labels[(TargetType.LOCATION, location_id)] = _path(places, location_id)
    if ids[TargetType.GROUP]:
        for group_id, name in session.execute(
            select(DeviceGroup.id, DeviceGroup.name).where(
                DeviceGroup.school_id == school_id, DeviceGroup.id.in_(ids[TargetType.GROUP])
            )
        ):
            labels[(TargetType.GROUP, group_id)] = f"the group {name}"
    if ids[TargetType.DEVICE]:
        for device_id, tag in session.execute(
            select(Device.id, Device.asset_tag).where(
                Device.school_id == school_id, Device.id.in_(ids[TargetType.DEVICE])
            )
        ):
            labels[(TargetType.DEVICE, device_id)] = f"device {tag}"
    for target in wanted:
        if target[0] is TargetType.SCHOOL:
            labels[target] = "the whole school"
        labels.setdefault(target, "(removed)")
    return labels


def _path(places: dict[int, Location], location_id: int) -> str:
    parts: list[str] = []
    node = places.get(location_id)
    while node is not None and len(parts) < 16:
        parts.append(node.name)
        node = places.get(node.parent_id) if node.parent_id is not None else None
    return " › ".join(reversed(parts))


def assignable_places(session: Session, school_id: int) -> list[tuple[int, str]]:
    """Every place of the school with its full path, for the assignment and exception forms."""
    places = {
        loc.id: loc
        for loc in session.scalars(select(Location).where(Location.school_id == school_id))
    }
    return sorted(((i, _path(places, i)) for i in places), key=lambda pair: pair[1])


def list_groups(session: Session, actor: User) -> list[tuple[DeviceGroup, int]]:
    """The school's device groups with how many devices each holds."""
    _require_staff(actor)
    counts = (
        select(DeviceGroupMember.group_id, func.count().label("n"))
        .group_by(DeviceGroupMember.group_id)
        .subquery()
    )
    rows = session.execute(
        select(DeviceGroup, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == DeviceGroup.id)
        .where(DeviceGroup.school_id == actor.school_id)
        .order_by(DeviceGroup.name)
    ).all()
    return [(group, int(n)) for group, n in rows]


def group_members(session: Session, group: DeviceGroup) -> Sequence[Device]:
    """The devices in a group, by asset tag."""
    return session.scalars(
        select(Device)
        .join(DeviceGroupMember, DeviceGroupMember.device_id == Device.id)
        .where(DeviceGroupMember.group_id == group.id)
        .order_by(Device.asset_tag)
    ).all()


def create_group(session: Session, actor: User, name: str) -> DeviceGroup:
    """A new, empty device group."""
    _require_manage(actor)
    name = " ".join(name.split())
    if not name or len(name) > 120:
        raise ValidationFailed("Give the group a name of up to 120 characters.")
    exists = session.scalar(
        select(DeviceGroup.id).where(
            DeviceGroup.school_id == actor.school_id, DeviceGroup.name == name
        )
    )
    if exists is not None:
        raise Conflict(f"There is already a group called {name!r}.")
    group = DeviceGroup(school_id=actor.school_id, name=name)
    session.add(group)
    session.flush()
    record(
        session,
        actor=actor,
        action="device_group.created",
        school_id=actor.school_id,
        target_type="device_group",
        target_id=group.id,
        details={"name": name},
    )
    _commit(session)
    return group


def add_to_group(
    session: Session, actor: User, group: DeviceGroup, asset_tags: Iterable[str]
) -> int:
    """Add devices by asset tag; an unknown tag refuses the whole change. Returns how many new."""
    _require_manage(actor)
    if group.school_id != actor.school_id:
        raise NotFound("There is no such device group in your school.")
    tags = list(dict.fromkeys(t.strip() for t in asset_tags if t.strip()))
    if not tags:
        raise ValidationFailed("Give at least one asset tag.")
    if len(tags) > 500:
        raise ValidationFailed("Add at most 500 devices at a time.")
    found = dict(
        session.execute(
            select(Device.asset_tag, Device.id).where(
                Device.school_id == actor.school_id, Device.asset_tag.in_(tags)
            )
        ).all()
    )
    missing = [t for t in tags if t not in found]
    if missing:
        raise ValidationFailed(
            f"No device with these asset tags in your school: {', '.join(missing)}. "
            "Nothing was added."
        )
    present = set(
        session.scalars(
            select(DeviceGroupMember.device_id).where(
                DeviceGroupMember.group_id == group.id,
                DeviceGroupMember.device_id.in_(found.values()),
            )
        )
    )
    new_ids = [found[t] for t in tags if found[t] not in present]
    session.add_all(DeviceGroupMember(group_id=group.id, device_id=i) for i in new_ids)
    session.flush()
    if new_ids:
        record(
            session,
            actor=actor,
            action="device_group.devices_added",
            school_id=actor.school_id,
            target_type="device_group",
            target_id=group.id,
            details={"group": group.name, "asset_tags": [t for t in tags if found[t] in new_ids]},
        )
        recompute_desired(session, actor.school_id, new_ids)
    _commit(session)
    return len(new_ids)


def remove_from_group(session: Session, actor: User, group: DeviceGroup, device_id: int) -> None:
    """Take one device out of a group."""
    _require_manage(actor)
    if group.school_id != actor.school_id:
        raise NotFound("There is no such device group in your school.")
    member = session.get(DeviceGroupMember, (group.id, device_id))
    if member is None:
        raise NotFound("That device is not in this group.")
    device = _device(session, actor.school_id, device_id)
    session.delete(member)
    session.flush()
    record(
        session,
        actor=actor,
        action="device_group.device_removed",
        school_id=actor.school_id,
        target_type="device_group",
        target_id=group.id,
        details={"group": group.name, "asset_tag": device.asset_tag},
    )
    recompute_desired(session, actor.school_id, [device_id])
    _commit(session)


# --- assignments ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AssignmentRow:
    assignment: ProfileAssignment
    profile_name: str
    target: str


def _check_target(
    session: Session, school_id: int, target_type: TargetType | str, target_id: int | None
) -> tuple[TargetType, int, str]:
    try:
        kind = TargetType(target_type)
    except ValueError:
        raise ValidationFailed(
            "Assign to the school, a place, a group or a device "
            f"({', '.join(t.value for t in TargetType)})."
        ) from None
    if kind is TargetType.SCHOOL:
        if target_id is not None and target_id != school_id:
            raise NotFound("That is not your school.")
        target_id = school_id
    if target_id is None:
        raise ValidationFailed(f"Say which {kind.value} to assign to.")
    return kind, target_id, describe_target(session, school_id, kind, target_id)


def _affected(session: Session, kind: TargetType, target_id: int) -> list[int] | None:
    """The devices a change at a target can touch; None means "the whole school"."""
    if kind is TargetType.DEVICE:
        return [target_id]
    if kind is TargetType.GROUP:
        return list(
            session.scalars(
                select(DeviceGroupMember.device_id).where(DeviceGroupMember.group_id == target_id)
            )
        )
    return None


def assign(
    session: Session,
    actor: User,
    profile: Profile,
    target_type: TargetType | str,
    target_id: int | None,
) -> ProfileAssignment:
    """Apply a profile to a target, replacing the target's previous profile if it had one."""
    _require_manage(actor)
    if profile.school_id != actor.school_id:
        raise NotFound("There is no such profile in your school.")
    if profile.archived:
        raise Conflict("An archived profile cannot be assigned. Restore it first.")
    kind, target_id, label = _check_target(session, actor.school_id, target_type, target_id)
    assignment = session.scalar(
        select(ProfileAssignment).where(
            ProfileAssignment.school_id == actor.school_id,
            ProfileAssignment.target_type == kind,
            ProfileAssignment.target_id == target_id,
        )
    )
    replaced = None
    if assignment is not None:
        if assignment.profile_id == profile.id:
            return assignment
        replaced = assignment.profile.name
        assignment.profile_id = profile.id
        assignment.created_by_id = actor.id
        assignment.created_at = utcnow()
    else:
        assignment = ProfileAssignment(
            school_id=actor.school_id,
            profile_id=profile.id,
            target_type=kind,
            target_id=target_id,
            created_by_id=actor.id,
        )
        session.add(assignment)
    session.flush()
    session.refresh(assignment)
    record(
        session,
        actor=actor,
        action="profile.assigned",
        school_id=actor.school_id,
        target_type="profile",
        target_id=profile.id,
        details={
            "profile": profile.name,
            "target": label,
            "target_type": kind.value,
            "target_id": target_id,
            "replaced": replaced,
        },
    )
    recompute_desired(session, actor.school_id, _affected(session, kind, target_id))
    _commit(session)
    return assignment


def unassign(session: Session, actor: User, assignment_id: int) -> None:
    """Remove an assignment; its devices fall back to the next most specific profile."""
    _require_manage(actor)
    assignment = session.scalar(
        select(ProfileAssignment).where(
            ProfileAssignment.id == assignment_id,
            ProfileAssignment.school_id == actor.school_id,
        )
    )
    if assignment is None:
        raise NotFound("There is no such assignment in your school.")
    label = target_labels(
        session, actor.school_id, [(assignment.target_type, assignment.target_id)]
    )[(assignment.target_type, assignment.target_id)]
    affected = _affected(session, assignment.target_type, assignment.target_id)
    record(
        session,
        actor=actor,
        action="profile.unassigned",
        school_id=actor.school_id,
        target_type="profile",
        target_id=assignment.profile_id,
        details={"profile": assignment.profile.name, "target": label},
    )
    session.delete(assignment)
    session.flush()
    recompute_desired(session, actor.school_id, affected)
    _commit(session)


def get_assignment(session: Session, actor: User, assignment_id: int) -> AssignmentRow:
    """One assignment of the actor's school, with its words (404 otherwise)."""
    _require_manage(actor)
    row = session.execute(
        select(ProfileAssignment, Profile.name)
        .join(Profile, Profile.id == ProfileAssignment.profile_id)
        .where(
            ProfileAssignment.id == assignment_id,
            ProfileAssignment.school_id == actor.school_id,
        )
    ).first()
    if row is None:
        raise NotFound("There is no such assignment in your school.")
    assignment, name = row
    key = (assignment.target_type, assignment.target_id)
    return AssignmentRow(assignment, name, target_labels(session, actor.school_id, [key])[key])


def list_assignments(
    session: Session, actor: User, profile: Profile | None = None
) -> list[AssignmentRow]:
    """The school's assignments (or one profile's), most general first."""
    _require_manage(actor)
    query = (
        select(ProfileAssignment, Profile.name)
        .join(Profile, Profile.id == ProfileAssignment.profile_id)
        .where(ProfileAssignment.school_id == actor.school_id)
    )
    if profile is not None:
        query = query.where(ProfileAssignment.profile_id == profile.id)
    rows = session.execute(query.order_by(ProfileAssignment.id)).all()
    labels = target_labels(
        session, actor.school_id, [(a.target_type, a.target_id) for a, _n in rows]
    )
    order = list(TargetType)
    result = [AssignmentRow(a, n, labels[(a.target_type, a.target_id)]) for a, n in rows]
    return sorted(result, key=lambda r: (order.index(r.assignment.target_type), r.target))


# --- resolution: which profile applies to a device, and why ---------------------------------


@dataclass(frozen=True)
class Resolution:
    """The profile version that applies to a device, why in plain words, and every level checked."""

    profile_version: ProfileVersion | None
    reason: str
    chain: list[str]
    source: tuple[TargetType, int] | None = None

    @property
    def profile_name(self) -> str | None:
        return self.profile_version.profile.name if self.profile_version else None


@dataclass
class _Plan:
    """Everything resolution needs for one school, loaded in a handful of queries."""

    school_id: int
    assignments: dict[tuple[TargetType, int], ProfileAssignment]
    latest: dict[int, ProfileVersion]
    places: dict[int, Location]
    groups: dict[int, str]
    memberships: dict[int, list[int]] = field(default_factory=dict)

    def ancestors(self, location_id: int | None) -> list[Location]:
        chain: list[Location] = []
        node = self.places.get(location_id) if location_id is not None else None
        while node is not None and len(chain) < 16:
            chain.append(node)
            node = self.places.get(node.parent_id) if node.parent_id is not None else None
        return chain


def _plan(session: Session, school_id: int, device_ids: Sequence[int] | None) -> _Plan:
    assignments = {
        (a.target_type, a.target_id): a
        for a in session.scalars(
            select(ProfileAssignment).where(ProfileAssignment.school_id == school_id)
        )
    }
    profile_ids = {a.profile_id for a in assignments.values()}
    latest: dict[int, ProfileVersion] = {}
    if profile_ids:
        newest = (
            select(ProfileVersion.profile_id, func.max(ProfileVersion.number).label("n"))
            .where(ProfileVersion.profile_id.in_(profile_ids))
            .group_by(ProfileVersion.profile_id)
            .subquery()
        )
        for version in session.scalars(
            select(ProfileVersion).join(
                newest,
                and_(
                    ProfileVersion.profile_id == newest.c.profile_id,
                    ProfileVersion.number == newest.c.n,
                ),
            )
        ):
            latest[version.profile_id] = version
    places = {
        loc.id: loc
        for loc in session.scalars(select(Location).where(Location.school_id == school_id))
    }
    groups = dict(
        session.execute(
            select(DeviceGroup.id, DeviceGroup.name).where(DeviceGroup.school_id == school_id)
        ).all()
    )
    members = select(DeviceGroupMember.device_id, DeviceGroupMember.group_id).join(
        DeviceGroup, DeviceGroup.id == DeviceGroupMember.group_id
    )
    members = members.where(DeviceGroup.school_id == school_id)
    if device_ids is not None:
        members = members.where(DeviceGroupMember.device_id.in_(device_ids))
    memberships: dict[int, list[int]] = {}
    for device_id, group_id in session.execute(members):
        memberships.setdefault(device_id, []).append(group_id)
    return _Plan(school_id, assignments, latest, places, groups, memberships)


def _resolve(plan: _Plan, device_id: int, home_location_id: int | None) -> Resolution:
    """Most specific wins: device, then group, then the nearest place up the tree, then school."""
    chain: list[str] = []
    chosen: tuple[ProfileVersion, str, tuple[TargetType, int]] | None = None

    def consider(key: tuple[TargetType, int], level: str, reason: str) -> None:
        nonlocal chosen
        assignment = plan.assignments.get(key)
        version = plan.latest.get(assignment.profile_id) if assignment else None
        if version is None:
            chain.append(f"{level}: nothing assigned")
            return
        name = version.profile.name
        if chosen is None:
            chosen = (version, reason, key)
            chain.append(f"{level}: {name} (applies)")
        else:
            chain.append(f"{level}: {name} (a more specific profile wins)")

    consider((TargetType.DEVICE, device_id), "This device", "Assigned to this device itself")
    group_ids = sorted(plan.memberships.get(device_id, []), key=lambda g: plan.groups.get(g, ""))
    for group_id in group_ids:
        name = plan.groups.get(group_id, "?")
        consider(
            (TargetType.GROUP, group_id),
            f"Group {name}",
            f"Assigned to the group {name}, which this device is in",
        )
    if not group_ids:
        chain.append("Groups: this device is in none")
    places = plan.ancestors(home_location_id)
    if not places:
        chain.append("Home: not set, so no place applies")
    home = places[0] if places else None
    for index, place in enumerate(places):
        kind = place.kind.value
        if index == 0:
            level = f"{place.name} ({kind}, this device's home)"
            reason = f"Assigned to {place.name} (this device's home)"
        else:
            level = f"{place.name} ({kind})"
            reason = (
                f"Assigned to {place.name}, the {kind} that this device's home "
                f"({home.name if home else '?'}) is in"
            )
        consider((TargetType.LOCATION, place.id), level, reason)
    consider((TargetType.SCHOOL, plan.school_id), "Whole school", "The school's default profile")
    if chosen is None:
        return Resolution(
            None,
            "No profile is assigned to this device, its groups, its places or the school.",
            chain,
        )
    version, reason, key = chosen
    return Resolution(version, reason, chain, key)


def resolve(session: Session, device: Device) -> Resolution:
    """Which profile applies to a device and why."""
    plan = _plan(session, device.school_id, [device.id])
    return _resolve(plan, device.id, device.home_location_id)


# --- desired state (the outbox the worker publishes) ----------------------------------------


def _active_exceptions(session: Session, school_id: int, now: datetime) -> list[FilterException]:
    return list(
        session.scalars(
            select(FilterException)
            .where(
                FilterException.school_id == school_id,
                FilterException.status == ExceptionStatus.APPROVED,
                FilterException.starts_at <= now,
                FilterException.ends_at > now,
            )
            .order_by(FilterException.id)
        )
    )


def _applies(plan: _Plan, exception: FilterException, device_id: int, places: set[int]) -> bool:
    if exception.target_type is TargetType.DEVICE:
        return exception.target_id == device_id
    if exception.target_type is TargetType.GROUP:
        return exception.target_id in plan.memberships.get(device_id, [])
    if exception.target_type is TargetType.LOCATION:
        return exception.target_id in places
    return exception.target_type is TargetType.SCHOOL


def _with_exceptions(
    profile: ProfileSettings, url_lists: Sequence[Sequence[str]]
) -> ProfileSettings:
    """The profile with every exception's addresses unblocked; one that does not fit is skipped."""
    try:
        return with_filter_exceptions(profile, [u for urls in url_lists for u in urls])
    except ProfileValidationError:
        pass
    result = profile
    for urls in url_lists:
        try:
            result = with_filter_exceptions(result, urls)
        except ProfileValidationError:
            log.warning("a filter exception does not fit profile %s; skipped", profile.slug)
    return result


def recompute_desired(
    session: Session,
    school_id: int,
    device_ids: Sequence[int] | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Bring the desired-state outbox up to date for some (or all) devices; joins the caller's
    transaction. Returns how many rows changed."""
    now = now or utcnow()
    if device_ids is not None and not device_ids:
        return 0
    plan = _plan(session, school_id, device_ids)
    query = select(Device.id, Device.home_location_id).where(
        Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED
    )
    if device_ids is not None:
        query = query.where(Device.id.in_(device_ids))
    devices = session.execute(query).all()
    existing = {
        row.device_id: row
        for row in session.scalars(
            select(DeviceDesiredState).where(
                DeviceDesiredState.school_id == school_id,
                *([] if device_ids is None else [DeviceDesiredState.device_id.in_(device_ids)]),
            )
        )
    }
    exceptions = _active_exceptions(session, school_id, now)
    settings: dict[int, ProfileSettings] = {}
    documents: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
    changed = 0
    for device_id, home_id in devices:
        resolution = _resolve(plan, device_id, home_id)
        row = existing.get(device_id)
        version = resolution.profile_version
        if version is None:
            if row is not None and row.sha256 != CLEARED_SHA256:
                row.document, row.sha256, row.profile_version_id = None, CLEARED_SHA256, None
                row.updated_at = now
                changed += 1
            continue
        places = {p.id for p in plan.ancestors(home_id)}
        applying = [e for e in exceptions if _applies(plan, e, device_id, places)]
        key = (version.id, tuple(e.id for e in applying))
        document = documents.get(key)
        if document is None:
            if version.id not in settings:
                settings[version.id] = loaded(version)
            profile = _with_exceptions(settings[version.id], [e.urls for e in applying])
            result = compile_profile(profile, "kiosk", version=version.number)
            document = documents[key] = json.loads(result.content)
        sha = str(document["sha256"])
        if row is None:
            session.add(
                DeviceDesiredState(
                    device_id=device_id,
                    school_id=school_id,
                    profile_version_id=version.id,
                    document=document,
                    sha256=sha,
                    updated_at=now,
                )
            )
            changed += 1
        elif row.sha256 != sha or row.profile_version_id != version.id:
            row.document, row.sha256, row.profile_version_id = document, sha, version.id
            row.updated_at = now
            changed += 1
    session.flush()
    if changed:
        log.info("desired state changed for %d devices in school %s", changed, school_id)
    return changed


def desired_state(session: Session, device: Device) -> DeviceDesiredState | None:
    """The device's row in the desired-state outbox, if it has one."""
    return session.scalar(
        select(DeviceDesiredState).where(DeviceDesiredState.device_id == device.id)
    )


def mark_published(session: Session, device_id: int, sha256: str, at: datetime) -> bool:
    """The worker published `sha256` for a device; joins the caller's transaction.

    Returns False when the desired state changed meanwhile (the newer one is still to publish).
    """
    result = session.execute(
        update(DeviceDesiredState)
        .where(DeviceDesiredState.device_id == device_id, DeviceDesiredState.sha256 == sha256)
        .values(published_sha256=sha256, published_at=at)
        .execution_options(synchronize_session="fetch")
    )
    return bool(getattr(result, "rowcount", 0))


def record_applied(
    session: Session, device: Device, sha256: str | None, at: datetime
) -> DeviceProfileStatus:
    """A device reported the profile hash it applied; joins the caller's transaction."""
    status = session.scalar(
        select(DeviceProfileStatus).where(DeviceProfileStatus.device_id == device.id)
    )
    if status is not None and status.reported_at > at:
        return status  # an older report arriving late changes nothing
    previous = status.applied_sha256 if status is not None else None
    if status is None:
        status = DeviceProfileStatus(
            device_id=device.id, school_id=device.school_id, reported_at=at
        )
        session.add(status)
    status.applied_sha256, status.reported_at = sha256, at
    desired = desired_state(session, device)
    if sha256 != previous and desired is not None and sha256 == desired.sha256:
        version = desired.profile_version
        label = f"{version.profile.name} version {version.number}" if version else "its profile"
        add_event(
            session,
            device,
            kind="profile",
            summary=f"Applied {label}",
            actor=None,
            details={"sha256": sha256},
        )
    session.flush()
    return status


# --- compliance -----------------------------------------------------------------------------

COMPLIANCE_STATES = ("compliant", "pending", "drifting", "never_reported", "unassigned")
COMPLIANCE_LABELS = {
    "compliant": "Up to date",
    "pending": "Waiting for the device",
    "drifting": "Drifting",
    "never_reported": "Never reported",
    "unassigned": "No profile",
}


class ComplianceRow(NamedTuple):
    device_id: int
    asset_tag: str
    profile_name: str | None
    version: int | None
    desired_sha256: str | None
    applied_sha256: str | None
    published_at: datetime | None
    reported_at: datetime | None
    state: str

    @property
    def label(self) -> str:
        return COMPLIANCE_LABELS[self.state]


def _state_expression() -> tuple[ColumnElement[str], type[DeviceDesiredState], Any]:
    desired = aliased(DeviceDesiredState)
    status = aliased(DeviceProfileStatus)
    state = case(
        (or_(desired.id.is_(None), desired.sha256 == CLEARED_SHA256), "unassigned"),
        (status.applied_sha256 == desired.sha256, "compliant"),
        (status.id.is_(None), "never_reported"),
        (
            or_(
                desired.published_sha256.is_(None),
                desired.published_sha256 != desired.sha256,
                desired.published_at.is_(None),
            ),
            "pending",
        ),
        (status.reported_at < desired.published_at, "pending"),
        else_="drifting",
    )
    return state, desired, status


def _compliance_query(school_id: int, device_id: int | None = None) -> Select[Any]:
    state, desired, status = _state_expression()
    query = (
        select(
            Device.id,
            Device.asset_tag,
            Profile.name,
            ProfileVersion.number,
            desired.sha256,
            status.applied_sha256,
            desired.published_at,
            status.reported_at,
            state.label("state"),
        )
        .outerjoin(desired, desired.device_id == Device.id)
        .outerjoin(status, status.device_id == Device.id)
        .outerjoin(ProfileVersion, ProfileVersion.id == desired.profile_version_id)
        .outerjoin(Profile, Profile.id == ProfileVersion.profile_id)
        .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
    )
    if device_id is not None:
        query = query.where(Device.id == device_id)
    return query


def compliance(
    session: Session, school_id: int, *, states: Sequence[str] | None = None, limit: int = 1000
) -> list[ComplianceRow]:
    """Desired against applied for every device of the school, in one query."""
    inner = _compliance_query(school_id).subquery()
    query = select(inner)
    if states is not None:
        query = query.where(inner.c.state.in_(list(states)))
    rows = session.execute(query.order_by(inner.c.asset_tag).limit(limit)).all()
    return [ComplianceRow(*row) for row in rows]


def compliance_summary(session: Session, school_id: int) -> dict[str, int]:
    """How many devices are in each compliance state (one GROUP BY)."""
    inner = _compliance_query(school_id).subquery()
    counts: dict[str, int] = {
        state: int(n)
        for state, n in session.execute(select(inner.c.state, func.count()).group_by(inner.c.state))
    }
    return {state: int(counts.get(state, 0)) for state in COMPLIANCE_STATES}


def device_compliance(session: Session, device: Device) -> ComplianceRow | None:
    """The compliance row of one device."""
    row = session.execute(_compliance_query(device.school_id, device.id)).first()
    return ComplianceRow(*row) if row is not None else None


# --- temporary filter exceptions (P-PROFILE-3) ----------------------------------------------


def _manages(user: User) -> bool:
    return has_permission(user.role, Permission.FILTERING_MANAGE)


def can_manage(user: User) -> bool:
    """Whether a person may change profiles and decide filter exceptions (P-PROFILE-4)."""
    return _manages(user)


def my_open_requests(session: Session, user: User) -> int:
    """How many of a person's own filter exception requests are waiting or in effect."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(FilterException)
            .where(
                FilterException.school_id == user.school_id,
                FilterException.requester_id == user.id,
                FilterException.status.in_([ExceptionStatus.REQUESTED, ExceptionStatus.APPROVED]),
            )
        )
        or 0
    )


def _filtering_managers(session: Session, school_id: int) -> Sequence[User]:
    roles = [r for r, perms in ROLE_PERMISSIONS.items() if Permission.FILTERING_MANAGE in perms]
    return session.scalars(
        select(User).where(User.school_id == school_id, User.role.in_(roles), User.active)
    ).all()


def _notify(
    session: Session,
    *,
    school_id: int,
    users: Sequence[User],
    kind: str,
    title: str,
    body: str,
    link: str | None = None,
) -> None:
    """Tell people through the notifications service, when that service is installed."""
    if not users:
        return
    try:
        module = importlib.import_module("server.notifications.services")
    except ImportError:
        log.info("notifications are not installed; %s not sent to %d people", kind, len(users))
        return
    module.notify(
        session, school_id=school_id, users=users, kind=kind, title=title, body=body, link=link
    )


def _clean_urls(urls: Iterable[str]) -> list[str]:
    cleaned = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
    if not cleaned:
        raise ValidationFailed("Give at least one web address to unblock.")
    if len(cleaned) > MAX_EXCEPTION_URLS:
        raise ValidationFailed(f"Ask for at most {MAX_EXCEPTION_URLS} web addresses at a time.")
    problems = [
        {"field": "urls", "message": f"{url}: {problem}"}
        for url in cleaned
        if (problem := url_problem(url)) is not None
    ]
    if problems:
        raise ValidationFailed(
            "Some web addresses cannot be used: " + "; ".join(str(p["message"]) for p in problems),
            details=problems,
        )
    return cleaned


def _sites(urls: Sequence[str]) -> str:
    """A short mention of the sites for a notification title."""
    first = urls[0] if len(urls[0]) <= 80 else urls[0][:77] + "..."
    return first if len(urls) == 1 else f"{first} and {len(urls) - 1} more"


def _when(value: datetime) -> str:
    return value.strftime("%d %b %Y %H:%M")


def request_exception(
    session: Session,
    actor: User,
    *,
    urls: Iterable[str],
    reason: str,
    class_label: str,
    target_type: TargetType | str,
    target_id: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime | None = None,
) -> FilterException:
    """A member of staff asks for addresses to be unblocked for a period of study."""
    _require(actor, Permission.LOANS_USE)
    now = now or utcnow()
    cleaned = _clean_urls(urls)
    reason = reason.strip()
    class_label = " ".join(class_label.split())
    if len(reason) < 10 or len(reason) > 1000:
        raise ValidationFailed(
            "Say why the class needs these sites (10 to 1000 characters); the reason is kept."
        )
    if not class_label or len(class_label) > 64:
        raise ValidationFailed("Give the class, for example 'Year 4 Oak' (up to 64 characters).")
    try:
        kind = TargetType(target_type)
    except ValueError:
        kind = None
    if kind not in EXCEPTION_TARGETS:
        raise ValidationFailed("Choose a place, a device group or one device.")
    label = describe_target(session, actor.school_id, kind, target_id)
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationFailed("Give the start and end with a time zone.")
    if ends_at <= starts_at:
        raise ValidationFailed("The end must be after the start.")
    if ends_at <= now:
        raise ValidationFailed("The end is already in the past.")
    if ends_at - starts_at > timedelta(days=MAX_EXCEPTION_DAYS):
        raise ValidationFailed(
            f"A temporary exception lasts at most {MAX_EXCEPTION_DAYS} days. "
            "Ask again for the next period, or ask your computing lead to change the profile."
        )
    if starts_at - now > timedelta(days=MAX_EXCEPTION_LEAD_DAYS):
        raise ValidationFailed(
            f"Ask no more than {MAX_EXCEPTION_LEAD_DAYS} days before the period starts."
        )
    exception = FilterException(
        school_id=actor.school_id,
        requester_id=actor.id,
        urls=cleaned,
        reason=reason,
        class_label=class_label,
        target_type=kind,
        target_id=target_id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=ExceptionStatus.REQUESTED,
        created_at=now,
    )
    session.add(exception)
    session.flush()
    record(
        session,
        actor=actor,
        action="filter_exception.requested",
        school_id=actor.school_id,
        target_type="filter_exception",
        target_id=exception.id,
        details={
            "urls": cleaned,
            "reason": reason,
            "class": class_label,
            "target": label,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
    )
    _notify(
        session,
        school_id=actor.school_id,
        users=[u for u in _filtering_managers(session, actor.school_id) if u.id != actor.id],
        kind="filter_exception.requested",
        title=f"{actor.name} asks to unblock {_sites(cleaned)} for {class_label}"[:200],
        body=f"{', '.join(cleaned)} for {label}, {_when(starts_at)} to {_when(ends_at)}. "
        f"Reason: {reason}",
        link="/filter-exceptions",
    )
    _commit(session)
    return exception


def get_exception(session: Session, actor: User, exception_id: int) -> FilterException:
    """An exception of the actor's school that the actor may see (their own, or any if they
    manage filtering)."""
    _require_staff(actor)
    exception = session.scalar(
        select(FilterException).where(
            FilterException.id == exception_id, FilterException.school_id == actor.school_id
        )
    )
    if exception is None or (not _manages(actor) and exception.requester_id != actor.id):
        raise NotFound("There is no such filter exception request in your school.")
    return exception


def list_exceptions(
    session: Session, actor: User, *, status: ExceptionStatus | None = None, limit: int = 200
) -> Sequence[FilterException]:
    """Requests newest first: all of them for the computing lead, one's own for other staff."""
    _require_staff(actor)
    query = select(FilterException).where(FilterException.school_id == actor.school_id)
    if not _manages(actor):
        query = query.where(FilterException.requester_id == actor.id)
    if status is not None:
        query = query.where(FilterException.status == status)
    return session.scalars(query.order_by(FilterException.id.desc()).limit(limit)).all()


def _exception_devices(session: Session, exception: FilterException) -> list[int] | None:
    return _affected(session, exception.target_type, exception.target_id)


def _check_fits(session: Session, exception: FilterException, now: datetime) -> None:
    """Refuse an approval whose addresses would overflow a device's allow list."""
    plan = _plan(session, exception.school_id, _exception_devices(session, exception))
    query = select(Device.id, Device.home_location_id).where(
        Device.school_id == exception.school_id
    )
    affected = _exception_devices(session, exception)
    if affected is not None:
        query = query.where(Device.id.in_(affected))
    active = _active_exceptions(session, exception.school_id, now)
    checked: set[tuple[int, ...]] = set()
    for device_id, home_id in session.execute(query):
        places = {p.id for p in plan.ancestors(home_id)}
        if not _applies(plan, exception, device_id, places):
            continue
        version = _resolve(plan, device_id, home_id).profile_version
        if version is None:
            continue
        ids = (version.id, *(e.id for e in active if _applies(plan, e, device_id, places)))
        if ids in checked:
            continue
        checked.add(ids)
        urls = [u for e in active if e.id in ids[1:] for u in e.urls] + list(exception.urls)
        try:
            with_filter_exceptions(loaded(version), urls)
        except ProfileValidationError as exc:
            raise ValidationFailed(
                f"These sites do not fit the profile {version.profile.name}: "
                + "; ".join(e.message for e in exc.errors),
            ) from exc


def _decide(
    session: Session,
    actor: User,
    exception_id: int,
    status: ExceptionStatus,
    note: str,
    now: datetime | None,
) -> FilterException:
    _require_manage(actor)
    now = now or utcnow()
    exception = get_exception(session, actor, exception_id)
    wanted_from = (
        ExceptionStatus.APPROVED if status is ExceptionStatus.REVOKED else ExceptionStatus.REQUESTED
    )
    if exception.status is not wanted_from:
        raise Conflict(
            f"This request is already {exception.status.value}; it cannot be {status.value} now."
        )
    note = note.strip()[:500]
    if status is ExceptionStatus.DECLINED and not note:
        raise ValidationFailed("Say why the request is declined; the teacher will see it.")
    if status is ExceptionStatus.APPROVED:
        if exception.ends_at <= now:
            raise Conflict("This request's period has already ended, so it cannot be approved.")
        _check_fits(session, exception, now)
    exception.status = status
    if status is ExceptionStatus.REVOKED:
        exception.decision_note = note or exception.decision_note
    else:
        exception.decided_by_id, exception.decided_at = actor.id, now
        exception.decision_note = note or None
    label = describe_target(session, actor.school_id, exception.target_type, exception.target_id)
    record(
        session,
        actor=actor,
        action=f"filter_exception.{status.value}",
        school_id=actor.school_id,
        target_type="filter_exception",
        target_id=exception.id,
        details={
            "urls": exception.urls,
            "class": exception.class_label,
            "target": label,
            "note": note,
            "requester": exception.requester.email,
        },
    )
    if status is not ExceptionStatus.DECLINED and exception.starts_at <= now:
        if status is ExceptionStatus.APPROVED:
            exception.activated_at = now
        session.flush()
        recompute_desired(session, actor.school_id, _exception_devices(session, exception), now=now)
    sites = _sites(exception.urls)
    messages = {
        ExceptionStatus.APPROVED: (
            f"Approved: {sites} for {exception.class_label}",
            f"Unblocked on {label} from {_when(exception.starts_at)} until "
            f"{_when(exception.ends_at)}, when the filter goes back automatically.",
        ),
        ExceptionStatus.DECLINED: (
            f"Declined: {sites} for {exception.class_label}",
            f"{actor.name} declined the request: {note}",
        ),
        ExceptionStatus.REVOKED: (
            f"Ended early: {sites} for {exception.class_label}",
            f"{actor.name} ended the exception; the sites are filtered again. {note}".strip(),
        ),
    }
    title, body = messages[status]
    _notify(
        session,
        school_id=actor.school_id,
        users=[exception.requester],
        kind=f"filter_exception.{status.value}",
        title=title[:200],
        body=body,
        link="/filter-exceptions",
    )
    _commit(session)
    return exception


def approve_exception(
    session: Session, actor: User, exception_id: int, note: str = "", *, now: datetime | None = None
) -> FilterException:
    """Approve a request; its devices' desired state changes once the period starts."""
    return _decide(session, actor, exception_id, ExceptionStatus.APPROVED, note, now)


def decline_exception(
    session: Session, actor: User, exception_id: int, note: str, *, now: datetime | None = None
) -> FilterException:
    """Decline a request, saying why."""
    return _decide(session, actor, exception_id, ExceptionStatus.DECLINED, note, now)


def revoke_exception(
    session: Session, actor: User, exception_id: int, note: str = "", *, now: datetime | None = None
) -> FilterException:
    """End an approved exception early; the filter goes back at once."""
    return _decide(session, actor, exception_id, ExceptionStatus.REVOKED, note, now)


def expire_exceptions(session: Session, now: datetime) -> int:
    """Revert ended exceptions and start approved ones whose period began; joins the caller's
    transaction. Safe to run twice. Returns how many exceptions changed."""
    ended = session.scalars(
        select(FilterException)
        .where(
            FilterException.status.in_([ExceptionStatus.APPROVED, ExceptionStatus.REQUESTED]),
            FilterException.ends_at <= now,
        )
        .order_by(FilterException.id)
        .with_for_update(skip_locked=True)
    ).all()
    starting = session.scalars(
        select(FilterException)
        .where(
            FilterException.status == ExceptionStatus.APPROVED,
            FilterException.activated_at.is_(None),
            FilterException.starts_at <= now,
            FilterException.ends_at > now,
        )
        .order_by(FilterException.id)
        .with_for_update(skip_locked=True)
    ).all()
    schools: dict[int, list[int] | None] = {}

    def touch(exception: FilterException) -> None:
        affected = _exception_devices(session, exception)
        if exception.school_id in schools:
            before = schools[exception.school_id]
            schools[exception.school_id] = (
                None if before is None or affected is None else [*before, *affected]
            )
        else:
            schools[exception.school_id] = affected

    for exception in ended:
        was_approved = exception.status is ExceptionStatus.APPROVED
        exception.status = ExceptionStatus.EXPIRED
        record(
            session,
            actor=None,
            action="filter_exception.expired",
            school_id=exception.school_id,
            target_type="filter_exception",
            target_id=exception.id,
            details={"urls": exception.urls, "class": exception.class_label},
            at=now,
        )
        sites = _sites(exception.urls)
        if was_approved:
            touch(exception)
            title = f"Filtered again: {sites} for {exception.class_label}"
            body = f"The exception ended at {_when(exception.ends_at)}; the filter is back."
        else:
            title = f"Not decided in time: {sites} for {exception.class_label}"
            body = "The period ended before the computing lead decided. Ask again if needed."
        _notify(
            session,
            school_id=exception.school_id,
            users=[exception.requester],
            kind="filter_exception.expired",
            title=title[:200],
            body=body,
            link="/filter-exceptions",
        )
    for exception in starting:
        exception.activated_at = now
        record(
            session,
            actor=None,
            action="filter_exception.started",
            school_id=exception.school_id,
            target_type="filter_exception",
            target_id=exception.id,
            details={"urls": exception.urls, "class": exception.class_label},
            at=now,
        )
        touch(exception)
    session.flush()
    for school_id, device_ids in schools.items():
        recompute_desired(session, school_id, device_ids, now=now)
    return len(ended) + len(starting)


def reconcile_all(session: Session, now: datetime) -> int:
    """Recompute every school's desired state (catches devices added or moved home); joins the
    caller's transaction."""
    school_ids = session.scalars(select(ProfileAssignment.school_id).distinct()).all()
    outbox_schools = session.scalars(select(DeviceDesiredState.school_id).distinct()).all()
    return sum(
        recompute_desired(session, school_id, now=now)
        for school_id in sorted(set(school_ids) | set(outbox_schools))
    )


# --- pages' summaries -----------------------------------------------------------------------


def filtering_history(
    session: Session, actor: User, *, limit: int = 200
) -> Sequence[ActivityEntry]:
    """Every profile, group and filter-exception change in the trail (P-PROFILE-4)."""
    _require_manage(actor)
    return session.scalars(
        select(ActivityEntry)
        .where(
            ActivityEntry.school_id == actor.school_id,
            or_(*(ActivityEntry.action.startswith(prefix) for prefix in FILTERING_ACTIONS)),
        )
        .order_by(ActivityEntry.seq.desc())
        .limit(limit)
    ).all()


@dataclass(frozen=True)
class HomeSummary:
    counts: dict[str, int]
    waiting: int
    total: int


def home_summary(session: Session, user: User) -> HomeSummary | None:
    """The computing lead's home card: compliance counts and requests waiting for a decision."""
    if not _manages(user):
        return None
    counts = compliance_summary(session, user.school_id)
    waiting = session.scalar(
        select(func.count())
        .select_from(FilterException)
        .where(
            FilterException.school_id == user.school_id,
            FilterException.status == ExceptionStatus.REQUESTED,
        )
    )
    return HomeSummary(counts, int(waiting or 0), sum(counts.values()))


@dataclass(frozen=True)
class DevicePanel:
    resolution: Resolution
    compliance: ComplianceRow | None
    can_manage: bool


def device_panel(session: Session, user: User, device: Device) -> DevicePanel | None:
    """Which profile applies to a device, why, and desired against applied."""
    if device.school_id != user.school_id or not has_permission(user.role, Permission.DEVICES_READ):
        return None
    return DevicePanel(resolve(session, device), device_compliance(session, device), _manages(user))


# --- profiles that follow a loan ----------------------------------------------------------

HOME_LOAN_GROUP = "On a home loan"
HOME_LOAN_PROFILE = "Home-loan device"


def _home_loan_profile(session: Session, school_id: int) -> Profile:
    """The school's home-loan profile, made from the built-in library the first time."""
    slug = slugify(HOME_LOAN_PROFILE)
    profile = session.scalar(
        select(Profile).where(Profile.school_id == school_id, Profile.slug == slug)
    )
    if profile is not None:
        return profile
    text = _normalise(starting_text(HOME_LOAN_PROFILE, "home-loan"))
    checked = validate_text(text, f"{slug}.yaml")
    if checked.profile is None:
        raise _refuse(checked.errors)
    profile = Profile(school_id=school_id, slug=slug, name=checked.profile.name)
    session.add(profile)
    session.flush()
    session.add(
        ProfileVersion(
            profile_id=profile.id,
            number=1,
            yaml_text=text,
            sha256=profile_sha256(checked.profile),
            note="Made for home loans",
            created_by_id=None,
        )
    )
    record(
        session,
        actor=None,
        action="profile.created",
        school_id=school_id,
        target_type="profile",
        target_id=profile.id,
        details={"name": profile.name, "slug": slug, "start_from": "home-loan", "version": 1},
    )
    return profile


def set_home_loan(session: Session, device: Device, *, at_home: bool) -> None:
    """Profiles follow a loan: while a device is at home on an approved loan it gets the school's
    home-loan profile (filtered at home too, P-PROFILE-1); back in school, its usual one.

    Devices at home are members of one group that carries the home-loan profile; group beats
    location, so the trolley's lesson profile comes back by itself at return. Joins the caller's
    transaction.
    """
    group = session.scalar(
        select(DeviceGroup).where(
            DeviceGroup.school_id == device.school_id, DeviceGroup.name == HOME_LOAN_GROUP
        )
    )
    if group is None:
        if not at_home:
            return
        group = DeviceGroup(school_id=device.school_id, name=HOME_LOAN_GROUP)
        session.add(group)
        session.flush()
    member = session.get(DeviceGroupMember, (group.id, device.id))
    if at_home:
        if member is None:
            session.add(DeviceGroupMember(group_id=group.id, device_id=device.id))
        assigned = session.scalar(
            select(ProfileAssignment.id).where(
                ProfileAssignment.school_id == device.school_id,
                ProfileAssignment.target_type == TargetType.GROUP,
                ProfileAssignment.target_id == group.id,
            )
        )
        if assigned is None:
            session.add(
                ProfileAssignment(
                    school_id=device.school_id,
                    profile_id=_home_loan_profile(session, device.school_id).id,
                    target_type=TargetType.GROUP,
                    target_id=group.id,
                    created_by_id=None,
                )
            )
    elif member is not None:
        session.delete(member)
    session.flush()
    recompute_desired(session, device.school_id, [device.id])
