"""Profiles that follow a loan: a device at home gets the school's home-loan profile."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.profiles.models import (
    DeviceGroup,
    DeviceGroupMember,
    Profile,
    ProfileAssignment,
    TargetType,
)
from server.profiles.services.outbox import recompute_desired
from server.profiles.services.profile_versions import _add_profile
from server.profiles.services.texts import _normalise, slugify, starting_text
from server.profiles.services.validation import _refuse, validate_text

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
    return _add_profile(
        session,
        school_id=school_id,
        actor=None,
        slug=slug,
        text=text,
        settings=checked.profile,
        note="Made for home loans",
        start_from="home-loan",
    )


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
