"""Creating profiles and saving their versions, their history, and downloads for each platform."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from device_profiles import (
    TARGETS,
    CompileResult,
    ProfileError,
    SigningIdentity,
    compile_profile,
    diff_profiles,
    load_profile,
    load_signing_identity,
    profile_sha256,
    sign_mobileconfig,
)
from device_profiles import Profile as ProfileSettings
from device_profiles.descriptions import describe_change
from server.activity.services import record
from server.auth.models import User
from server.enrolment.services import school_signing_identity
from server.errors import Conflict, ValidationFailed
from server.profiles.models import Profile, ProfileAssignment, ProfileVersion
from server.profiles.pages import HistoryEntry
from server.profiles.services.lookups import (
    _commit,
    _require_manage,
    _require_own_profile,
    get_school,
    latest_version,
    loaded,
    versions,
)
from server.profiles.services.outbox import recompute_desired
from server.profiles.services.texts import (
    _check_name,
    _normalise,
    slugify,
    staff_text,
    starting_text,
    with_identity,
)
from server.profiles.services.validation import (
    COMPILE_TARGETS,
    _refuse,
    _target_options,
    validate_text,
)

log = logging.getLogger(__name__)


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
    profile = _add_profile(
        session,
        school_id=actor.school_id,
        actor=actor,
        slug=slug,
        text=text,
        settings=checked.profile,
        note=note.strip()[:500] or "First version",
        start_from=start_from,
    )
    _commit(session)
    log.info("profile %s created in school %s", slug, actor.school_id)
    return profile


def _add_profile(
    session: Session,
    *,
    school_id: int,
    actor: User | None,
    slug: str,
    text: str,
    settings: ProfileSettings,
    note: str,
    start_from: str | None,
) -> Profile:
    """Add a profile and its version 1 from a checked text; joins the caller's transaction."""
    profile = Profile(school_id=school_id, slug=slug, name=settings.name)
    session.add(profile)
    session.flush()
    session.add(
        ProfileVersion(
            profile_id=profile.id,
            number=1,
            yaml_text=text,
            sha256=profile_sha256(settings),
            note=note,
            created_by_id=actor.id if actor is not None else None,
        )
    )
    record(
        session,
        actor=actor,
        action="profile.created",
        school_id=school_id,
        target_type="profile",
        target_id=profile.id,
        details={"name": profile.name, "slug": slug, "start_from": start_from, "version": 1},
    )
    return profile


def _id_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("id:"):
            return number
    return None


def save_version(
    session: Session, actor: User, profile: Profile, yaml_text: str, note: str = ""
) -> ProfileVersion | None:
    """Save a new version after validating it; None (nothing saved) when the text is unchanged."""
    _require_own_profile(actor, profile)
    if profile.archived:
        raise Conflict("This profile is archived. Restore it before changing it.")
    text = _normalise(yaml_text)
    latest = latest_version(session, profile)
    # The text as it was shown (requirement ids left out of its comments) is no change either.
    if text in (latest.yaml_text, _normalise(staff_text(latest.yaml_text))):
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
            "changes": [describe_change(c) for c in changes][:100] or ["only comments or layout"],
        },
    )
    if _is_assigned(session, profile):
        recompute_desired(session, profile.school_id)
    _commit(session)
    return version


def set_archived(session: Session, actor: User, profile: Profile, archived: bool) -> None:
    """Archive a profile nobody uses any more (or restore it)."""
    _require_own_profile(actor, profile)
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


def history(session: Session, actor: User, profile: Profile) -> list[HistoryEntry]:
    """Every version, newest first, each with its diff from the previous one (P-PROFILE-4)."""
    _require_own_profile(actor, profile)
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
