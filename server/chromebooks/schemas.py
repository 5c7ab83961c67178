"""API shapes for Chromebooks through Google (the key itself is never returned)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class LinkOut(BaseModel):
    linked: bool
    client_email: str | None = None
    admin_email: str | None = None
    customer_id: str | None = None
    working: bool = False
    tested_at: datetime | None = None
    problems: list[str] = []
    synced_at: datetime | None = None
    sync_problem: str | None = None
    matched: int = 0
    not_in_register: int = 0
    missing_from_google: list[str] = []


class SyncOut(BaseModel):
    seen: int
    matched: int
    not_in_register: int
    missing_from_google: list[str]
    message: str


class GoogleFactsOut(BaseModel):
    asset_tag: str
    in_google: bool
    status: str | None = None
    os_version: str | None = None
    model: str | None = None
    org_unit: str | None = None
    last_sync: datetime | None = None
    auto_update_expires: date | None = None
    off_site: bool | None = None
    recent_users: int | None = None
    read_at: datetime | None = None
