"""Passkeys (WebAuthn) as a second factor: adding and removing them, logging in with one, and the
fresh check ("step-up") that approving a destructive command needs (P-SEC-1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from server.activity.services import record
from server.auth.models import LoginAttempt, LoginSession, Passkey, SessionStage, User
from server.auth.permissions import TOTP_REQUIRED
from server.auth.services.login import (
    TIMED_OUT,
    Throttle,
    activate_session,
    end_login,
    failed_attempts,
    live_pending_login,
    too_many_codes_message,
)
from server.db import utcnow
from server.errors import Forbidden, NotFound, RateLimited, Unauthorised, ValidationFailed

RP_NAME = "Trolley"
# Approving a destructive command needs a passkey or code checked this recently.
STEP_UP_FOR = timedelta(minutes=5)
MAX_PASSKEYS = 10
# What a challenge is for: answering one for another purpose is refused.
REGISTER, LOG_IN, STEP_UP = "register", "login", "step_up"
NOT_ACCEPTED = "That passkey was not accepted. Try again, or use a code from your app instead."


@dataclass(frozen=True)
class RelyingParty:
    """The site passkeys belong to (from the settings, checked at start-up)."""

    rp_id: str
    origin: str


def _challenge(login: LoginSession, purpose: str, challenge: bytes) -> None:
    login.passkey_challenge = bytes_to_base64url(challenge)
    login.challenge_purpose = purpose


def _take_challenge(login: LoginSession, purpose: str) -> bytes:
    """The open challenge, used up whatever happens next: an answer is never accepted twice."""
    stored, stored_purpose = login.passkey_challenge, login.challenge_purpose
    login.passkey_challenge = login.challenge_purpose = None
    if stored is None or stored_purpose != purpose:
        raise Unauthorised(NOT_ACCEPTED)
    return base64url_to_bytes(stored)


def _descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    known = {t.value for t in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=key.credential_id,
            transports=[AuthenticatorTransport(t) for t in key.transports if t in known],
        )
        for key in user.passkeys
    ]


def _live(login: LoginSession | None) -> LoginSession:
    if login is None or login.stage is not SessionStage.ACTIVE or login.ended_at is not None:
        raise Unauthorised(TIMED_OUT)
    return login


def registration_options(session: Session, login: LoginSession | None, rp: RelyingParty) -> str:
    """What the browser needs to make a passkey for the signed-in person (JSON); commits."""
    login = _live(login)
    user = login.user
    if len(user.passkeys) >= MAX_PASSKEYS:
        raise ValidationFailed(f"You can have at most {MAX_PASSKEYS} passkeys. Remove one first.")
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=RP_NAME,
        user_id=f"trolley-user-{user.id}".encode(),
        user_name=user.email,
        user_display_name=user.name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(user),
    )
    _challenge(login, REGISTER, options.challenge)
    session.commit()
    return options_to_json(options)


def add_passkey(
    session: Session,
    login: LoginSession | None,
    rp: RelyingParty,
    credential: dict[str, Any],
    name: str,
    *,
    now: datetime | None = None,
) -> Passkey:
    """Keep the public key of a passkey the browser just made; in the trail; commits."""
    now = now or utcnow()
    login = _live(login)
    user = login.user
    name = " ".join(name.split())[:120] or "Passkey"
    expected = _take_challenge(login, REGISTER)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=expected,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        session.commit()  # the challenge is spent
        raise ValidationFailed(
            "That passkey could not be added. Try again, or use another device."
        ) from exc
    taken = session.scalar(
        select(Passkey.id).where(Passkey.credential_id == verified.credential_id)
    )
    if taken is not None:
        session.commit()
        raise ValidationFailed("That passkey is already registered.")
    transports = credential.get("response", {}).get("transports") or []
    passkey = Passkey(
        user=user,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[str(t) for t in transports][:8],
        name=name,
        created_at=now,
    )
    session.add(passkey)
    session.flush()
    record(
        session,
        actor=user,
        action="auth.passkey_added",
        school_id=user.school_id,
        target_type="passkey",
        target_id=passkey.id,
        details={"name": name},
    )
    session.commit()
    return passkey


def remove_passkey(session: Session, user: User, passkey_id: int) -> None:
    """Remove one of your own passkeys (not the last second factor a role needs); commits."""
    passkey = session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id)
    )
    if passkey is None:
        raise NotFound("That passkey was not found.")
    if user.role in TOTP_REQUIRED and not user.totp_enabled and len(user.passkeys) == 1:
        raise Forbidden(
            "Your role needs a second factor: add another passkey or set up codes in an app "
            "before removing this one."
        )
    user.passkeys.remove(passkey)
    record(
        session,
        actor=user,
        action="auth.passkey_removed",
        school_id=user.school_id,
        target_type="passkey",
        target_id=passkey_id,
        details={"name": passkey.name},
    )
    session.commit()


def authentication_options(
    session: Session, login: LoginSession, rp: RelyingParty, purpose: str
) -> str:
    """A challenge for one of the person's own passkeys (JSON); commits."""
    user = login.user
    if not user.passkeys:
        raise ValidationFailed("No passkey is set up for this account.")
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        allow_credentials=_descriptors(user),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    _challenge(login, purpose, options.challenge)
    session.commit()
    return options_to_json(options)


