"""Each school's security settings: idle time-out, approver cooling-off, token lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import SecuritySettings, User
from server.db import utcnow
from server.errors import ValidationFailed

# P-SEC-4: the schools' own policies ask for a lock-out after 10 minutes idle.
DEFAULT_IDLE_MINUTES = 10
IDLE_MINUTES_RANGE = (2, 60)
DEFAULT_COOLING_OFF_DAYS = 7
COOLING_OFF_DAYS_RANGE = (0, 90)
DEFAULT_TOKEN_DAYS = 90
TOKEN_DAYS_RANGE = (1, 365)


@dataclass(frozen=True)
class Security:
    """What a school's security settings come to, defaults filled in."""

    idle_minutes: int = DEFAULT_IDLE_MINUTES
    approver_cooling_off_days: int = DEFAULT_COOLING_OFF_DAYS
    token_days: int = DEFAULT_TOKEN_DAYS

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.idle_minutes)

    @property
    def cooling_off(self) -> timedelta:
        return timedelta(days=self.approver_cooling_off_days)


def security(session: Session, school_id: int) -> Security:
    """The school's settings, or the defaults where it has chosen none."""
    saved = session.get(SecuritySettings, school_id)
    if saved is None:
        return Security()
    return Security(saved.idle_minutes, saved.approver_cooling_off_days, saved.token_days)


def _in_range(name: str, value: int, bounds: tuple[int, int], unit: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValidationFailed(
            f"Choose between {low} and {high} {unit}.",
            details=[{"field": name, "message": f"Choose {low} to {high} {unit}."}],
        )


def set_security(
    session: Session,
    actor: User | None,
    school_id: int,
    *,
    idle_minutes: int | None = None,
    approver_cooling_off_days: int | None = None,
    token_days: int | None = None,
) -> Security:
    """Change some of a school's security settings; the trail keeps old and new; commits.

    The web page offers only the idle time-out: the cooling-off and token lifetime are changed
    on the server, so a stolen administrator account cannot shorten them.
    """
    if idle_minutes is not None:
        _in_range("idle_minutes", idle_minutes, IDLE_MINUTES_RANGE, "minutes")
    if approver_cooling_off_days is not None:
        _in_range(
            "approver_cooling_off_days", approver_cooling_off_days, COOLING_OFF_DAYS_RANGE, "days"
        )
    if token_days is not None:
        _in_range("token_days", token_days, TOKEN_DAYS_RANGE, "days")
    before = security(session, school_id)
    saved = session.get(SecuritySettings, school_id)
    if saved is None:
        saved = SecuritySettings(
            school_id=school_id,
            idle_minutes=before.idle_minutes,
            approver_cooling_off_days=before.approver_cooling_off_days,
            token_days=before.token_days,
        )
        session.add(saved)
    if idle_minutes is not None:
        saved.idle_minutes = idle_minutes
    if approver_cooling_off_days is not None:
        saved.approver_cooling_off_days = approver_cooling_off_days
    if token_days is not None:
        saved.token_days = token_days
    saved.updated_at = utcnow()
    saved.updated_by_id = actor.id if actor else None
    after = Security(saved.idle_minutes, saved.approver_cooling_off_days, saved.token_days)
    changed = {
        name: [getattr(before, name), getattr(after, name)]
        for name in ("idle_minutes", "approver_cooling_off_days", "token_days")
        if getattr(before, name) != getattr(after, name)
    }
    if changed:
        record(
            session,
            actor=actor,
            action="school.security_changed",
            school_id=school_id,
            target_type="school",
            target_id=school_id,
            details=changed,
        )
    session.commit()
    return after
