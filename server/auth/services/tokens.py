"""Personal API tokens: scoped, expiring, made only after a log-in with a second factor."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import ApiToken, LoginSession, SessionStage, TokenScope, User
from server.auth.services.settings import TOKEN_DAYS_RANGE, security
from server.db import utcnow
from server.errors import Forbidden, NotFound, ValidationFailed

TOKEN_PREFIX = "trl_"
# "Last used" is kept to the minute: stamping every request adds an UPDATE to each of them.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


def token_hash(plain: str) -> str:
    """What is stored for a token or session key: its SHA-256, never the key itself."""
    return hashlib.sha256(plain.encode()).hexdigest()


def issue_token(
    session: Session,
    user: User,
    name: str,
    *,
    scope: TokenScope = TokenScope.READ_WRITE,
    days: int | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Mint a token (the server's own command line, and `make_token` after its checks); the
    plain token is returned once and never stored."""
    now = now or utcnow()
    name = name.strip() or "API token"
    if len(name) > 120:
        raise ValidationFailed("Token names can be at most 120 characters.")
    longest = security(session, user.school_id).token_days
    days = longest if days is None else days
    if not TOKEN_DAYS_RANGE[0] <= days <= longest:
        raise ValidationFailed(
            f"A token can last from 1 to {longest} days in your school.",
            details=[{"field": "days", "message": f"Choose 1 to {longest} days."}],
        )
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=plain[:10],
        token_hash=token_hash(plain),
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(token)
    session.flush()
    record(
        session,
        actor=user,
        action="token.issued",
        school_id=user.school_id,
        target_type="api_token",
        target_id=token.id,
        details={"name": name, "scope": scope.value, "days": days},
    )
    return token, plain


def make_token(
    session: Session,
    login: LoginSession | None,
    name: str,
    *,
    scope: TokenScope,
    days: int | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A token for the person signed in to this browser session, which must have passed a
    second factor: a token cannot make tokens, and a password alone cannot either."""
    if login is None:
        raise Forbidden(
            "A token cannot make other tokens. Make new tokens on your account page in Trolley."
        )
    if login.stage is not SessionStage.ACTIVE or login.ended_at is not None:
        raise Forbidden("Your session has ended. Please log in again.")
    if not login.second_factor:
        raise Forbidden(
            "Making an API token needs two-step verification. Set it up on your account page, "
            "then log out and in again with your code."
        )
    return issue_token(session, login.user, name, scope=scope, days=days, now=now)


def authenticate_token(
    session: Session, plain: str, *, now: datetime | None = None, stamp: bool = True
) -> ApiToken | None:
    """The live token `plain` names, stamped as used if `stamp`; None if unknown, revoked or
    expired."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(plain)))
    now = now or utcnow()
    if (
        token is None
        or token.revoked_at is not None
        or token.expires_at <= now
        or not token.user.active
    ):
        return None
    if stamp and (token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RESOLUTION):
        token.last_used_at = now
    return token


def user_for_token(session: Session, plain: str) -> User | None:
    token = authenticate_token(session, plain)
    return token.user if token else None


def list_tokens(session: Session, user: User) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ).all()


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("No such token on your account.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(
            session,
            actor=user,
            action="token.revoked",
            school_id=user.school_id,
            target_type="api_token",
            target_id=token.id,
        )
    return token


def revoke_all_tokens(session: Session, user: User, *, now: datetime) -> int:
    """Revoke every live token of `user` (a reset, deactivation or new role); how many."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)