def login_options(
    session: Session, key: str | None, rp: RelyingParty, *, now: datetime | None = None
) -> str:
    """A passkey challenge for a pending log-in (the password was right); commits."""
    return authentication_options(
        session, live_pending_login(session, key, now or utcnow()), rp, LOG_IN
    )


def step_up_options(session: Session, login: LoginSession | None, rp: RelyingParty) -> str:
    """A passkey challenge for a signed-in person about to approve something; commits."""
    return authentication_options(session, _live(login), rp, STEP_UP)


def _verify(
    login: LoginSession, rp: RelyingParty, credential: dict[str, Any], purpose: str, now: datetime
) -> Passkey:
    """The person's passkey that answered this session's open challenge; its count moves on."""
    expected = _take_challenge(login, purpose)
    raw_id = credential.get("rawId") or credential.get("id")
    try:
        credential_id = base64url_to_bytes(str(raw_id))
    except (ValueError, TypeError) as exc:
        raise Unauthorised(NOT_ACCEPTED) from exc
    passkey = next((k for k in login.user.passkeys if k.credential_id == credential_id), None)
    if passkey is None:
        raise Unauthorised(NOT_ACCEPTED)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=expected,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            # A count that does not go up means a copied authenticator or a replay: refused.
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise Unauthorised(NOT_ACCEPTED) from exc
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    return passkey


def finish_login_with_passkey(
    session: Session,
    key: str | None,
    rp: RelyingParty,
    credential: dict[str, Any],
    *,
    throttle: Throttle | None = None,
    now: datetime | None = None,
) -> tuple[User, str]:
    """The second step with a passkey: right, the pending log-in becomes a session (its new key
    is returned); a refused passkey counts as a wrong code. Commits."""
    now = now or utcnow()
    throttle = throttle or Throttle()
    login = live_pending_login(session, key, now)
    user = login.user
    spent = failed_attempts(session, LoginAttempt.email, user.email, now - throttle.window, "code")
    if spent >= throttle.max_code_failures:
        end_login(login, "too_many_codes", now)
        session.commit()
        raise RateLimited(too_many_codes_message(throttle))
    try:
        _verify(login, rp, credential, LOG_IN, now)
    except Unauthorised:
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
            session.commit()
            raise RateLimited(too_many_codes_message(throttle)) from None
        session.commit()
        raise
    return user, activate_session(
        session, login, method="password+passkey", second_factor=True, now=now
    )


def step_up_with_passkey(
    session: Session,
    login: LoginSession | None,
    rp: RelyingParty,
    credential: dict[str, Any],
    *,
    now: datetime | None = None,
) -> None:
    """A fresh passkey check for a signed-in session; commits (a refusal spends the challenge)."""
    now = now or utcnow()
    login = _live(login)
    try:
        _verify(login, rp, credential, STEP_UP, now)
    except Unauthorised:
        session.commit()
        raise
    login.stepped_up_at = now
    record(
        session,
        actor=login.user,
        action="auth.stepped_up",
        school_id=login.user.school_id,
        details={"method": "passkey"},
    )
    session.commit()


def check_stepped_up(stepped_up_at: datetime | None, now: datetime) -> None:
    """Refuse unless the person proved their second factor within the last few minutes."""
    if stepped_up_at is None or not timedelta(0) <= now - stepped_up_at <= STEP_UP_FOR:
        minutes = int(STEP_UP_FOR.total_seconds() // 60)
        raise Forbidden(
            "Approving this needs a fresh check that it is really you: confirm with your passkey "
            f"or a code (it lasts {minutes} minutes), then approve.",
            code="step_up_required",
        )


def parse_credential(body: bytes | str) -> dict[str, Any]:
    """The browser's JSON answer, checked to be an object before anything reads it."""
    try:
        value = json.loads(body)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(NOT_ACCEPTED) from exc
    if not isinstance(value, dict):
        raise ValidationFailed(NOT_ACCEPTED)
    return value
