"""Log-in: the password with throttling, the second factor with its own limit, and sessions kept
on the server so that signing out, idle time, a reset or a deactivation really end them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload

from server.activity.services import record
from server.auth.models import LoginAttempt, LoginSession, SessionStage, User
from server.auth.permissions import TOTP_REQUIRED
from server.auth.services.passwords import (
    hash_password,
    needs_rehash,
    normalise_email,
    password_matches,
)
from server.auth.services.settings import IDLE_MINUTES_RANGE, security
from server.auth.services.tokens import token_hash
from server.crypto import SecretBox
from server.db import is_contention, utcnow
from server.errors import Forbidden, RateLimited, Unauthorised, ValidationFailed

TOTP_ISSUER = "Trolley"
# The code must follow the password within this time, from the same browser.
PENDING_FOR = timedelta(minutes=5)
# Idle time is measured to this resolution: a page view writes to its session at most this often.
SESSION_TOUCH = timedelta(seconds=30)
SHORTEST_IDLE = timedelta(minutes=IDLE_MINUTES_RANGE[0])
TIMED_OUT = "Your log-in timed out. Please start again."
# After an administrator sets someone's password (a new account, a reset), their log-ins may set
# up a missing second factor for this long; later, only a new reset opens the window again.
SECOND_FACTOR_SETUP_FOR = timedelta(days=7)


@dataclass(frozen=True)
class Throttle:
    max_failures: int = 5
    max_failures_per_address: int = 20
    # Wrong second-factor codes, per pending log-in and per account in `window` (P-SEC-1).
    max_code_failures: int = 5
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Resumed:
    """A request's session: the live one, or None (and whether idleness just ended it)."""

    login: LoginSession | None
    timed_out: bool = False
    idle_minutes: int = 0


def failed_attempts(
    session: Session,
    column: InstrumentedAttribute[str],
    value: str,
    since: datetime,
    stage: str | None = None,
) -> int:
    """How many log-in attempts matching `column == value` failed since `since` (at one stage)."""
    query = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(column == value, LoginAttempt.at >= since, LoginAttempt.succeeded.is_(False))
    )
    if stage is not None:
        query = query.where(LoginAttempt.stage == stage)
    return session.scalar(query) or 0


def _paused(throttle: Throttle) -> str:
    minutes = int(throttle.window.total_seconds() // 60)
    return (
        f"Too many failed log-ins. For your safety, log-in is paused for {minutes} minutes. "
        "If you have forgotten your password, ask your administrator."
    )


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
    # Wrong codes count here too: five of them pause the password step as well.
    locked = (
        failed_attempts(session, LoginAttempt.email, email, since) >= throttle.max_failures
        or failed_attempts(session, LoginAttempt.address, address, since)
        >= throttle.max_failures_per_address
    )
    if locked:
        raise RateLimited(_paused(throttle))
    user = session.scalar(select(User).where(User.email == email))
    ok = password_matches(user.password_hash if user else None, password)
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(email=email, address=address, stage="password", succeeded=ok, at=now))
    if not ok:
        failures = failed_attempts(session, LoginAttempt.email, email, since) + 1
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
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.commit()
    return user


def needs_second_factor(user: User) -> bool:
    """Privileged roles always; anyone else who has chosen to set one up, too."""
    return user.role in TOTP_REQUIRED or user.has_second_factor


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


def enable_totp(
    session: Session,
    user: User,
    box: SecretBox,
    secret: str,
    code: str,
    *,
    now: datetime | None = None,
) -> None:
    """Turn on the second factor once a code from the new secret matches; commits."""
    step = _accept_code(secret, code, None, now or utcnow())
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


# --- sessions ----------------------------------------------------------------------------------


def _new_key() -> tuple[str, str]:
    plain = secrets.token_urlsafe(32)
    return plain, token_hash(plain)


def _by_key(session: Session, key: str | None) -> LoginSession | None:
    if not key or len(key) > 100:
        return None
    return session.scalar(
        select(LoginSession)
        .where(LoginSession.key_hash == token_hash(key))
        .options(joinedload(LoginSession.user))
    )


def end_login(login: LoginSession, reason: str, now: datetime) -> None:
    """End a log-in (once: the first reason stands)."""
    if login.ended_at is None:
        login.ended_at = now
        login.end_reason = reason


def activate_session(
    session: Session, login: LoginSession, *, method: str, second_factor: bool, now: datetime
) -> str:
    """The session becomes live under a new key (a key seen before the log-in is worthless)."""
    plain, hashed = _new_key()
    user = login.user
    login.key_hash = hashed
    login.stage = SessionStage.ACTIVE
    login.method = method
    login.second_factor = second_factor
    login.last_seen_at = now
    user.last_login_at = now
    record(
        session,
        actor=user,
        action="auth.logged_in",
        school_id=user.school_id,
        details={"address": login.address, "method": method},
    )
    session.commit()
    return plain


