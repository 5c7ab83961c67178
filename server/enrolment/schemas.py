"""API shapes for enrolment and the device's HTTPS side channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=16, max_length=200)
    public_key: str = Field(min_length=43, max_length=64, description="Ed25519, base64url")
    platform: str = Field(max_length=32, description="simulated, linux, ipados or chromeos")
    tls_public_key_pem: str | None = Field(default=None, max_length=4000)


class EnrolOut(BaseModel):
    device_id: str
    asset_tag: str
    school: str
    broker_url: str
    username: str
    password: str
    ca_pem: str | None
    client_certificate_pem: str | None
    server_keys: dict[str, str]
    server_url: str


class EnvelopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any]
    sig: str = Field(max_length=200)


class EnvelopeOut(BaseModel):
    body: dict[str, Any]
    sig: str


class WhereaboutsOut(BaseModel):
    public_address: str


class EnrolmentCodeOut(BaseModel):
    asset_tag: str
    payload: str
    expires_at: datetime


class EnrolmentStatus(BaseModel):
    asset_tag: str
    enrolled: bool
    device_id: str | None
    platform: str | None
    enrolled_at: datetime | None
    online: bool
    last_seen_at: datetime | None
