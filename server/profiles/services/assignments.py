"""Which profile is given to the whole school, a place, a device group or one device."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.db import utcnow
from server.errors import Conflict, NotFound, ValidationFailed
from server.profiles.models import Profile, ProfileAssignment, TargetType
from server.profiles.pages import AssignmentRow
from server.profiles.services.lookups import (
    _commit,
    _in_school,
    _require_manage,
    _require_own_profile,
)
from server.profiles.services.outbox import recompute_desired
from server.profiles.services.targets import _affected, describe_target, target_labels


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


def assign(
    session: Session,
    actor: User,
    profile: Profile,
    target_type: TargetType | str,
    target_id: int | None,
) -> ProfileAssignment:
    """Apply a profile to a target, replacing the target's previous profile if it had one."""
    _require_own_profile(actor, profile)
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
    assignment = _in_school(
        session,
        ProfileAssignment,
        actor.school_id,
        assignment_id,
        "There is no such assignment in your school.",
    )
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
            ProfileAssignment.id == assignment_id, ProfileAssignment.school_id == actor.school_id
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
