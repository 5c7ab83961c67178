"""API shapes for commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.commands.models import CommandStatus


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str = Field(
        max_length=32,
        description="ping, report_inventory, wipe_photos, lost_mode, lock, factory_reset",
    )
    args: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(default="", max_length=500)


class FleetCommandIn(CommandIn):
    asset_tags: list[str] | None = Field(default=None, max_length=10_000)
    location_id: int | None = Field(default=None, description="Every device that lives there")


class CommandOut(BaseModel):
    id: int
    cmd_id: str
    batch_id: str | None
    asset_tag: str
    type: str
    args: dict[str, Any]
    reason: str
    status: CommandStatus
    requested_by: str | None
    approved_by: str | None
    created_at: datetime
    approved_at: datetime | None
    sent_at: datetime | None
    received_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    attempts: int
    detail: str
    result: dict[str, Any]


class CommandList(BaseModel):
    items: list[CommandOut]


class CommandQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CommandStatus | None = None
    type: str | None = Field(default=None, max_length=32)
    asset_tag: str | None = Field(default=None, max_length=32)
    batch_id: str | None = Field(default=None, max_length=36)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str | None = Field(
        default=None,
        pattern=r"^\d{6}$",
        description=(
            "A fresh 6-digit code from the approver's authenticator app. Needed with an API "
            "token; a browser session may instead have confirmed a passkey or code in the last "
            "5 minutes."
        ),
    )


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(default="", max_length=500)


class FreezeOut(BaseModel):
    state: str = Field(description="none, asked, frozen or lifted")
    reason: str = ""
    asked_by: str | None = None
    asked_at: datetime | None = None
    frozen_by: str | None = None
    frozen_at: datetime | None = None
    lift_asked_by: str | None = None
    lift_asked_at: datetime | None = None
    lifted_by: str | None = None
    lifted_at: datetime | None = None
