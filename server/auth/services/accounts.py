"""Accounts: made, reset, turned off and back on; each change in the activity trail."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import LoginAttempt, Role, User
from server.auth.services.approval import alert_new_approver
from server.auth.services.login import SECOND_FACTOR_SETUP_FOR, end_user_sessions
from server.auth.services.passwords import check_password_strength, hash_password, normalise_email
from server.auth.services.tokens import revoke_all_tokens
from server.db import utcnow
from server.errors import Conflict, NotFound, ValidationFailed
from server.schools.models import School

log = logging.getLogger(__name__)
MAX_REASON = 500


def create_user(
    session: Session,
    *,
    actor: User | None,
    school: School,
    email: str,
    name: str,
    role: Role,
    password: str,
) -> User:
    email = normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise ValidationFailed("Enter a valid e-mail address.")
    check_password_strength(password, email)
    holder = session.scalar(select(User).where(User.email == email))
    if holder is not None:
        _refuse_taken_address(session, actor, school, email, holder)
    user = User(
        school_id=school.id,
        email=email,
        name=name.strip() or email,
        role=role,
        password_hash=hash_password(password),
        session_nonce=secrets.token_hex(8),
        created_by_id=actor.id if actor else None,
        second_factor_setup_until=utcnow() + SECOND_FACTOR_SETUP_FOR,
    )
    session.add(user)
    session.flush()
    record(
        session,
        actor=actor,
        action="user.created",
        school_id=school.id,
        target_type="user",
        target_id=user.id,
        details={"email": email, "role": role.value},
    )
    alert_new_approver(session, actor=actor, user=user, what="added")
    return user


def _refuse_taken_address(
    session: Session, actor: User | None, school: School, email: str, holder: User
) -> None:
    """An e-mail names one account across the trust, but a school is never told that another
    school has it: the detail goes to the server's log and the trail, for the trust's admin."""
    if holder.school_id == school.id:
        raise Conflict(f"There is already an account for {email} in your school.")
    if actor is None:  # the server's own command line: its user runs the whole trust
        raise Conflict(f"{email} already has an account, in the school {holder.school.slug!r}.")
    log.warning(
        "school %s tried to add %s, which already has an account in school %s",
        school.slug,
        email,
        holder.school.slug,
    )
    record(
        session,
        actor=actor,
        action="user.address_refused",
        school_id=None,
        target_type="user",
        target_id=holder.id,
        details={"email": email, "asked_by_school": school.slug},
    )
    session.commit()  # kept although the refusal below rolls the rest back
    raise Conflict(
        "That e-mail address cannot be used for a new account. Check it, or ask your trust's "
        "Trolley administrator."
    )


def reset_password(session: Session, *, actor: User | None, email: str, password: str) -> User:
    """A new password: every session and token of the account ends and any lock-out clears."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"No account for {email}.")
    check_password_strength(password, user.email)
    now = utcnow()
    user.password_hash = hash_password(password)
    # An administrator set this password: the next log-in may set up a missing second factor.
    user.second_factor_setup_until = now + SECOND_FACTOR_SETUP_FOR
    end_user_sessions(session, user, reason="password_reset", now=now)
    revoked = revoke_all_tokens(session, user, now=now)
    session.query(LoginAttempt).filter(
        LoginAttempt.email == user.email, LoginAttempt.succeeded.is_(False)
    ).delete()
    record(
        session,
        actor=actor,
        action="user.password_reset",
        school_id=user.school_id,
        target_type="user",
        target_id=user.id,
        details={"tokens_revoked": revoked},
    )
    return user


def _reason(reason: str, doing: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed(
            f"Say why you are {doing} this account; the activity trail keeps the reason.",
            details=[{"field": "reason", "message": "Give a reason."}],
        )
    return reason[:MAX_REASON]


def same_school(actor: User | None, user: User) -> None:
    if actor is not None and actor.school_id != user.school_id:
        raise NotFound("No such person in your school.")


def active_admins(session: Session, school_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.school_id == school_id, User.role == Role.ADMIN, User.active.is_(True))
        )
        or 0
    )


def deactivate(
    session: Session,
    actor: User | None,
    user: User,
    reason: str,
    *,
    now: datetime | None = None,
    commit: bool = True,
) -> User:
    """Turn an account off: no log-in, no token, every session ended; already off is fine (a
    leaver's case may close after an administrator did it). `commit=False` joins the caller's
    transaction."""
    same_school(actor, user)
    reason = _reason(reason, "turning off")
    if not user.active:
        return user
    if actor is not None and actor.id == user.id:
        raise ValidationFailed("You cannot turn off your own account. Ask another administrator.")
    if user.role is Role.ADMIN and active_admins(session, user.school_id) <= 1:
        raise Conflict(
            "This is the school's only administrator: add another before turning it off."
        )
    now = now or utcnow()
    user.active = False
    user.deactivated_at = now
    user.deactivated_by_id = actor.id if actor else None
    end_user_sessions(session, user, reason="deactivated", now=now)
    revoked = revoke_all_tokens(session, user, now=now)
    record(
        session,
        actor=actor,
        action="user.deactivated",
        school_id=user.school_id,
        target_type="user",
        target_id=user.id,
        details={"reason": reason, "tokens_revoked": revoked},
        at=now,
    )
    if commit:
        session.commit()
    return user


def reactivate(
    session: Session,
    actor: User | None,
    user: User,
    reason: str,
    *,
    now: datetime | None = None,
) -> User:
    """Turn an account back on; for approving it counts as new (the cooling-off starts again)."""
    same_school(actor, user)
    reason = _reason(reason, "turning on")
    if user.active:
        raise Conflict("This account is already on.")
    now = now or utcnow()
    user.active = True
    user.reactivated_at = now
    user.reactivated_by_id = actor.id if actor else None
    record(
        session,
        actor=actor,
        action="user.reactivated",
        school_id=user.school_id,
        target_type="user",
        target_id=user.id,
        details={"reason": reason},
        at=now,
    )
    alert_new_approver(session, actor=actor, user=user, what="turned back on")
    session.commit()
    return user


def school_users(session: Session, school_id: int) -> Sequence[User]:
    return session.scalars(
        select(User).where(User.school_id == school_id).order_by(User.role, User.name)
    ).all()


def get_person(session: Session, school_id: int, user_id: int) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.school_id == school_id))
    if user is None:
        raise NotFound("No such person in your school.")
    return user


def user_by_email(session: Session, email: str) -> User:
    """The account an e-mail names (the server's command line works across the trust)."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"No account for {email}.")
    return user


def get_school(session: Session, slug: str) -> School:
    school = session.scalar(select(School).where(School.slug == slug))
    if school is None:
        raise NotFound(f"No school with the short name {slug!r}.")
    return school
