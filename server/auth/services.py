"""Accounts: passwords, log-in throttling, the second factor and personal API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.activity.services import record
from server.auth.models import ApiToken, LoginAttempt, Role, User
from server.auth.permissions import TOTP_REQUIRED
from server.crypto import SecretBox
from server.db import utcnow
from server.errors import Conflict, NotFound, RateLimited, Unauthorised, ValidationFailed
from server.schools.models import School

_hasher = PasswordHasher()
# Verifying against this keeps unknown e-mails as slow as known ones (no user enumeration).
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-the-same-cost")
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "trl_"
# "Last used" is kept to the minute: stamping every request adds an UPDATE to each of them.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)
TOTP_ISSUER = "Trolley"


@dataclass(frozen=True)
class Throttle:
    max_failures: int = 5
    max_failures_per_address: int = 20
    window: timedelta = timedelta(minutes=15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str, email: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Passwords need at least {MIN_PASSWORD_LENGTH} characters. "
            "Three random words make a strong one that is easy to remember."
        )
    if password.lower() == email.lower() or password.lower() in {
        "password123",
        "password1234",
        "qwertyuiop",
        "1234567890",
    }:
        raise ValidationFailed("That password is too easy to guess. Please choose another.")


def normalise_email(email: str) -> str:
    return email.strip().lower()


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
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"There is already an account for {email}.")
    user = User(
        school_id=school.id,
        email=email,
        name=name.strip() or email,
        role=role,
        password_hash=hash_password(password),
        session_nonce=secrets.token_hex(8),
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
    return user


def _failures(
    session: Session, column: InstrumentedAttribute[str], value: str, since: datetime
) -> int:
    query = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(column == value, LoginAttempt.at >= since, LoginAttempt.succeeded.is_(False))
    )
    return session.scalar(query) or 0


def authenticate(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    throttle: Throttle = Throttle(),
    now: datetime | None = None,
) -> User:
    """Check a password, throttling per account and per address; commits the attempt."""
    now = now or utcnow()
    email = normalise_email(email)
    since = now - throttle.window
    locked = (
        _failures(session, LoginAttempt.email, email, since) >= throttle.max_failures
        or _failures(session, LoginAttempt.address, address, since)
        >= throttle.max_failures_per_address
    )
    if locked:
        minutes = int(throttle.window.total_seconds() // 60)
        raise RateLimited(
            "Too many failed log-ins. For your safety, log-in is paused for "
            f"{minutes} minutes. If you have forgotten your password, ask your administrator."
        )
    user = session.scalar(select(User).where(User.email == email))
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(email=email, address=address, succeeded=ok, at=now))
    if not ok:
        failures = _failures(session, LoginAttempt.email, email, since) + 1
        if failures == throttle.max_failures:
            record(
                session,
                actor=None,
                actor_label=email,
                action="auth.locked_out",
                school_id=user.school_id if user else None,
                details={"address": address, "failures": failures},
            )
        session.commit()
        raise Unauthorised("That e-mail and password do not match. Check them and try again.")
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.commit()
    return user


def needs_second_factor(user: User) -> bool:
    return user.role in TOTP_REQUIRED


def complete_login(session: Session, user: User, *, address: str, method: str) -> None:
    user.last_login_at = utcnow()
    record(
        session,
        actor=user,
        action="auth.logged_in",
        school_id=user.school_id,
        details={"address": address, "method": method},
    )
    session.commit()


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def _accept_code(secret: str, code: str, last_step: int | None, now: datetime) -> int | None:
    """The time step the code belongs to, or None; a code is never accepted twice."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def enable_totp(session: Session, user: User, box: SecretBox, secret: str, code: str) -> None:
    step = _accept_code(secret, code, None, utcnow())
    if step is None:
        raise ValidationFailed("That code did not match. Check your phone's clock and try again.")
    user.totp_secret_sealed = box.seal(secret)
    user.totp_last_step = step
    record(
        session,
        actor=user,
        action="auth.totp_enabled",
        school_id=user.school_id,
        target_type="user",
        target_id=user.id,
    )
    session.commit()


def verify_totp(session: Session, user: User, box: SecretBox, code: str) -> None:
    if user.totp_secret_sealed is None:
        raise ValidationFailed("Two-step verification is not set up for this account.")
    step = _accept_code(box.open(user.totp_secret_sealed), code, user.totp_last_step, utcnow())
    if step is None:
        session.add(LoginAttempt(email=user.email, address="totp", succeeded=False, at=utcnow()))
        session.commit()
        raise Unauthorised(
            "That code did not match. Codes change every 30 seconds; try the new one."
        )
    user.totp_last_step = step
    session.commit()


def reset_password(session: Session, *, actor: User | None, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"No account for {email}.")
    check_password_strength(password, user.email)
    user.password_hash = hash_password(password)
    user.session_nonce = secrets.token_hex(8)  # signs the person out everywhere
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
    )
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a personal API token; the plain token is returned once and never stored."""
    name = name.strip() or "API token"
    if len(name) > 120:
        raise ValidationFailed("Token names can be at most 120 characters.")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=plain[:10], token_hash=_token_hash(plain))
    session.add(token)
    session.flush()
    record(
        session,
        actor=user,
        action="token.issued",
        school_id=user.school_id,
        target_type="api_token",
        target_id=token.id,
        details={"name": name},
    )
    return token, plain


def user_for_token(session: Session, plain: str) -> User | None:
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(plain)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RESOLUTION:
        token.last_used_at = now
    return token.user


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


def load_session_user(session: Session, user_id: str) -> User | None:
    """flask-login's loader: the id carries the session nonce, so resets sign people out."""
    raw_id, _, nonce = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    user = session.get(User, int(raw_id))
    if user is None or not user.active or not secrets.compare_digest(user.session_nonce, nonce):
        return None
    return user


def school_users(session: Session, school_id: int) -> Sequence[User]:
    return session.scalars(
        select(User).where(User.school_id == school_id).order_by(User.role, User.name)
    ).all()


def get_school(session: Session, slug: str) -> School:
    school = session.scalar(select(School).where(School.slug == slug))
    if school is None:
        raise NotFound(f"No school with the short name {slug!r}.")
    return school
