"""What each device should have: the desired-state outbox the worker publishes."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from device_profiles import Profile as ProfileSettings
from device_profiles import ProfileValidationError, compile_profile, with_filter_exceptions
from server.commands.services.catalogue import announce
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.profiles.models import (
    CLEARED_SHA256,
    DeviceDesiredState,
    ExceptionStatus,
    FilterException,
    ProfileAssignment,
    TargetType,
)
from server.profiles.services.lookups import loaded
from server.profiles.services.resolution import _Plan, _plan, _resolve

log = logging.getLogger(__name__)


def _active_exceptions(session: Session, school_id: int, now: datetime) -> list[FilterException]:
    return list(
        session.scalars(
            select(FilterException)
            .where(
                FilterException.school_id == school_id,
                FilterException.status == ExceptionStatus.APPROVED,
                FilterException.starts_at <= now,
                FilterException.ends_at > now,
            )
            .order_by(FilterException.id)
        )
    )


def _applies(plan: _Plan, exception: FilterException, device_id: int, places: set[int]) -> bool:
    if exception.target_type is TargetType.DEVICE:
        return exception.target_id == device_id
    if exception.target_type is TargetType.GROUP:
        return exception.target_id in plan.memberships.get(device_id, [])
    if exception.target_type is TargetType.LOCATION:
        return exception.target_id in places
    return exception.target_type is TargetType.SCHOOL


def _with_exceptions(
    profile: ProfileSettings, url_lists: Sequence[Sequence[str]]
) -> ProfileSettings:
    """The profile with every exception's addresses unblocked; one that does not fit is skipped."""
    try:
        return with_filter_exceptions(profile, [u for urls in url_lists for u in urls])
    except ProfileValidationError:
        pass
    result = profile
    for urls in url_lists:
        try:
            result = with_filter_exceptions(result, urls)
        except ProfileValidationError:
            log.warning("a filter exception does not fit profile %s; skipped", profile.slug)
    return result


def recompute_desired(
    session: Session,
    school_id: int,
    device_ids: Sequence[int] | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Bring the desired-state outbox up to date for some (or all) devices; joins the caller's
    transaction. Returns how many rows changed."""
    now = now or utcnow()
    if device_ids is not None and not device_ids:
        return 0
    plan = _plan(session, school_id, device_ids)
    query = select(Device.id, Device.home_location_id).where(
        Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED
    )
    if device_ids is not None:
        query = query.where(Device.id.in_(device_ids))
    devices = session.execute(query).all()
    existing = {
        row.device_id: row
        for row in session.scalars(
            select(DeviceDesiredState).where(
                DeviceDesiredState.school_id == school_id,
                *([] if device_ids is None else [DeviceDesiredState.device_id.in_(device_ids)]),
            )
        )
    }
    exceptions = _active_exceptions(session, school_id, now)
    settings: dict[int, ProfileSettings] = {}
    documents: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
    changed = 0
    for device_id, home_id in devices:
        resolution = _resolve(plan, device_id, home_id)
        row = existing.get(device_id)
        version = resolution.profile_version
        if version is None:
            if row is not None and row.sha256 != CLEARED_SHA256:
                row.document, row.sha256, row.profile_version_id = None, CLEARED_SHA256, None
                row.settings_count = 0
                row.updated_at = now
                changed += 1
            continue
        places = {p.id for p in plan.ancestors(home_id)}
        applying = [e for e in exceptions if _applies(plan, e, device_id, places)]
        key = (version.id, tuple(e.id for e in applying))
        document = documents.get(key)
        if document is None:
            if version.id not in settings:
                settings[version.id] = loaded(version)
            profile = _with_exceptions(settings[version.id], [e.urls for e in applying])
            result = compile_profile(profile, "kiosk", version=version.number)
            document = documents[key] = json.loads(result.content)
        sha = str(document["sha256"])
        count = len(document.get("settings") or ())
        if row is None:
            session.add(
                DeviceDesiredState(
                    device_id=device_id,
                    school_id=school_id,
                    profile_version_id=version.id,
                    document=document,
                    sha256=sha,
                    settings_count=count,
                    updated_at=now,
                )
            )
            changed += 1
        elif row.sha256 != sha or row.profile_version_id != version.id:
            row.document, row.sha256, row.profile_version_id = document, sha, version.id
            row.settings_count = count
            row.updated_at = now
            changed += 1
    session.flush()
    if changed:
        log.info("desired state changed for %d devices in school %s", changed, school_id)
        announce(session)  # the workers publish it as this commits, not at their next look
    return changed


def reconcile_all(session: Session, now: datetime) -> int:
    """Recompute every school's desired state (catches devices added or moved home); joins the
    caller's transaction."""
    school_ids = session.scalars(select(ProfileAssignment.school_id).distinct()).all()
    outbox_schools = session.scalars(select(DeviceDesiredState.school_id).distinct()).all()
    return sum(
        recompute_desired(session, school_id, now=now)
        for school_id in sorted(set(school_ids) | set(outbox_schools))
    )
