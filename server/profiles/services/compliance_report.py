"""Whether each device enforces the profile it should have, by its own per-setting reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from server.devices.models import Device, DeviceStatus
from server.devices.services import reported_since_erase
from server.profiles.models import (
    CLEARED_SHA256,
    DeviceDesiredState,
    DeviceProfileStatus,
    Profile,
    ProfileVersion,
)
from server.profiles.pages import COMPLIANCE_STATES, ComplianceRow


def _state_expression() -> tuple[
    ColumnElement[str], type[DeviceDesiredState], Any, ColumnElement[bool]
]:
    desired = aliased(DeviceDesiredState)
    status = aliased(DeviceProfileStatus)
    # Settings reported before the device's storage was erased describe nothing there now.
    about_desired = and_(
        status.settings_sha256 == desired.sha256, reported_since_erase(status.settings_at)
    )
    # Compliant only when the device applied the document and reported every setting of it
    # enforced; echoing the hash alone is "applied, settings not known".
    state = case(
        (or_(desired.id.is_(None), desired.sha256 == CLEARED_SHA256), "unassigned"),
        # Whatever it applied before its storage was erased is gone with it.
        (not_(reported_since_erase(status.reported_at)), "erased"),
        (and_(about_desired, status.settings_not_enforced > 0), "partial"),
        (
            and_(
                status.applied_sha256 == desired.sha256,
                about_desired,
                status.settings_reported >= desired.settings_count,
            ),
            "compliant",
        ),
        (status.applied_sha256 == desired.sha256, "unconfirmed"),
        (status.id.is_(None), "never_reported"),
        (
            or_(
                desired.published_sha256.is_(None),
                desired.published_sha256 != desired.sha256,
                desired.published_at.is_(None),
            ),
            "pending",
        ),
        (status.reported_at < desired.published_at, "pending"),
        else_="drifting",
    )
    return state, desired, status, about_desired


def _compliance_query(
    school_id: int, device_id: int | None = None, home_id: int | None = None
) -> Select[Any]:
    state, desired, status, about_desired = _state_expression()
    query = (
        select(
            Device.id,
            Device.asset_tag,
            Profile.name,
            ProfileVersion.number,
            desired.sha256,
            case((reported_since_erase(status.reported_at), status.applied_sha256)),
            desired.published_at,
            status.reported_at,
            state.label("state"),
            case((about_desired, status.settings_reported)),
            case((about_desired, status.settings_not_enforced)),
            case((about_desired, status.settings_at)),
        )
        .outerjoin(desired, desired.device_id == Device.id)
        .outerjoin(status, status.device_id == Device.id)
        .outerjoin(ProfileVersion, ProfileVersion.id == desired.profile_version_id)
        .outerjoin(Profile, Profile.id == ProfileVersion.profile_id)
        .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
    )
    if device_id is not None:
        query = query.where(Device.id == device_id)
    if home_id is not None:
        query = query.where(Device.home_location_id == home_id)
    return query


def compliance(
    session: Session, school_id: int, *, states: Sequence[str] | None = None, limit: int = 1000
) -> list[ComplianceRow]:
    """Desired against applied for every device of the school, in one query."""
    inner = _compliance_query(school_id).subquery()
    query = select(inner)
    if states is not None:
        query = query.where(inner.c.state.in_(list(states)))
    rows = session.execute(query.order_by(inner.c.asset_tag).limit(limit)).all()
    return [ComplianceRow(*row) for row in rows]


def compliance_summary(session: Session, school_id: int) -> dict[str, int]:
    """How many devices are in each compliance state (one GROUP BY)."""
    inner = _compliance_query(school_id).subquery()
    counts: dict[str, int] = {
        state: int(n)
        for state, n in session.execute(select(inner.c.state, func.count()).group_by(inner.c.state))
    }
    return {state: int(counts.get(state, 0)) for state in COMPLIANCE_STATES}


def device_compliance(session: Session, device: Device) -> ComplianceRow | None:
    """The compliance row of one device."""
    row = session.execute(_compliance_query(device.school_id, device.id)).first()
    return ComplianceRow(*row) if row is not None else None


def place_compliance(session: Session, school_id: int, home_id: int) -> list[ComplianceRow]:
    """The compliance rows of the devices that live in one place (a trolley)."""
    query = _compliance_query(school_id, home_id=home_id).order_by(Device.asset_tag)
    return [ComplianceRow(*row) for row in session.execute(query)]
