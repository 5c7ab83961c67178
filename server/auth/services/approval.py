"""The independent second person: who may approve a destructive command someone else asked for,
and the alert when an account that could approve appears (P-SEC-1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.auth.permissions import ROLE_PERMISSIONS, Permission
from server.auth.services.settings import security
from server.errors import Forbidden
from server.notifications.services import notify


def can_approve_destructive(role: Role) -> bool:
    return Permission.COMMANDS_APPROVE in ROLE_PERMISSIONS[role]


def _set_up_by(user: User) -> set[int]:
    """Who made the account what it is now: created it, gave it its role, turned it back on."""
    return {
        person
        for person in (user.created_by_id, user.role_changed_by_id, user.reactivated_by_id)
        if person is not None
    }


def check_independent_approver(
    session: Session, approver: User, requester: User | None, now: datetime
) -> None:
    """Refuse unless `approver` is a second, independent person for what `requester` asked: a
    different account with a second factor, settled for the school's cooling-off period, and
    neither of the two set up (created, re-roled, re-activated) by the other."""
    if requester is not None and requester.id == approver.id:
        raise Forbidden("Someone else must approve: the person who asked cannot approve it too.")
    if not approver.active:
        raise Forbidden("This account is turned off, so it cannot approve anything.")
    if not approver.has_second_factor:
        raise Forbidden(
            "Approving this needs two-step verification (a passkey or codes from an app) on your "
            "account. Set it up on your account page, then approve."
        )
    cooling_off = security(session, approver.school_id).cooling_off
    if now - approver.settled_since < cooling_off:
        days = cooling_off.days
        raise Forbidden(
            f"Your account cannot approve this yet: an account approves factory resets and large "
            f"wipes only {days} days after it was made, given its role or turned back on. "
            "Ask another approver, such as the headteacher."
        )
    if requester is not None and (
        requester.id in _set_up_by(approver) or approver.id in _set_up_by(requester)
    ):
        raise Forbidden(
            "Someone independent must approve: the person who asked set up your account (or you "
            "set up theirs). Ask another approver, such as the headteacher."
        )


def alert_new_approver(session: Session, *, actor: User | None, user: User, what: str) -> None:
    """Tell the headteacher and every other administrator, in the app and by e-mail, that an
    account able to approve destructive commands appeared; only its role is named (P-SEC-5)."""
    if actor is None or not can_approve_destructive(user.role):
        # The server's own command line belongs to whoever runs Trolley for the trust; a stolen
        # account is always someone in the app, and that is what the school is told about.
        return
    recipients = session.scalars(
        select(User)
        .where(
            User.school_id == user.school_id,
            User.active.is_(True),
            User.role.in_([Role.HEADTEACHER, Role.ADMIN]),
            User.id.not_in([user.id, actor.id]),
        )
        .order_by(User.id)
    ).all()
    days = security(session, user.school_id).approver_cooling_off_days
    role = user.role.label.lower()
    notify(
        session,
        school_id=user.school_id,
        users=recipients,
        kind="auth.approver_added",
        title=f"A {role} account was {what}",
        body=(
            f"A {role} account was {what} in Trolley. It will be able to approve factory resets "
            f"and large photo wipes in {days} days. If nobody at school expected this, turn the "
            "account off on the People page and tell your headteacher."
        ),
        link="/people",
    )
