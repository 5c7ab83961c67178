"""API shapes for escrow (the secret itself only ever in a reveal response)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.escrow.models import SecretKind


class DepositIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: SecretKind
    secret: str = Field(min_length=1, max_length=500)
    label: str = Field(default="", max_length=120)


class RevealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=300)


class DestroyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


class EscrowOut(BaseModel):
    id: int
    asset_tag: str
    kind: SecretKind
    label: str
    deposited_by: str | None
    deposited_at: datetime
    last_read_at: datetime | None
    destroyed_at: datetime | None
    destroyed_reason: str | None


class EscrowList(BaseModel):
    items: list[EscrowOut]


class Revealed(EscrowOut):
    secret: str
