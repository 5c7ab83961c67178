"""Who may change web filtering, and finding the school's profiles, versions and places."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from device_profiles import Profile as ProfileSettings
from device_profiles import load_profile
from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.devices.models import Device
from server.errors import Conflict, Forbidden, NotFound
from server.profiles.models import DeviceGroup, Profile, ProfileAssignment, ProfileVersion
from server.schools.models import Location, School

# Every row a school owns that is looked up by its id.
Owned = TypeVar("Owned", Profile, ProfileAssignment, DeviceGroup, Location, Device)

# Deeper than any real tree: a loop in the parents cannot hang a page.
MAX_PLACE_DEPTH = 16


# --- permissions ----------------------------------------------------------------------------


def _require(actor: User, permission: Permission) -> None:
    if not has_permission(actor.role, permission):
        raise Forbidden("Your role does not allow this. Ask your computing lead.")


def _manages(user: User) -> bool:
    return has_permission(user.role, Permission.FILTERING_MANAGE)


def can_manage(user: User) -> bool:
    """Whether a person may change profiles and decide filter exceptions (P-PROFILE-4)."""
    return _manages(user)


def _require_staff(actor: User) -> None:
    """Staff who may ask for filter exceptions, or who manage filtering."""
    if not (_manages(actor) or has_permission(actor.role, Permission.LOANS_USE)):
        raise Forbidden("Your role does not allow this. Ask your computing lead.")


def _require_manage(actor: User) -> None:
    # P-PROFILE-4: only the 'web filtering management' role changes or reads filtering.
    _require(actor, Permission.FILTERING_MANAGE)


def _require_own_profile(actor: User, profile: Profile) -> None:
    """Refuse someone who does not manage filtering, or a profile of another school."""
    _require_manage(actor)
    if profile.school_id != actor.school_id:
        raise NotFound("There is no such profile in your school.")


# --- lookups --------------------------------------------------------------------------------


def _in_school(
    session: Session, model: type[Owned], school_id: int, row_id: int, missing: str
) -> Owned:
    """The school's row of `model` with id `row_id`; NotFound with `missing` otherwise."""
    row = session.scalar(select(model).where(model.id == row_id, model.school_id == school_id))
    if row is None:
        raise NotFound(missing)
    return row


def get_profile(session: Session, actor: User, profile_id: int) -> Profile:
    """One of the actor's school's profiles (404 otherwise)."""
    _require_manage(actor)
    return _in_school(
        session, Profile, actor.school_id, profile_id, "There is no such profile in your school."
    )


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
    """The school by id."""
    school = session.get(School, school_id)
    if school is None:  # pragma: no cover - every user belongs to a school
        raise NotFound("No such school.")
    return school


def loaded(version: ProfileVersion) -> ProfileSettings:
    """The settings of a saved version (saved versions always load)."""
    return load_profile(version.yaml_text, f"{version.profile.slug}.yaml")


def _places(session: Session, school_id: int) -> dict[int, Location]:
    """Every place of the school by id, so paths are walked without a query a step."""
    return {
        loc.id: loc
        for loc in session.scalars(select(Location).where(Location.school_id == school_id))
    }


def _ancestors(places: dict[int, Location], location_id: int | None) -> list[Location]:
    """The place and the places it is in, nearest first."""
    chain: list[Location] = []
    node = places.get(location_id) if location_id is not None else None
    while node is not None and len(chain) < MAX_PLACE_DEPTH:
        chain.append(node)
        node = places.get(node.parent_id) if node.parent_id is not None else None
    return chain


# --- saving ---------------------------------------------------------------------------------


def _commit(session: Session) -> None:
    """Commit; a clash with someone else's change at the same moment is a Conflict."""
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "Someone else changed this at the same moment. Reload the page and try again."
        ) from exc
