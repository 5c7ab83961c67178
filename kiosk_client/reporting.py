"""The device's report: its inventory, the profile it applied, each setting as read back from the
machine, and whether it has a passcode and encrypted storage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiosk_client.adapters.base import PlatformAdapter
from kiosk_client.state import AgentState
from kiosk_client.version import AGENT_VERSION
from mqtt.messages import DEFAULT_DEVICE_TTL, Report

__all__ = ["build_report"]

_MAX_ERROR = 500


def build_report(
    adapter: PlatformAdapter,
    state: AgentState,
    desired: Mapping[str, Any] | None,
    *,
    kid: str,
    device_id: str,
    asset_tag: str,
    uptime: int,
    now: int,
) -> Report:
    """The report as the device stands now; settings describe the desired document it holds."""
    inventory = adapter.inventory()
    extra: dict[str, Any] = {
        "platform": adapter.name,
        "asset_tag": asset_tag,
        "uptime_seconds": uptime,
    }
    extra.update(inventory.extra)
    if state.profile_error:
        error = state.profile_error
        extra["profile_error"] = error if len(error) <= _MAX_ERROR else error[:499] + "…"
    document = desired.get("profile") if desired is not None else None
    settings: list[dict[str, Any]] | None = None
    settings_sha256: str | None = None
    if isinstance(document, Mapping) and isinstance(document.get("sha256"), str):
        # Read back from the machine now, whether or not applying it went well.
        settings = [result.to_wire() for result in adapter.settings_report(document)]
        settings_sha256 = str(document["sha256"])
    return Report(
        kid=kid,
        device_id=device_id,
        iat=now,
        exp=now + DEFAULT_DEVICE_TTL,
        os=inventory.os,
        os_version=inventory.os_version,
        model=inventory.model,
        serial=inventory.serial,
        agent_version=AGENT_VERSION,
        storage_total_bytes=inventory.storage_total_bytes,
        storage_free_bytes=inventory.storage_free_bytes,
        battery_percent=inventory.battery_percent,
        charging=inventory.charging,
        photo_count=inventory.photo_count,
        apps=inventory.apps,
        profile_version=state.applied_version,
        profile_sha256=state.applied_sha256,
        lost_mode=inventory.lost_mode,
        locked=inventory.locked,
        settings=tuple(settings) if settings is not None else None,
        settings_sha256=settings_sha256,
        passcode=inventory.passcode,
        storage_encrypted=inventory.storage_encrypted,
        security_detail=dict(inventory.security_detail) or None,
        network=dict(inventory.network) or None,
        extra=extra,
    )
