"""What was sent to each device, which profile the device says it applied, and what it says about
each of its settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.commands.services.catalogue import announce
from server.devices.models import Device
from server.devices.services import add_event
from server.profiles.models import (
    AppliedState,
    DeviceAppliedSetting,
    DeviceDesiredState,
    DeviceProfileStatus,
)


def desired_state(session: Session, device: Device) -> DeviceDesiredState | None:
    """The device's row in the desired-state outbox, if it has one."""
    return session.scalar(
        select(DeviceDesiredState).where(DeviceDesiredState.device_id == device.id)
    )


def mark_published(session: Session, device_id: int, sha256: str, at: datetime) -> bool:
    """The worker published `sha256` for a device; joins the caller's transaction.

    Returns False when the desired state changed meanwhile (the newer one is still to publish).
    """
    result = session.execute(
        update(DeviceDesiredState)
        .where(DeviceDesiredState.device_id == device_id, DeviceDesiredState.sha256 == sha256)
        .values(published_sha256=sha256, published_at=at)
        .execution_options(synchronize_session="fetch")
    )
    return bool(getattr(result, "rowcount", 0))


def publish_again(session: Session, device: Device) -> None:
    """The device's desired state is due again: a new identity's topics hold none of it; joins
    the caller's transaction."""
    result = session.execute(
        update(DeviceDesiredState)
        .where(DeviceDesiredState.device_id == device.id)
        .values(published_sha256=None, published_at=None)
        .execution_options(synchronize_session="fetch")
    )
    if getattr(result, "rowcount", 0):
        # Published as this commits, a first enrolment's too, rather than at the next look.
        announce(session)


def record_applied(
    session: Session,
    device: Device,
    sha256: str | None,
    at: datetime,
    *,
    settings: Sequence[Mapping[str, Any]] | None = None,
    settings_sha256: str | None = None,
) -> DeviceProfileStatus:
    """A device reported the profile hash it applied and, per setting of the document
    `settings_sha256`, what it enforced; joins the caller's transaction."""
    status = session.scalar(
        select(DeviceProfileStatus).where(DeviceProfileStatus.device_id == device.id)
    )
    if status is not None and status.reported_at > at:
        return status  # an older report arriving late changes nothing
    previous = status.applied_sha256 if status is not None else None
    if status is None:
        status = DeviceProfileStatus(
            device_id=device.id, school_id=device.school_id, reported_at=at
        )
        session.add(status)
    status.applied_sha256, status.reported_at = sha256, at
    desired = desired_state(session, device)
    version = desired.profile_version if desired is not None else None
    label = f"{version.profile.name} version {version.number}" if version else "its profile"
    if sha256 != previous and desired is not None and sha256 == desired.sha256:
        add_event(
            session,
            device,
            kind="profile",
            summary=f"Applied {label}",
            actor=None,
            details={"sha256": sha256},
        )
    if settings is not None and settings_sha256 is not None:
        changed = _replace_settings(session, device, settings, settings_sha256, at)
        status.settings_sha256, status.settings_at = settings_sha256, at
        status.settings_reported = len(settings)
        status.settings_not_enforced = sum(
            1 for entry in settings if entry["state"] != AppliedState.ENFORCED.value
        )
        if changed:
            _settings_event(session, device, settings, label)
    session.flush()
    return status


def _replace_settings(
    session: Session,
    device: Device,
    settings: Sequence[Mapping[str, Any]],
    sha256: str,
    at: datetime,
) -> bool:
    """Make the device's rows what the report says; whether any setting's state changed."""
    rows = {
        row.setting: row
        for row in session.scalars(
            select(DeviceAppliedSetting).where(DeviceAppliedSetting.device_id == device.id)
        )
    }
    changed = False
    for entry in settings:
        setting, state = str(entry["setting"]), AppliedState(entry["state"])
        detail, evidence = str(entry.get("detail", ""))[:500], dict(entry.get("evidence") or {})
        row = rows.pop(setting, None)
        if row is None:
            row = DeviceAppliedSetting(
                device_id=device.id, school_id=device.school_id, setting=setting, since=at
            )
            session.add(row)
            changed = True
        elif row.state is not state or row.profile_sha256 != sha256:
            row.since = at
            changed = True
        row.state, row.profile_sha256 = state, sha256
        if row.detail != detail or row.evidence != evidence:
            row.detail, row.evidence = detail, evidence
    for row in rows.values():
        session.delete(row)
        changed = True
    return changed


def _settings_event(
    session: Session, device: Device, settings: Sequence[Mapping[str, Any]], label: str
) -> None:
    """A timeline line when what the device enforces changes."""
    missing = [str(e["setting"]) for e in settings if e["state"] != AppliedState.ENFORCED.value]
    if not missing:
        summary = f"Enforces every setting of {label}"
    else:
        shown = ", ".join(missing[:5]) + ("…" if len(missing) > 5 else "")
        summary = f"Does not enforce {len(missing)} setting(s) of {label}: {shown}"
    add_event(
        session,
        device,
        kind="profile",
        summary=summary[:500],
        actor=None,
        details={"not_enforced": missing},
    )
