"""Software licences reconciled against the apps devices report as installed (P-REG-5).

Devices report their app inventory over MQTT; the worker hands each report to
`record_installed_apps`. The reconciliation is computed in SQL (one GROUP BY per question), so
it stays quick however many devices report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.devices.models import Device, DeviceStatus
from server.errors import NotFound, ValidationFailed
from server.licences.models import InstalledApp, Licence

log = logging.getLogger(__name__)

EXPIRY_WARNING_DAYS = 60
FIELDS = frozenset({"app_name", "app_id", "seats", "supplier", "expires_on", "cost_pence", "notes"})
APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
MAX_SEATS = 100_000
MAX_COST_PENCE = 10_000_000


# --- the reconciliation --------------------------------------------------------------------


@dataclass(frozen=True)
class LicenceLine:
    """One licence with the number of devices that have its app installed."""

    licence: Licence
    installed: int
    today: date

    @property
    def over_deployed(self) -> bool:
        return self.installed > self.licence.seats

    @property
    def seats_free(self) -> int:
        return self.licence.seats - self.installed

    @property
    def days_left(self) -> int | None:
        if self.licence.expires_on is None:
            return None
        return (self.licence.expires_on - self.today).days

    @property
    def expired(self) -> bool:
        return self.days_left is not None and self.days_left < 0

    @property
    def expiring(self) -> bool:
        """Ends within the next 60 days (and has not ended yet)."""
        return self.days_left is not None and 0 <= self.days_left <= EXPIRY_WARNING_DAYS


@dataclass(frozen=True)
class UnlicensedApp:
    app_id: str
    name: str
    devices: int


@dataclass(frozen=True)
class Reconciliation:
    lines: list[LicenceLine]
    unlicensed: list[UnlicensedApp]
    unlicensed_total: int
    devices_reporting: int

    @property
    def over_deployed(self) -> list[LicenceLine]:
        return [line for line in self.lines if line.over_deployed]

    @property
    def expiring(self) -> list[LicenceLine]:
        return [line for line in self.lines if line.expiring]

    @property
    def expired(self) -> list[LicenceLine]:
        return [line for line in self.lines if line.expired]


def _live_installs(school_id: int) -> Any:
    """Installed apps on this school's devices that are still in the register."""
    return (
        select(InstalledApp)
        .join(Device, Device.id == InstalledApp.device_id)
        .where(InstalledApp.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
    )


def _lines(
    session: Session, school_id: int, today: date, *, licence_id: int | None = None
) -> list[LicenceLine]:
    live = _live_installs(school_id).subquery()
    installs = select(live.c.app_id, func.count().label("n")).group_by(live.c.app_id).subquery()
    query = (
        select(Licence, func.coalesce(installs.c.n, 0))
        .outerjoin(installs, installs.c.app_id == Licence.app_id)
        .where(Licence.school_id == school_id)
    )
    if licence_id is not None:
        query = query.where(Licence.id == licence_id)
    rows = session.execute(query.order_by(func.lower(Licence.app_name), Licence.id)).all()
    return [LicenceLine(licence, int(n), today) for licence, n in rows]


def reconcile(
    session: Session,
    school_id: int,
    *,
    today: date | None = None,
    with_unlicensed: bool = True,
    unlicensed_limit: int = 200,
) -> Reconciliation:
    """Seats against installs per licence, and installed apps nobody holds a licence for."""
    today = today or date.today()
    lines = _lines(session, school_id, today)
    if not with_unlicensed:
        return Reconciliation(lines, [], 0, 0)
    live = _live_installs(school_id).subquery()
    unlicensed_query = (
        select(live.c.app_id, func.max(live.c.name).label("name"), func.count().label("n"))
        .where(~exists().where(Licence.school_id == school_id, Licence.app_id == live.c.app_id))
        .group_by(live.c.app_id)
    )
    grouped = unlicensed_query.subquery()
    total = session.scalar(select(func.count()).select_from(grouped)) or 0
    rows = session.execute(
        select(grouped.c.app_id, grouped.c.name, grouped.c.n)
        .order_by(grouped.c.n.desc(), grouped.c.app_id)
        .limit(unlicensed_limit)
    ).all()
    reporting = (
        session.scalar(select(func.count(func.distinct(live.c.device_id))).select_from(live)) or 0
    )
    return Reconciliation(
        lines=lines,
        unlicensed=[UnlicensedApp(app_id, name, int(n)) for app_id, name, n in rows],
        unlicensed_total=int(total),
        devices_reporting=int(reporting),
    )


def licence_line(
    session: Session, school_id: int, licence_id: int, *, today: date | None = None
) -> LicenceLine:
    found = _lines(session, school_id, today or date.today(), licence_id=licence_id)
    if not found:
        raise NotFound("No such licence in your school.")
    return found[0]


def devices_with_app(
    session: Session, school_id: int, app_id: str, *, limit: int = 500
) -> Sequence[tuple[Device, InstalledApp]]:
    rows = session.execute(
        select(Device, InstalledApp)
        .join(InstalledApp, InstalledApp.device_id == Device.id)
        .where(
            InstalledApp.school_id == school_id,
            InstalledApp.app_id == app_id,
            Device.status != DeviceStatus.DISPOSED,
        )
        .order_by(Device.asset_tag)
        .limit(limit)
    ).all()
    return [(device, app) for device, app in rows]


def apps_on_device(session: Session, device: Device) -> Sequence[InstalledApp]:
    return session.scalars(
        select(InstalledApp)
        .where(InstalledApp.device_id == device.id)
        .order_by(func.lower(InstalledApp.name), InstalledApp.app_id)
    ).all()


# --- inventory from devices ---------------------------------------------------------------


def record_installed_apps(
    session: Session, device: Device, apps: Sequence[Mapping[str, str]], at: datetime
) -> None:
    """Replace a device's installed apps with its latest full inventory (joins the caller's
    transaction).

    Each app is a mapping with `app_id` and optionally `name` and `version`. Apps missing from
    the report were uninstalled and are dropped; entries without a usable id are skipped and
    logged, so one odd entry never loses the rest of the report.
    """
    reported: dict[str, tuple[str, str | None]] = {}
    for app in apps:
        app_id = str(app.get("app_id") or "").strip()
        if not app_id or len(app_id) > 255:
            log.warning("device %s reported an app without a usable id; skipped", device.id)
            continue
        name = str(app.get("name") or app_id).strip()[:200] or app_id[:200]
        version = str(app.get("version") or "").strip()[:64] or None
        reported[app_id] = (name, version)
    existing = {
        row.app_id: row
        for row in session.scalars(select(InstalledApp).where(InstalledApp.device_id == device.id))
    }
    gone = [app_id for app_id in existing if app_id not in reported]
    if gone:
        session.execute(
            delete(InstalledApp).where(
                InstalledApp.device_id == device.id, InstalledApp.app_id.in_(gone)
            )
        )
    for app_id, (name, version) in reported.items():
        row = existing.get(app_id)
        if row is None:
            session.add(
                InstalledApp(
                    school_id=device.school_id,
                    device_id=device.id,
                    app_id=app_id,
                    name=name,
                    version=version,
                    first_seen=at,
                    last_seen=at,
                )
            )
        else:
            row.name, row.version, row.last_seen = name, version, max(row.last_seen, at)
    # No activity entry: an inventory report is a device's routine, not a person's action.
    session.flush()


# --- licence records ----------------------------------------------------------------------


def forget_installed_apps(session: Session, device: Device) -> None:
    """The device was erased (it confirmed it, or someone recorded it with evidence): nothing
    is installed on it until it reports again (joins the caller's transaction)."""
    session.execute(delete(InstalledApp).where(InstalledApp.device_id == device.id))


def get_licence(session: Session, school_id: int, licence_id: int) -> Licence:
    licence = session.scalar(
        select(Licence).where(Licence.id == licence_id, Licence.school_id == school_id)
    )
    if licence is None:
        raise NotFound("No such licence in your school.")
    return licence


def _checked(
    session: Session, school_id: int, values: Mapping[str, Any], current: Licence | None = None
) -> dict[str, Any]:
    """Typed, stripped values; every problem reported at once against its field."""
    unknown = set(values) - FIELDS
    if unknown:
        raise ValidationFailed(
            "Those details are not part of a licence.",
            details=[{"field": name, "message": "unknown"} for name in sorted(unknown)],
        )
    clean: dict[str, Any] = {
        name: (value.strip() or None) if isinstance(value, str) else value
        for name, value in values.items()
    }
    creating = current is None
    errors: list[dict[str, str]] = []

    def needed(name: str) -> bool:
        return creating or name in clean

    if needed("app_name") and not clean.get("app_name"):
        errors.append({"field": "app_name", "message": "Enter the app's name."})
    if needed("app_id"):
        app_id = clean.get("app_id")
        if not app_id:
            errors.append(
                {
                    "field": "app_id",
                    "message": "Enter the app identifier, such as com.apple.Pages or a Chrome "
                    "extension id.",
                }
            )
        elif not APP_ID.match(app_id):
            errors.append(
                {
                    "field": "app_id",
                    "message": "An app identifier has no spaces: letters, digits, dots, "
                    "dashes and underscores, like com.apple.Pages.",
                }
            )
        else:
            same = select(Licence.app_name).where(
                Licence.school_id == school_id, Licence.app_id == app_id
            )
            if current is not None:
                same = same.where(Licence.id != current.id)
            holder = session.scalar(same)
            if holder is not None:
                errors.append(
                    {
                        "field": "app_id",
                        "message": f"There is already a licence for {app_id} ({holder}); "
                        "change its seats instead.",
                    }
                )
    if needed("seats"):
        seats = clean.get("seats")
        if seats is None or not 0 <= seats <= MAX_SEATS:
            errors.append(
                {"field": "seats", "message": f"Enter the number of seats, 0 to {MAX_SEATS:,}."}
            )
    cost = clean.get("cost_pence")
    if cost is not None and not 0 <= cost <= MAX_COST_PENCE:
        errors.append(
            {"field": "cost_pence", "message": "The cost must be between £0 and £100,000."}
        )
    if errors:
        raise ValidationFailed(
            "Some details need correcting before this can be saved.", details=errors
        )
    return clean


def create_licence(session: Session, actor: User, values: Mapping[str, Any]) -> Licence:
    """Record a licence the school holds."""
    clean = _checked(session, actor.school_id, values)
    licence = Licence(school_id=actor.school_id, **clean)
    session.add(licence)
    session.flush()
    record(
        session,
        actor=actor,
        action="licence.created",
        school_id=actor.school_id,
        target_type="licence",
        target_id=licence.id,
        details={k: _plain(v) for k, v in clean.items()},
    )
    session.commit()
    return licence


def update_licence(
    session: Session, actor: User, licence_id: int, changes: Mapping[str, Any]
) -> Licence:
    """Correct a licence: more seats bought, a renewal's new expiry, a new supplier."""
    licence = get_licence(session, actor.school_id, licence_id)
    clean = _checked(session, actor.school_id, changes, licence)
    changed = {
        name: [_plain(getattr(licence, name)), _plain(value)]
        for name, value in clean.items()
        if getattr(licence, name) != value
    }
    for name, value in clean.items():
        setattr(licence, name, value)
    if changed:
        record(
            session,
            actor=actor,
            action="licence.edited",
            school_id=licence.school_id,
            target_type="licence",
            target_id=licence.id,
            details={"app_id": licence.app_id, "changes": changed},
        )
    session.commit()
    return licence


def delete_licence(session: Session, actor: User, licence_id: int) -> None:
    """Remove a licence record (the app's installs then show as unlicensed)."""
    licence = get_licence(session, actor.school_id, licence_id)
    details = {"app_id": licence.app_id, "app_name": licence.app_name, "seats": licence.seats}
    session.delete(licence)
    record(
        session,
        actor=actor,
        action="licence.deleted",
        school_id=actor.school_id,
        target_type="licence",
        target_id=licence_id,
        details=details,
    )
    session.commit()


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value
