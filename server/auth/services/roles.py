"""Changing someone's role: at once, or, when the new role could approve destructive commands,
once a second administrator confirms it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import ChangeStatus, Role, RoleChange, User
from server.auth.services.accounts import active_admins, same_school
from server.auth.services.approval import alert_new_approver, can_approve_destructive
from server.auth.services.login import end_user_sessions
from server.auth.services.tokens import revoke_all_tokens
from server.db import utcnow
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.notifications.services import notify
from server.waiting import Waiting


def change_role(
    session: Session, actor: User | None, user: User, role: Role, *, now: datetime | None = None
) -> RoleChange | None:
    """Give `user` a new role; returns the waiting change when a second administrator must
    confirm it (the server's command line applies it at once). Commits."""
    same_school(actor, user)
    now = now or utcnow()
    if role is user.role:
        raise ValidationFailed(f"{user.name} is already {_a(role)}.")
    if user.role is Role.ADMIN and user.active and active_admins(session, user.school_id) <= 1:
        raise Conflict("This is the school's only administrator: add another first.")
    if actor is None or not can_approve_destructive(role):
        _apply(session, user, role, asked_by=actor, confirmed_by=None, now=now)
        session.commit()
        return None
    waiting = session.scalar(
        select(RoleChange).where(
            RoleChange.user_id == user.id, RoleChange.status == ChangeStatus.PENDING
        )
    )
    if waiting is not None:
        raise Conflict("A role change for this person is already waiting for a second admin.")
    change = RoleChange(
        school_id=user.school_id,
        user=user,
        from_role=user.role,
        to_role=role,
        status=ChangeStatus.PENDING,
        requested_by_id=actor.id,
        requested_at=now,
    )
    session.add(change)
    session.flush()
    record(
        session,
        actor=actor,
        action="user.role_change_requested",
        school_id=user.school_id,
        target_type="user",
        target_id=user.id,
        details={"from": user.role.value, "to": role.value, "change": change.id},
        at=now,
    )
    others = session.scalars(
        select(User)
        .where(
            User.school_id == user.school_id,
            User.role == Role.ADMIN,
            User.active.is_(True),
            User.id != actor.id,
        )
        .order_by(User.id)
    ).all()
    notify(
        session,
        school_id=user.school_id,
        users=others,
        kind="auth.role_change_waiting",
        title=f"A change to the {role.label.lower()} role needs a second administrator",
        body=(
            f"An administrator asked to give an account the {role.label.lower()} role, which can "
            "approve factory resets and large photo wipes. Confirm or decline it on the People "
            "page."
        ),
        link="/people",
    )
    session.commit()
    return change


def _a(role: Role) -> str:
    label = role.label.lower()
    return f"an {label}" if label[0] in "aeiou" else f"a {label}"


def _apply(
    session: Session,
    user: User,
    role: Role,
    *,
    asked_by: User | None,
    confirmed_by: User | None,
    now: datetime,
) -> None:
    """The new role takes effect: sessions and tokens end (they were granted to the old one)."""
    before = user.role
    user.role = role
    user.role_changed_at = now
    user.role_changed_by_id = asked_by.id if asked_by else None
    end_user_sessions(session, user, reason="role_changed", now=now)
    revoked = revoke_all_tokens(session, user, now=now)
    record(
        session,
        actor=confirmed_by or asked_by,
        action="user.role_changed",
        school_id=user.school_id,
        target_type="user",
        target_id=user.id,
        details={
            "from": before.value,
            "to": role.value,
            "asked_by": asked_by.id if asked_by else None,
            "confirmed_by": confirmed_by.id if confirmed_by else None,
            "tokens_revoked": revoked,
        },
        at=now,
    )
    alert_new_approver(session, actor=confirmed_by or asked_by, user=user, what="given its role")


def _waiting(session: Session, actor: User, change_id: int) -> RoleChange:
    change = session.scalar(
        select(RoleChange)
        .where(
            RoleChange.id == change_id,
            RoleChange.school_id == actor.school_id,
            RoleChange.status == ChangeStatus.PENDING,
        )
        .options(joinedload(RoleChange.user))
    )
    if change is None:
        raise NotFound("That role change is not waiting any more.")
    return change


def confirm_role_change(
    session: Session, actor: User, change_id: int, *, now: datetime | None = None
) -> User:
    """A second administrator confirms a waiting role change; commits."""
    now = now or utcnow()
    change = _waiting(session, actor, change_id)
    if change.requested_by_id == actor.id:
        raise Forbidden("A second administrator must confirm this, not the one who asked.")
    if change.user_id == actor.id:
        raise Forbidden("Someone else must confirm a change to your own role.")
    user = change.user
    change.decided_by_id = actor.id
    change.decided_at = now
    if user.role is not change.from_role or not user.active:
        change.status = ChangeStatus.DECLINED
        session.commit()
        raise Conflict("This person's account changed since; ask for the new role again.")
    change.status = ChangeStatus.CONFIRMED
    _apply(session, user, change.to_role, asked_by=change.requested_by, confirmed_by=actor, now=now)
    session.commit()
    return user


def decline_role_change(
    session: Session, actor: User, change_id: int, *, now: datetime | None = None
) -> RoleChange:
    """Any administrator, the one who asked included, may decline a waiting role change."""
    change = _waiting(session, actor, change_id)
    change.status = ChangeStatus.DECLINED
    change.decided_by_id = actor.id
    change.decided_at = now or utcnow()
    record(
        session,
        actor=actor,
        action="user.role_change_declined",
        school_id=actor.school_id,
        target_type="user",
        target_id=change.user_id,
        details={"to": change.to_role.value, "change": change.id},
    )
    session.commit()
    return change


def waiting_role_changes(session: Session, school_id: int) -> Sequence[RoleChange]:
    return session.scalars(
        select(RoleChange)
        .where(RoleChange.school_id == school_id, RoleChange.status == ChangeStatus.PENDING)
        .options(joinedload(RoleChange.user), joinedload(RoleChange.requested_by))
        .order_by(RoleChange.requested_at)
    ).all()


def role_changes_waiting_for(session: Session, user: User) -> list[Waiting]:
    """Role changes another administrator asked for that `user` may confirm."""
    if user.role is not Role.ADMIN:
        return []
    return [
        Waiting(
            what=f"New role for {change.user.name}: {change.to_role.label.lower()}",
            count=1,
            since=change.requested_at,
            link="/people",
        )
        for change in waiting_role_changes(session, user.school_id)
        if user.id not in (change.requested_by_id, change.user_id)
    ]
