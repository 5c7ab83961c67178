"""The staff personal devices register: seen by the SBM and the headteacher only (P-REG-6).

Staff phones and tablets "must be noted in school – name, make & model, serial number". The
register is about people's own property, so only the SBM and the headteacher see it; the
activity trail records who changed which entry, never the owner or serial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import Role, User
from server.db import utcnow
from server.errors import Conflict, NotFound, ValidationFailed
from server.personal_devices.models import PersonalDevice
from server.schools.models import School
from server.schools.services import day_text, local_today

# Until a permission of its own exists, the roles are checked here.
KEEPERS = frozenset({Role.SBM, Role.HEADTEACHER})
FIELDS = frozenset({"owner_id", "owner_name", "make", "model", "serial", "notes", "noted_on"})
REQUIRED = {
    "make": "Enter the make, such as Apple or Samsung.",
    "model": "Enter the model, such as iPhone 13.",
    "serial": "Enter the serial number.",
}


def can_see(user: User) -> bool:
    return user.role in KEEPERS


def check_can_see(user: User) -> None:
    """Refuse anyone but the SBM and the headteacher.

    The answer is 'not found' rather than 'forbidden': the routes declare users:read, and a
    role holding that permission (the administrator) must not learn what the register holds.
    """
    if not can_see(user):
        raise NotFound(
            "The staff personal devices register is kept by the school business manager and "
            "the headteacher only."
        )


@dataclass(frozen=True)
class Counts:
    current: int
    removed: int


def list_entries(
    session: Session, actor: User, *, include_removed: bool = False
) -> Sequence[PersonalDevice]:
    check_can_see(actor)
    query = select(PersonalDevice).where(PersonalDevice.school_id == actor.school_id)
    if not include_removed:
        query = query.where(PersonalDevice.removed_on.is_(None))
    return session.scalars(
        query.options(joinedload(PersonalDevice.owner)).order_by(
            PersonalDevice.removed_on.is_not(None),
            PersonalDevice.noted_on.desc(),
            PersonalDevice.id,
        )
    ).all()


def counts(session: Session, actor: User) -> Counts:
    check_can_see(actor)
    rows = session.execute(
        select(PersonalDevice.removed_on.is_(None), func.count())
        .where(PersonalDevice.school_id == actor.school_id)
        .group_by(PersonalDevice.removed_on.is_(None))
    ).all()
    by_state = {bool(current): n for current, n in rows}
    return Counts(current=by_state.get(True, 0), removed=by_state.get(False, 0))


def get_entry(session: Session, actor: User, entry_id: int) -> PersonalDevice:
    check_can_see(actor)
    entry = session.scalar(
        select(PersonalDevice).where(
            PersonalDevice.id == entry_id, PersonalDevice.school_id == actor.school_id
        )
    )
    if entry is None:
        raise NotFound("No such entry in your school's personal devices register.")
    return entry


def personal_devices_of(session: Session, user: User) -> Sequence[PersonalDevice]:
    """The entries still current for one member of staff (a leaver's checklist lists these)."""
    return session.scalars(
        select(PersonalDevice)
        .where(
            PersonalDevice.school_id == user.school_id,
            PersonalDevice.owner_id == user.id,
            PersonalDevice.removed_on.is_(None),
        )
        .order_by(PersonalDevice.noted_on, PersonalDevice.id)
    ).all()


def _checked(
    session: Session,
    actor: User,
    values: Mapping[str, Any],
    current: PersonalDevice | None = None,
) -> dict[str, Any]:
    """Typed values, stripped; every problem reported at once against its field."""
    unknown = set(values) - FIELDS
    if unknown:
        raise ValidationFailed(
            "Those details are not part of the personal devices register.",
            details=[{"field": name, "message": "unknown"} for name in sorted(unknown)],
        )
    clean: dict[str, Any] = {
        name: (value.strip() or None) if isinstance(value, str) else value
        for name, value in values.items()
    }
    creating = current is None
    if not creating:
        # Naming an owner one way replaces the other: an account, or a typed name.
        if clean.get("owner_id") is not None:
            clean.setdefault("owner_name", None)
        if clean.get("owner_name") is not None:
            clean.setdefault("owner_id", None)
    errors = [
        {"field": name, "message": message}
        for name, message in REQUIRED.items()
        if (creating or name in clean) and not clean.get(name)
    ]
    if creating or "owner_id" in clean or "owner_name" in clean:
        owner_id = clean.get("owner_id", current.owner_id if current else None)
        owner_name = clean.get("owner_name", current.owner_name if current else None)
        if owner_id is None and owner_name is None:
            errors.append(
                {
                    "field": "owner",
                    "message": "Choose the member of staff, or type the owner's name if they "
                    "have no account.",
                }
            )
        elif owner_id is not None and owner_name is not None:
            errors.append(
                {"field": "owner", "message": "Choose a member of staff or type a name, not both."}
            )
        elif owner_id is not None and not session.scalar(
            select(User.id).where(User.id == owner_id, User.school_id == actor.school_id)
        ):
            errors.append(
                {"field": "owner_id", "message": "That person is not a member of your school."}
            )
    if "noted_on" in clean:
        if clean["noted_on"] is None and not creating:
            errors.append({"field": "noted_on", "message": "Enter the date it was noted."})
        elif clean["noted_on"] and clean["noted_on"] > school_today(session, actor.school_id):
            errors.append({"field": "noted_on", "message": "The date noted is in the future."})
    if errors:
        raise ValidationFailed(
            "Some details need correcting before this can be saved.", details=errors
        )
    return clean


def school_today(session: Session, school_id: int) -> date:
    """Today on the school's calendar: just after midnight in summer, UTC is still yesterday."""
    return local_today(session.get_one(School, school_id), utcnow())


def add_entry(session: Session, actor: User, values: Mapping[str, Any]) -> PersonalDevice:
    """Note a member of staff's own device in the register."""
    check_can_see(actor)
    clean = _checked(session, actor, values)
    clean["noted_on"] = clean.get("noted_on") or school_today(session, actor.school_id)
    entry = PersonalDevice(school_id=actor.school_id, created_by_id=actor.id, **clean)
    session.add(entry)
    session.flush()
    record(
        session,
        actor=actor,
        action="personal_device.noted",
        school_id=actor.school_id,
        target_type="personal_device",
        target_id=entry.id,
    )
    session.commit()
    return entry


def update_entry(
    session: Session, actor: User, entry_id: int, changes: Mapping[str, Any]
) -> PersonalDevice:
    """Correct an entry; a removed entry is history and stays as it was."""
    entry = get_entry(session, actor, entry_id)
    if not entry.is_current:
        raise Conflict("This device was removed from the register; it can no longer be changed.")
    clean = _checked(session, actor, changes, entry)
    changed = sorted(name for name, value in clean.items() if getattr(entry, name) != value)
    for name in changed:
        setattr(entry, name, clean[name])
    if changed:
        # Field names only: the trail is read by roles that must not see the register itself.
        record(
            session,
            actor=actor,
            action="personal_device.edited",
            school_id=entry.school_id,
            target_type="personal_device",
            target_id=entry.id,
            details={"fields": changed},
        )
    session.commit()
    return entry


def remove(
    session: Session,
    actor: User,
    entry_id: int,
    reason: str,
    *,
    on: date | None = None,
    commit: bool = True,
) -> PersonalDevice:
    """Mark an entry removed (the device has left school, or its owner has); kept as history."""
    entry = get_entry(session, actor, entry_id)
    mark_removed(session, actor, entry, reason, on=on or school_today(session, entry.school_id))
    if commit:
        session.commit()
    else:
        session.flush()
    return entry


def mark_removed(
    session: Session, actor: User, entry: PersonalDevice, reason: str, *, on: date
) -> None:
    """Mark `entry` removed on `on` with `reason`, in the trail (the caller commits)."""
    if entry.removed_on is not None:
        raise Conflict(f"This device was already removed on {day_text(entry.removed_on)}.")
    if not reason.strip():
        raise ValidationFailed(
            "Say why it is being removed, for example 'member of staff left'.",
            details=[{"field": "reason", "message": "Enter a reason."}],
        )
    if on > school_today(session, entry.school_id) or on < entry.noted_on:
        raise ValidationFailed(
            "The removal date must be between the date it was noted and today.",
            details=[{"field": "removed_on", "message": "Check the date."}],
        )
    entry.removed_on = on
    entry.removed_reason = reason.strip()[:500]
    record(
        session,
        actor=actor,
        action="personal_device.removed",
        school_id=entry.school_id,
        target_type="personal_device",
        target_id=entry.id,
        details={"removed_on": on.isoformat()},
    )


def visible_entry(session: Session, actor: User, entry_id: int) -> PersonalDevice:
    """An entry its owner or a keeper of the register may act on; anyone else is not told of it."""
    entry = session.scalar(
        select(PersonalDevice).where(
            PersonalDevice.id == entry_id, PersonalDevice.school_id == actor.school_id
        )
    )
    if entry is None or not (entry.owner_id == actor.id or can_see(actor)):
        raise NotFound("You have no device with that number in the staff devices register.")
    return entry


def own_entries(session: Session, actor: User) -> Sequence[PersonalDevice]:
    """The devices noted in school as the actor's own, current ones only."""
    return personal_devices_of(session, actor)
