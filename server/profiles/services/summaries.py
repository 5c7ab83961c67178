"""The filtering history, the computing lead's home card and the device page's profile panel."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.devices.models import Device
from server.profiles.models import ExceptionStatus, FilterException
from server.profiles.pages import DevicePanel, HomeSummary
from server.profiles.services.compliance_report import compliance_summary, device_compliance
from server.profiles.services.lookups import _manages, _require_manage
from server.profiles.services.reported import applied_view
from server.profiles.services.resolution import resolve

FILTERING_ACTIONS = ("profile.", "device_group.", "filter_exception.")


def filtering_history(
    session: Session, actor: User, *, limit: int = 200
) -> Sequence[ActivityEntry]:
    """Every profile, group and filter-exception change in the trail (P-PROFILE-4)."""
    _require_manage(actor)
    return session.scalars(
        select(ActivityEntry)
        .where(
            ActivityEntry.school_id == actor.school_id,
            or_(*(ActivityEntry.action.startswith(prefix) for prefix in FILTERING_ACTIONS)),
        )
        .order_by(ActivityEntry.seq.desc())
        .limit(limit)
    ).all()


def home_summary(session: Session, user: User) -> HomeSummary | None:
    """The computing lead's home card: compliance counts and requests waiting for a decision."""
    if not _manages(user):
        return None
    counts = compliance_summary(session, user.school_id)
    waiting = session.scalar(
        select(func.count())
        .select_from(FilterException)
        .where(
            FilterException.school_id == user.school_id,
            FilterException.status == ExceptionStatus.REQUESTED,
        )
    )
    return HomeSummary(counts, int(waiting or 0), sum(counts.values()))


def device_panel(session: Session, user: User, device: Device) -> DevicePanel | None:
    """Which profile applies to a device, why, and desired against applied."""
    if device.school_id != user.school_id or not has_permission(user.role, Permission.DEVICES_READ):
        return None
    return DevicePanel(
        resolve(session, device),
        device_compliance(session, device),
        _manages(user),
        applied_view(session, device),
    )
