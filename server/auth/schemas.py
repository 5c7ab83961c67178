"""API shapes for accounts and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.auth.models import Role, TokenScope


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: Role
    active: bool
    totp_enabled: bool


class MeOut(UserOut):
    school: str
    school_name: str
    permissions: list[str]


class UserList(BaseModel):
    items: list[UserOut]


class UserCreateIn(Strict):
    email: str = Field(min_length=3, max_length=254)
    name: str = Field(min_length=1, max_length=120)
    role: Role
    password: str = Field(min_length=10, max_length=200)


class ReasonIn(Strict):
    reason: str = Field(min_length=1, max_length=500, description="Kept in the activity trail")


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=120)
    scope: TokenScope = Field(
        default=TokenScope.READ, description="read: GET only; read_write: may change things"
    )
    days: int | None = Field(
        default=None, ge=1, le=365, description="Days until it stops working (school's longest)"
    )


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scope: TokenScope
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenList(BaseModel):
    items: list[TokenOut]


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; store it safely.")