def start_session(
    session: Session,
    user: User,
    *,
    address: str,
    method: str = "password",
    second_factor: bool = False,
    now: datetime | None = None,
) -> str:
    """A signed-in session for `user` (the caller has checked whatever the log-in needs); its
    key, which only the browser keeps; commits."""
    now = now or utcnow()
    login = LoginSession(
        user=user,
        key_hash="",
        stage=SessionStage.PENDING,
        method=method,
        address=address[:64],
        second_factor=second_factor,
        code_failures=0,
        started_at=now,
        last_seen_at=now,
    )
    session.add(login)
    return activate_session(session, login, method=method, second_factor=second_factor, now=now)


def check_may_set_up(user: User, now: datetime) -> None:
    """Setting up a second factor at log-in is trusted only just after an administrator set the
    password: someone who learns a password later must not enrol their own phone."""
    until = user.second_factor_setup_until
    if until is None or now > until:
        raise Forbidden(
            "Your account needs two-step verification, which is set up at your first log-in "
            "after an administrator sets your password. Ask your administrator to reset your "
            "password, then log in and set it up straight away.",
            code="second_factor_setup_closed",
        )


def open_pending_login(
    session: Session, user: User, *, address: str, now: datetime | None = None
) -> str:
    """The password was right and a second factor must follow (or, for an account that must
    have one and has none, be set up while the window is open): a pending log-in's key;
    commits."""
    now = now or utcnow()
    if not user.has_second_factor:
        check_may_set_up(user, now)
    plain, hashed = _new_key()
    session.add(
        LoginSession(
            user=user,
            key_hash=hashed,
            stage=SessionStage.PENDING,
            method="password",
            address=address[:64],
            second_factor=False,
            code_failures=0,
            started_at=now,
            last_seen_at=now,
        )
    )
    session.commit()
    return plain


def pending_user(session: Session, key: str | None, *, now: datetime | None = None) -> User:
    """Whose pending log-in `key` is; a finished, ended or stale one must start again."""
    return live_pending_login(session, key, now or utcnow()).user


def live_pending_login(session: Session, key: str | None, now: datetime) -> LoginSession:
    """The pending log-in `key` names, refused if finished, ended or stale."""
    login = _by_key(session, key)
    if (
        login is None
        or login.stage is not SessionStage.PENDING
        or login.ended_at is not None
        or now - login.started_at > PENDING_FOR
        or not login.user.active
    ):
        raise Unauthorised(TIMED_OUT)
    return login


def verify_login_code(
    session: Session,
    box: SecretBox,
    key: str | None,
    code: str,
    *,
    throttle: Throttle = Throttle(),
    now: datetime | None = None,
) -> tuple[User, str]:
    """Check the code of a pending log-in: right, it becomes a session (its new key is returned);
    wrong too often, for this log-in or this account, the log-in is over. Commits."""
    now = now or utcnow()
    login = live_pending_login(session, key, now)
    user = login.user
    if user.totp_secret_sealed is None:
        raise ValidationFailed("Two-step verification is not set up for this account.")
    since = now - throttle.window
    spent = failed_attempts(session, LoginAttempt.email, user.email, since, stage="code")
    if spent >= throttle.max_code_failures:
        end_login(login, "too_many_codes", now)
        session.commit()
        raise RateLimited(too_many_codes_message(throttle))
    step = _accept_code(box.open(user.totp_secret_sealed), code, user.totp_last_step, now)
    if step is None:
        login.code_failures += 1
        session.add(
            LoginAttempt(
                email=user.email, address=login.address, stage="code", succeeded=False, at=now
            )
        )
        if (
            login.code_failures >= throttle.max_code_failures
            or spent + 1 >= throttle.max_code_failures
        ):
            end_login(login, "too_many_codes", now)
            record(
                session,
                actor=None,
                actor_label=user.email,
                action="auth.code_locked_out",
                school_id=user.school_id,
                details={"address": login.address, "failures": spent + 1},
            )
            session.commit()
            raise RateLimited(too_many_codes_message(throttle))
        session.commit()
        raise Unauthorised(
            "That code did not match. Codes change every 30 seconds; try the new one."
        )
    user.totp_last_step = step
    return user, activate_session(
        session, login, method="password+totp", second_factor=True, now=now
    )


