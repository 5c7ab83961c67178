"""API shapes for accounts and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.auth.models import Role


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


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=120)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenList(BaseModel):
    items: list[TokenOut]


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; store it safely.")
