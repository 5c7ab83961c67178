"""A device's profile as the device reported it, setting by setting: for the device page, the
trolley page, breach facts, governors' figures and the profile page's warnings.

Nothing here reads what a profile asks for as if a device did it: a setting the device has not
reported on is "not known".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from device_profiles import CompileWarning, Extensions
from device_profiles import Profile as ProfileSettings
from device_profiles.capabilities import NEEDS, TARGET_PLATFORMS, Support, capability
from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.devices.models import Device, DeviceProtection, Latest, Platform
from server.devices.services import protection_summary, reported_since_erase
from server.profiles.models import (
    AppliedState,
    DeviceAppliedSetting,
    DeviceDesiredState,
    DeviceProfileStatus,
    Profile,
    ProfileVersion,
)
from server.profiles.pages import (
    SETTING_LABELS,
    AppliedSettingRow,
    AppliedView,
    PlaceDevice,
    PlatformGap,
    ReportedSummary,
)
from server.profiles.services.applied import desired_state
from server.profiles.services.compliance_report import compliance_summary, place_compliance
from server.profiles.services.lookups import loaded
from server.schools.models import Location
from server.schools.services import plural

# The compile target whose output each kind of device in the register gets.
PLATFORM_TARGETS = {
    "apple": Platform.IPADOS,
    "chromeos": Platform.CHROMEOS,
    "kiosk": Platform.LINUX,
}
PLATFORM_LABELS = {
    Platform.IPADOS: "iPads",
    Platform.CHROMEOS: "Chromebooks",
    Platform.LINUX: "Linux kiosks",
}


def setting_value(profile: ProfileSettings | None, setting: str) -> str:
    """What the profile asks for one setting, in words."""
    if profile is None:
        return ""
    section, _, name = setting.partition(".")
    holder = getattr(profile, section, None)
    value = getattr(holder, name, None) if holder is not None else None
    if value is None:
        return "not set"
    if setting == "device.auto_lock_minutes":
        return f"after {value} minutes idle"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value).replace("_", " ")
    if isinstance(value, Extensions):
        return str(value.mode.value).replace("_", " ")
    if isinstance(value, tuple | list):
        return plural(len(value), "entry")
    return str(value)


def _status(session: Session, device: Device) -> DeviceProfileStatus | None:
    return session.scalar(
        select(DeviceProfileStatus).where(DeviceProfileStatus.device_id == device.id)
    )


def applied_view(
    session: Session, device: Device, *, erased_at: datetime | Latest | None = Latest.ERASE
) -> AppliedView:
    """Each setting the device should enforce, with what it last reported about it.

    What it reported before its latest erase (or the one at `erased_at`) is not known.
    """
    desired = desired_state(session, device)
    if desired is None or desired.document is None:
        return AppliedView(None, None, False, [], None, "No restriction profile applies.")
    version = desired.profile_version
    profile = loaded(version) if version is not None else None
    status = _status(session, device)
    erased = status is not None and device.erased_since(status.reported_at, erased_at)
    if erased:
        status = None
    settings_erased = status is not None and device.erased_since(status.settings_at, erased_at)
    current = (
        status is not None and status.settings_sha256 == desired.sha256 and not settings_erased
    )
    reported = (
        {
            row.setting: row
            for row in session.scalars(
                select(DeviceAppliedSetting).where(
                    DeviceAppliedSetting.device_id == device.id,
                    DeviceAppliedSetting.profile_sha256 == desired.sha256,
                )
            )
        }
        if current
        else {}
    )
    rows = []
    for setting in desired.document.get("settings") or ():
        row = reported.get(setting)
        rows.append(
            AppliedSettingRow(
                setting=setting,
                wanted=setting_value(profile, setting),
                state=row.state.value if row is not None else "not_known",
                detail=row.detail if row is not None else "",
                evidence=dict(row.evidence) if row is not None else {},
                since=row.since if row is not None else None,
            )
        )
    if erased:
        note = (
            "The device's storage was erased after its last report, so nothing it enforces is "
            "known until it reports again."
        )
    elif status is None:
        note = "The device has never reported, so nothing it enforces is known."
    elif status.settings_sha256 is None:
        note = "The device has never reported its settings one by one, so they are not known."
    elif settings_erased:
        note = (
            "The device has not reported its settings one by one since its storage was erased, "
            "so they are not known."
        )
    elif not current:
        note = (
            "The device last reported on another version of its profile; these settings are "
            "not known until it reports on this one."
        )
    else:
        note = ""
    return AppliedView(
        profile_name=version.profile.name if version is not None else None,
        version=version.number if version is not None else None,
        applied=status is not None and status.applied_sha256 == desired.sha256,
        rows=rows,
        reported_at=status.settings_at if current and status is not None else None,
        note=note,
    )


def place_devices(session: Session, user: User, location: Location) -> list[PlaceDevice] | None:
    """The devices living in a place, each with its profile and protection as it reported them."""
    if location.school_id != user.school_id or not has_permission(
        user.role, Permission.DEVICES_READ
    ):
        return None
    rows = place_compliance(session, location.school_id, location.id)
    ids = [row.device_id for row in rows]
    # Only settings reported on the desired document since any erase (the compliance row's).
    reported = [row.device_id for row in rows if row.settings_at is not None]
    missing: dict[int, list[str]] = {}
    protection: dict[int, DeviceProtection] = {}
    if ids:
        for device_id, setting in session.execute(
            select(DeviceAppliedSetting.device_id, DeviceAppliedSetting.setting)
            .join(
                DeviceDesiredState,
                and_(
                    DeviceDesiredState.device_id == DeviceAppliedSetting.device_id,
                    DeviceDesiredState.sha256 == DeviceAppliedSetting.profile_sha256,
                ),
            )
            .where(
                DeviceAppliedSetting.device_id.in_(reported),
                DeviceAppliedSetting.state != AppliedState.ENFORCED,
            )
            .order_by(DeviceAppliedSetting.id)
        ):
            missing.setdefault(device_id, []).append(SETTING_LABELS.get(setting, setting))
        protection = {
            row.device_id: row
            for row in session.scalars(
                select(DeviceProtection)
                .join(Device, Device.id == DeviceProtection.device_id)
                .where(
                    DeviceProtection.device_id.in_(ids),
                    reported_since_erase(DeviceProtection.reported_at),
                )
            )
        }
    places = []
    for row in rows:
        guard = protection.get(row.device_id)
        places.append(
            PlaceDevice(
                asset_tag=row.asset_tag,
                state=row.state,
                not_enforced=missing.get(row.device_id, []),
                passcode=guard.passcode if guard is not None else None,
                storage_encrypted=guard.storage_encrypted if guard is not None else None,
                reported_at=row.settings_at,
            )
        )
    return places


def reported_summary(session: Session, user: User) -> ReportedSummary | None:
    """Governors' (and other report readers') figures: only what devices reported."""
    if not has_permission(user.role, Permission.REPORTS_READ):
        return None
    counts = compliance_summary(session, user.school_id)
    return ReportedSummary(
        compliance=counts,
        protection=protection_summary(session, user.school_id),
        total=sum(counts.values()),
    )


def platform_gaps(
    session: Session,
    profile: Profile,
    settings: ProfileSettings,
    warnings: Mapping[str, Sequence[CompileWarning]],
) -> list[PlatformGap]:
    """For each kind of device: what it cannot do of this profile, and how many get the profile.

    The writers' warnings (the capability table's words) say what a platform cannot do; a
    setting a kiosk enforces only where the machine has the facility is flagged as such.
    """
    reach: dict[Platform, int] = {
        platform: int(n)
        for platform, n in session.execute(
            select(Device.platform, func.count())
            .select_from(DeviceDesiredState)
            .join(ProfileVersion, ProfileVersion.id == DeviceDesiredState.profile_version_id)
            .join(Device, Device.id == DeviceDesiredState.device_id)
            .where(
                ProfileVersion.profile_id == profile.id,
                DeviceDesiredState.school_id == profile.school_id,
            )
            .group_by(Device.platform)
        )
    }
    gaps = []
    for target, platform in PLATFORM_TARGETS.items():
        found = [
            (w.setting, SETTING_LABELS.get(w.setting, w.setting), w.message)
            for w in warnings.get(target, ())
            if w.kind == "unsupported" and w.setting
        ]
        named = {setting for setting, _label, _why in found}
        for setting in settings.specified_settings():
            entry = capability(TARGET_PLATFORMS[target], setting)
            if entry.support is Support.YES and entry.needs and setting not in named:
                why = f"only where the device has {NEEDS[entry.needs]}; it reports whether it does"
                found.append((setting, SETTING_LABELS.get(setting, setting), why))
        gaps.append(
            PlatformGap(
                platform=platform.value,
                label=PLATFORM_LABELS[platform],
                devices=reach.get(platform, 0),
                settings=found,
            )
        )
    return gaps