def confirm_code(
    session: Session,
    box: SecretBox,
    user: User,
    code: str,
    *,
    throttle: Throttle = Throttle(),
    now: datetime | None = None,
) -> datetime:
    """A fresh code from the person's app, for approving something destructive ("step-up"):
    when it was checked. Wrong codes count towards the same limit as at log-in; commits them."""
    now = now or utcnow()
    if user.totp_secret_sealed is None:
        raise Forbidden(
            "A code check needs two-step verification with an app on your account.",
            code="step_up_required",
        )
    spent = failed_attempts(session, LoginAttempt.email, user.email, now - throttle.window, "code")
    if spent >= throttle.max_code_failures:
        raise RateLimited(too_many_codes_message(throttle))
    step = _accept_code(box.open(user.totp_secret_sealed), code, user.totp_last_step, now)
    if step is None:
        session.add(
            LoginAttempt(email=user.email, address="step-up", stage="code", succeeded=False, at=now)
        )
        session.commit()
        raise Forbidden(
            "That code did not match. Codes change every 30 seconds; try the new one.",
            code="step_up_required",
        )
    user.totp_last_step = step
    return now


def step_up_with_code(
    session: Session,
    box: SecretBox,
    login: LoginSession | None,
    code: str,
    *,
    now: datetime | None = None,
) -> None:
    """A fresh code check for a signed-in session (before approving); commits."""
    if login is None or login.stage is not SessionStage.ACTIVE or login.ended_at is not None:
        raise Unauthorised(TIMED_OUT)
    login.stepped_up_at = confirm_code(session, box, login.user, code, now=now)
    record(
        session,
        actor=login.user,
        action="auth.stepped_up",
        school_id=login.user.school_id,
        details={"method": "code"},
    )
    session.commit()


def too_many_codes_message(throttle: Throttle) -> str:
    """What a person is told when wrong codes have ended their log-in."""
    minutes = int(throttle.window.total_seconds() // 60)
    return (
        "Too many wrong codes. For your safety this log-in has ended; start again with your "
        f"password in {minutes} minutes. If your codes never work, ask your administrator."
    )


def finish_login_with_new_totp(
    session: Session,
    box: SecretBox,
    key: str | None,
    secret: str,
    code: str,
    *,
    now: datetime | None = None,
) -> tuple[User, str]:
    """First log-in of someone who must use a second factor: set it up, then the session."""
    now = now or utcnow()
    login = live_pending_login(session, key, now)
    user = login.user
    if user.has_second_factor:
        raise Unauthorised(TIMED_OUT)
    check_may_set_up(user, now)
    user.second_factor_setup_until = None  # the window closes once it is used
    enable_totp(session, user, box, secret, code, now=now)
    return user, activate_session(
        session, login, method="password+totp-setup", second_factor=True, now=now
    )


def resume_session(
    session: Session, user_ref: str, key: str | None, *, now: datetime | None = None
) -> Resumed:
    """The live session a request's cookie names (the id carries the account's nonce, so a reset
    signs people out), ended here if it has been idle longer than the school allows."""
    now = now or utcnow()
    raw_id, _, nonce = user_ref.partition(":")
    if not raw_id.isdigit():
        return Resumed(None)
    login = _by_key(session, key)
    if (
        login is None
        or login.user_id != int(raw_id)
        or login.stage is not SessionStage.ACTIVE
        or login.ended_at is not None
    ):
        return Resumed(None)
    user = login.user
    if not user.active or not secrets.compare_digest(user.session_nonce, nonce):
        return Resumed(None)
    idle = now - login.last_seen_at
    # Most requests come well within the shortest time-out a school may set: no settings query.
    allowed = security(session, user.school_id) if idle > SHORTEST_IDLE else None
    if allowed is not None and idle > allowed.idle:
        end_login(login, "idle", now)
        session.commit()
        return Resumed(None, timed_out=True, idle_minutes=allowed.idle_minutes)
    if idle >= SESSION_TOUCH:
        login.last_seen_at = now
        try:
            session.commit()
        except DBAPIError as exc:
            if not is_contention(exc):
                raise
            # Idle time is kept to a resolution, not as a record: a page view never fails because
            # another writer holds the database (SQLite refuses a read turned write at once).
            session.rollback()
    return Resumed(login)


def end_session(session: Session, key: str | None, *, now: datetime | None = None) -> None:
    """Signing out: the session is over on the server, so a copy of the cookie is worthless."""
    login = _by_key(session, key)
    if login is not None:
        end_login(login, "signed_out", now or utcnow())
        session.commit()


def end_user_sessions(session: Session, user: User, *, reason: str, now: datetime) -> None:
    """Sign `user` out everywhere (a reset, a deactivation, a new role); the caller commits."""
    user.session_nonce = secrets.token_hex(8)
    session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason[:32])
        .execution_options(synchronize_session="fetch")
    )
