"""People who log in, their sessions and API tokens, role changes and the school's security
settings, and the log-in attempts that throttle guessing."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, utcnow
from server.schools.models import School, enum_column


class Role(enum.StrEnum):
    TEACHER = "teacher"
    COMPUTING_LEAD = "computing_lead"
    SBM = "sbm"
    HEADTEACHER = "headteacher"
    TECHNICIAN = "technician"
    GOVERNOR = "governor"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.TEACHER: "Teacher",
    Role.COMPUTING_LEAD: "Computing lead",
    Role.SBM: "School business manager",
    Role.HEADTEACHER: "Headteacher",
    Role.TECHNICIAN: "Technician",
    Role.GOVERNOR: "Governor",
    Role.ADMIN: "Administrator",
}


def _user_fk() -> ForeignKey:
    return ForeignKey("users.id", ondelete="SET NULL")


HONORIFICS = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "rev", "sir"})


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(enum_column(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Changing the nonce signs the person out everywhere (password reset, deactivation).
    session_nonce: Mapped[str] = mapped_column(String(32))
    totp_secret_sealed: Mapped[str | None] = mapped_column(String(512))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Until when a log-in may set up a second factor: opened when an administrator sets the
    # password, so someone who merely learns a password later cannot enrol their own phone.
    second_factor_setup_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Who set the account up, gave it its role or turned it back on: an approver of destructive
    # commands must be independent of the person who asked (P-SEC-1).
    created_by_id: Mapped[int | None] = mapped_column(_user_fk())
    role_changed_at: Mapped[datetime | None]
    role_changed_by_id: Mapped[int | None] = mapped_column(_user_fk())
    reactivated_at: Mapped[datetime | None]
    reactivated_by_id: Mapped[int | None] = mapped_column(_user_fk())
    deactivated_at: Mapped[datetime | None]
    deactivated_by_id: Mapped[int | None] = mapped_column(_user_fk())

    school: Mapped[School] = relationship()
    passkeys: Mapped[list[Passkey]] = relationship(
        back_populates="user", order_by="Passkey.id", cascade="all, delete-orphan"
    )

    @property
    def greeting(self) -> str:
        """How the home page greets them: 'Dr Ward' for 'Dr Helen Ward', else 'Amira'."""
        words = self.name.split()
        if len(words) > 1 and words[0].rstrip(".").lower() in HONORIFICS:
            return f"{words[0]} {words[-1]}"
        return words[0] if words else self.name

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_nonce}"

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret_sealed is not None

    @property
    def has_second_factor(self) -> bool:
        """A code from an authenticator app or a passkey (TOTP stays as the fallback)."""
        return self.totp_enabled or bool(self.passkeys)

    @property
    def settled_since(self) -> datetime:
        """When the account last became what it is now: made, given its role, turned back on."""
        return max(
            moment
            for moment in (self.created_at, self.role_changed_at, self.reactivated_at)
            if moment is not None
        )


class Passkey(Base):
    """A WebAuthn credential someone registered as their second factor; only its public key."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1024), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(2048))
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="passkeys")


class TokenScope(enum.StrEnum):
    READ = "read"
    READ_WRITE = "read_write"

    @property
    def label(self) -> str:
        return "Read only" if self is TokenScope.READ else "Read and change"


class ApiToken(Base):
    """A personal API token; only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[TokenScope] = mapped_column(enum_column(TokenScope))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class SessionStage(enum.StrEnum):
    PENDING = "pending"  # the password was right; the code is still to come
    ACTIVE = "active"


class LoginSession(Base):
    """One signed-in browser, kept on the server so signing out, idle time and a reset end it."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    stage: Mapped[SessionStage] = mapped_column(enum_column(SessionStage))
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(64))
    code_failures: Mapped[int] = mapped_column(Integer, default=0)
    # The one passkey challenge this browser may answer next (used once, then cleared), and
    # when it last proved its second factor (approving destructive commands needs it fresh).
    passkey_challenge: Mapped[str | None] = mapped_column(String(128))
    challenge_purpose: Mapped[str | None] = mapped_column(String(16))
    stepped_up_at: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship()


class ChangeStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


class RoleChange(Base):
    """A new role that lets someone approve destructive commands waits for a second admin."""

    __tablename__ = "role_changes"
    __table_args__ = (
        Index(
            "uq_role_changes_pending_user",
            "user_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    from_role: Mapped[Role] = mapped_column(enum_column(Role))
    to_role: Mapped[Role] = mapped_column(enum_column(Role))
    status: Mapped[ChangeStatus] = mapped_column(enum_column(ChangeStatus))
    requested_by_id: Mapped[int | None] = mapped_column(_user_fk())
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(_user_fk())
    decided_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])


class SecuritySettings(Base):
    """A school's idle time-out, approver cooling-off and token lifetime; no row = defaults."""

    __tablename__ = "security_settings"

    school_id: Mapped[int] = mapped_column(
        ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True
    )
    idle_minutes: Mapped[int] = mapped_column(Integer)
    approver_cooling_off_days: Mapped[int] = mapped_column(Integer)
    token_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(_user_fk())


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    # "password" or "code": wrong codes are counted on their own as well (P-SEC-1).
    stage: Mapped[str] = mapped_column(String(16), default="password")
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=utcnow)
