"""The asset register: search, create and edit, lifecycle, and moves through the SBM."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, bindparam, func, or_, select
from sqlalchemy.orm import Session, joinedload

from provisioning.payload import is_valid_asset_tag
from server.activity.services import record
from server.auth.models import User
from server.db import insert_rows, table
from server.devices.models import (
    Device,
    DeviceEvent,
    DeviceProtection,
    DeviceStatus,
    Platform,
)
from server.devices.services.search import words_condition
from server.errors import Conflict, NotFound, ValidationFailed
from server.schools.models import Location

SORTS = {
    "asset_tag": Device.asset_tag,
    "serial": Device.serial,
    "model": Device.model,
    "status": Device.status,
    "warranty": Device.warranty_until,
    "last_seen": Device.last_seen_at,
    "purchased": Device.purchase_date,
}


# Counting every match of a broad search costs more than the page itself at 100,000 devices;
# beyond this many the register says "10,000 or more" (the page and its neighbours stay exact).
COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class DevicePage:
    """One page of a search; `exact` is False when at least `total` devices match."""

    items: Sequence[Device]
    total: int
    page: int
    per_page: int
    exact: bool = True

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages or not self.exact


def search_devices(
    session: Session,
    school_id: int,
    *,
    q: str | None = None,
    status: DeviceStatus | None = None,
    platform: Platform | None = None,
    home_location_id: int | None = None,
    current_location_id: int | None = None,
    warranty_within_days: int | None = None,
    protection: str | None = None,
    include_disposed: bool = False,
    sort: str = "asset_tag",
    descending: bool = False,
    page: int = 1,
    per_page: int = 50,
    today: date | None = None,
) -> DevicePage:
    """Search by words (each found in the tag, serial, make, model, place or holder), with
    filters; always inside one school."""
    if sort not in SORTS:
        raise ValidationFailed(f"Sort by one of: {', '.join(SORTS)}.")
    if page < 1 or per_page < 1:
        raise ValidationFailed("Pages are numbered from 1 and hold at least one device.")
    where: list[ColumnElement[bool]] = [Device.school_id == school_id]
    words = words_condition(session, school_id, q or "")
    if words is not None:
        where.append(words.condition)
    if status is not None:
        where.append(Device.status == status)
    elif not include_disposed:
        # Disposed devices leave the live register but stay findable (P-DISPOSE-1).
        where.append(Device.status != DeviceStatus.DISPOSED)
    if platform is not None:
        where.append(Device.platform == platform)
    if home_location_id is not None:
        where.append(Device.home_location_id == home_location_id)
    if current_location_id is not None:
        where.append(Device.current_location_id == current_location_id)
    if warranty_within_days is not None:
        start = today or date.today()
        where.append(Device.warranty_until >= start)
        where.append(Device.warranty_until <= start + timedelta(days=warranty_within_days))
    if protection == "gaps":
        where.append(protection_gaps(school_id))
    # Tags are unique in a school, so they settle ties; the indexes end with the tag too.
    keys: list[Any] = [SORTS[sort], Device.asset_tag] if sort != "asset_tag" else [Device.asset_tag]
    order = [key.desc() if descending else key for key in keys]
    offset = (page - 1) * per_page
    # The page's ids first, then those devices with their places and holder: joining before
    # the sort would join every match, not just the page (bench/bench_register.py).
    if words is not None and words.listed:
        # Few devices can match and their ids are listed: SQLite, which keeps no statistics,
        # would otherwise read the whole school in tag order to find them ("+ 0" keeps it
        # off the school's indexes, so it reads those devices by id).
        where[0] = Device.school_id + 0 == school_id
    matching = select(Device.id).where(*where)
    ids = session.scalars(matching.order_by(*order).limit(per_page).offset(offset)).all()
    loaded = (
        {
            device.id: device
            for device in session.scalars(
                select(Device)
                .where(Device.id.in_(ids))
                .options(
                    joinedload(Device.home_location),
                    joinedload(Device.current_location),
                    joinedload(Device.holder),
                    joinedload(Device.protection),
                )
            )
        }
        if ids
        else {}
    )
    items = [loaded[i] for i in ids]
    if 0 < len(items) < per_page or (page == 1 and not items):
        # A short page is the last one: the total is known without counting.
        return DevicePage(items=items, total=offset + len(items), page=page, per_page=per_page)
    limit = max(COUNT_LIMIT, offset + per_page) + 1
    counted = (
        session.scalar(select(func.count()).select_from(matching.limit(limit).subquery())) or 0
    )
    exact = counted < limit
    return DevicePage(
        items=items,
        total=counted if exact else limit - 1,
        page=page,
        per_page=per_page,
        exact=exact,
    )


def reported_since_erase(reported_at: SQLColumnExpression[Any]) -> ColumnElement[bool]:
    """SQL for "the device reported this after its storage was last erased" (or never erased)."""
    return or_(Device.erased_at.is_(None), reported_at > Device.erased_at)


def mark_erased(device: Device, at: datetime) -> None:
    """Its storage was erased at `at`: what it reported before no longer describes it."""
    if device.erased_at is None or device.erased_at < at:
        device.erased_at = at


def protection_gaps(school_id: int) -> ColumnElement[bool]:
    """Devices whose passcode or encryption is off or not known, by their own reports (P-REG-7).

    A report from before the device's storage was last erased is not known, so a gap.
    """
    protected = (
        select(DeviceProtection.device_id)
        .join(Device, Device.id == DeviceProtection.device_id)
        .where(
            DeviceProtection.school_id == school_id,
            DeviceProtection.passcode.is_(True),
            DeviceProtection.storage_encrypted.is_(True),
            reported_since_erase(DeviceProtection.reported_at),
        )
    )
    return Device.id.not_in(protected)


_BY_TAG = select(Device).where(
    Device.school_id == bindparam("school_id"), Device.asset_tag == bindparam("tag")
)
# populate_existing: the locked read replaces whatever an earlier read left behind.
_BY_TAG_LOCKED = _BY_TAG.with_for_update().execution_options(populate_existing=True)


def find_by_tag(session: Session, school_id: int, tag: str, *, lock: bool = False) -> Device | None:
    """The school's device a scanned or typed tag names, or None; `lock` holds its row."""
    query = _BY_TAG_LOCKED if lock else _BY_TAG
    device: Device | None = session.scalar(query, {"school_id": school_id, "tag": tag})
    if device is None and tag.upper() != tag:
        # Keyboard-wedge scanners sometimes arrive with caps lock the wrong way round.
        device = session.scalar(query, {"school_id": school_id, "tag": tag.upper()})
    return device


def get_device(
    session: Session, school_id: int, asset_tag: str, *, missing: str | None = None
) -> Device:
    """The school's device by its tag (caps-lock forgiving); NotFound with `missing` otherwise."""
    device = find_by_tag(session, school_id, asset_tag)
    if device is None:
        raise NotFound(missing or f"No device with asset tag {asset_tag!r} in your school.")
    return device


def timeline(session: Session, device: Device, limit: int = 200) -> Sequence[DeviceEvent]:
    return session.scalars(
        select(DeviceEvent)
        .where(DeviceEvent.device_id == device.id)
        .order_by(DeviceEvent.at.desc(), DeviceEvent.id.desc())
        .limit(limit)
    ).all()


def counts_by_status(session: Session, school_id: int) -> dict[DeviceStatus, int]:
    rows = session.execute(
        select(Device.status, func.count())
        .where(Device.school_id == school_id)
        .group_by(Device.status)
    ).all()
    return {status: n for status, n in rows}


def add_event(
    session: Session,
    device: Device,
    *,
    kind: str,
    summary: str,
    actor: User | None,
    details: dict[str, object] | None = None,
) -> DeviceEvent:
    event = DeviceEvent(
        school_id=device.school_id,
        device_id=device.id,
        kind=kind,
        summary=summary,
        actor_id=actor.id if actor else None,
        details=details or {},
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class EventLine:
    """One timeline line to write in bulk with `add_events`."""

    school_id: int
    device_id: int
    summary: str
    details: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, device: Device, summary: str, details: dict[str, object]) -> EventLine:
        """A line on a loaded device's timeline."""
        return cls(device.school_id, device.id, summary, details)


def add_events(
    session: Session, lines: Sequence[EventLine], *, kind: str, actor: User | None
) -> None:
    """Many timeline lines at once (a `COPY` on PostgreSQL): a fleet-wide command writes one per
    device."""
    # Core, not the unit of work nor the ORM's bulk insert: nobody needs the rows back, SQLite
    # would otherwise insert them one by one to learn each id, and the ORM keeps state per row.
    if lines:
        insert_rows(
            session,
            table(DeviceEvent),
            [
                {
                    "school_id": line.school_id,
                    "device_id": line.device_id,
                    "kind": kind,
                    "summary": line.summary,
                    "actor_id": actor.id if actor else None,
                    "details": line.details,
                }
                for line in lines
            ],
        )


# --- writing the register ---------------------------------------------------------------

# Allowed lifecycle moves; anything else is refused with the reason (P-REG-1, P-DISPOSE-1).
TRANSITIONS: dict[DeviceStatus, frozenset[DeviceStatus]] = {
    DeviceStatus.IN_STOCK: frozenset(
        {DeviceStatus.IN_SERVICE, DeviceStatus.LOST, DeviceStatus.STOLEN, DeviceStatus.DISPOSED}
    ),
    DeviceStatus.IN_SERVICE: frozenset(
        {DeviceStatus.IN_REPAIR, DeviceStatus.IN_STOCK, DeviceStatus.LOST, DeviceStatus.STOLEN}
    ),
    DeviceStatus.IN_REPAIR: frozenset(
        {DeviceStatus.IN_SERVICE, DeviceStatus.LOST, DeviceStatus.STOLEN, DeviceStatus.DISPOSED}
    ),
    DeviceStatus.LOST: frozenset(
        {DeviceStatus.IN_SERVICE, DeviceStatus.STOLEN, DeviceStatus.DISPOSED}
    ),
    DeviceStatus.STOLEN: frozenset({DeviceStatus.IN_SERVICE, DeviceStatus.DISPOSED}),
    DeviceStatus.DISPOSED: frozenset(),
}

_BACK_IN_SERVICE = "A device that turns up goes back into service first."


def refusal(old: DeviceStatus, new: DeviceStatus) -> str:
    """Why the lifecycle does not allow `old` → `new`, in words for the SBM."""
    if old is DeviceStatus.DISPOSED:
        return "A disposed device has left the school; its status cannot change again."
    if new is DeviceStatus.DISPOSED:
        return "Take it out of service first (back into stock, or for repair), then dispose of it."
    if old is DeviceStatus.IN_STOCK:
        return "A device goes from stock into service first."
    if old is DeviceStatus.IN_REPAIR:
        return "A repaired device goes back into service first."
    if old is DeviceStatus.STOLEN and new is DeviceStatus.LOST:
        return "A stolen device stays stolen until it is found."
    return _BACK_IN_SERVICE


APPLE_SERIAL = re.compile(r"^[A-Z0-9]{10}$|^[A-Z0-9]{12}$")
CHROMEBOOK_SERIAL = re.compile(r"^[A-Z0-9]{8,22}$")


@dataclass
class DeviceFields:
    """The register's editable facts about one device, already typed."""

    asset_tag: str
    serial: str
    platform: Platform
    make: str
    model: str
    os_version: str | None = None
    purchase_date: date | None = None
    purchase_cost_pence: int | None = None
    supplier: str | None = None
    warranty_until: date | None = None
    home_location_id: int | None = None
    home_slot: int | None = None
    notes: str | None = None
    status: DeviceStatus = DeviceStatus.IN_SERVICE


@dataclass
class Check:
    """Problems (which stop a save) and warnings (which do not), each tied to a field."""

    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def error(self, field_name: str, message: str) -> None:
        self.errors.append({"field": field_name, "message": message})

    def warn(self, field_name: str, message: str) -> None:
        self.warnings.append({"field": field_name, "message": message})

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationFailed(
                "Some details need correcting before this can be saved.", details=self.errors
            )


def serial_warnings(platform: Platform, serial: str) -> list[str]:
    """Serials that look wrong for their platform are worth a second look, not a refusal."""
    if platform is Platform.IPADOS and not APPLE_SERIAL.match(serial):
        return ["Apple serial numbers are 10 or 12 capital letters and digits; please check it."]
    if platform is Platform.CHROMEOS and not CHROMEBOOK_SERIAL.match(serial):
        return [
            "Chromebook serial numbers are 8 to 22 capital letters and digits; please check it."
        ]
    return []


def normalise_serial(serial: str) -> str:
    return re.sub(r"\s+", "", serial).upper()


def check_fields(
    session: Session, school_id: int, data: DeviceFields, *, existing: Device | None = None
) -> Check:
    """Validate a device's facts against the rules and the rest of the register."""
    check = Check()
    if not is_valid_asset_tag(data.asset_tag):
        check.error(
            "asset_tag", "Asset tags are 1–32 letters, digits, dashes, dots or underscores."
        )
    if not data.serial or len(data.serial) > 64:
        check.error("serial", "Enter the serial number (up to 64 characters).")
    if not data.make.strip():
        check.error("make", "Enter the make, such as Apple or Lenovo.")
    if not data.model.strip():
        check.error("model", "Enter the model, such as iPad (10th generation).")
    if data.purchase_cost_pence is not None and not 0 <= data.purchase_cost_pence <= 10_000_000:
        check.error("purchase_cost_pence", "The cost must be between £0 and £100,000.")
    if data.purchase_date and data.purchase_date > date.today():
        check.error("purchase_date", "The purchase date is in the future.")
    if data.purchase_date and data.warranty_until and data.warranty_until < data.purchase_date:
        check.error("warranty_until", "The warranty cannot end before the purchase date.")
    same_tag = select(Device.id).where(
        Device.school_id == school_id, Device.asset_tag == data.asset_tag
    )
    # Only this school's register: another school's serials are none of its business.
    same_serial = select(Device.id).where(
        Device.school_id == school_id, Device.serial == data.serial
    )
    if existing is not None:
        same_tag = same_tag.where(Device.id != existing.id)
        same_serial = same_serial.where(Device.id != existing.id)
    if data.asset_tag and session.scalar(same_tag) is not None:
        check.error("asset_tag", f"Asset tag {data.asset_tag} is already in the register.")
    if data.serial and session.scalar(same_serial) is not None:
        check.error("serial", f"Serial number {data.serial} is already in the register.")
    if data.home_location_id is not None:
        _check_home(session, school_id, data.home_location_id, data.home_slot, check, existing)
    elif data.home_slot is not None:
        check.error("home_slot", "A slot only makes sense with a home location.")
    for message in serial_warnings(data.platform, data.serial):
        check.warn("serial", message)
    return check


def _check_home(
    session: Session,
    school_id: int,
    location_id: int,
    slot: int | None,
    check: Check,
    existing: Device | None,
) -> None:
    location = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if location is None:
        check.error("home_location_id", "That location does not exist in your school.")
        return
    others = (
        select(func.count())
        .select_from(Device)
        .where(
            Device.school_id == school_id,
            Device.home_location_id == location.id,
            Device.status != DeviceStatus.DISPOSED,
        )
    )
    if existing is not None:
        others = others.where(Device.id != existing.id)
    if location.capacity is not None and (session.scalar(others) or 0) >= location.capacity:
        check.error(
            "home_location_id", f"{location.name} is full ({location.capacity} devices live there)."
        )
    if slot is not None:
        if location.capacity is None:
            check.error("home_slot", f"{location.name} has no numbered slots.")
        elif not 1 <= slot <= location.capacity:
            check.error("home_slot", f"Slots in {location.name} run from 1 to {location.capacity}.")
        else:
            taken = select(Device.asset_tag).where(
                Device.home_location_id == location.id, Device.home_slot == slot
            )
            if existing is not None:
                taken = taken.where(Device.id != existing.id)
            holder = session.scalar(taken)
            if holder is not None:
                check.error("home_slot", f"Slot {slot} in {location.name} is {holder}'s.")


def create_device(session: Session, actor: User, data: DeviceFields) -> tuple[Device, Check]:
    """Add a device to the register; returns it with any warnings to show."""
    data.serial = normalise_serial(data.serial)
    check = check_fields(session, actor.school_id, data)
    check.raise_if_errors()
    device = Device(
        school_id=actor.school_id,
        current_location_id=data.home_location_id,
        **{f.name: getattr(data, f.name) for f in fields(DeviceFields)},
    )
    session.add(device)
    session.flush()
    add_event(session, device, kind="created", summary="Added to the register", actor=actor)
    record(
        session,
        actor=actor,
        action="device.created",
        school_id=actor.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"serial": device.serial},
    )
    session.commit()
    return device, check


REQUIRED = ("asset_tag", "serial", "platform", "make", "model")
EDITABLE = frozenset(f.name for f in fields(DeviceFields)) - {
    "status",
    "home_location_id",
    "home_slot",
}


def update_device(
    session: Session, actor: User, device: Device, changes: Mapping[str, Any]
) -> tuple[Device, Check]:
    """Edit the facts of a device; home and status have their own paths with their own rules."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationFailed(
            "Change the home location or status with their own actions.",
            details=[{"field": name, "message": "not editable here"} for name in sorted(unknown)],
        )
    emptied = sorted(name for name in REQUIRED if name in changes and not changes[name])
    if emptied:
        raise ValidationFailed(
            "Some details need correcting before this can be saved.",
            details=[{"field": name, "message": "This cannot be left empty."} for name in emptied],
        )
    data = DeviceFields(**{f.name: getattr(device, f.name) for f in fields(DeviceFields)})
    for name, value in changes.items():
        setattr(data, name, value)
    data.serial = normalise_serial(data.serial)
    check = check_fields(session, device.school_id, data, existing=device)
    check.raise_if_errors()
    before = {name: getattr(device, name) for name in changes}
    for name in changes:
        setattr(device, name, getattr(data, name))
    changed = {
        name: [_plain(before[name]), _plain(getattr(device, name))]
        for name in changes
        if before[name] != getattr(device, name)
    }
    if changed:
        add_event(
            session,
            device,
            kind="edited",
            summary="Details changed: " + ", ".join(name.replace("_", " ") for name in changed),
            actor=actor,
            details={"changes": changed},
        )
        record(
            session,
            actor=actor,
            action="device.edited",
            school_id=device.school_id,
            target_type="device",
            target_id=device.asset_tag,
            details={"changes": changed},
        )
    session.commit()
    return device, check


def _plain(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    return value.value if isinstance(value, DeviceStatus | Platform) else value


def change_status(
    session: Session,
    actor: User | None,
    device: Device,
    new_status: DeviceStatus,
    reason: str,
    *,
    commit: bool = True,
    in_disposal_batch: bool = False,
) -> Device:
    """Move a device through its lifecycle; illegal moves are refused with the reason.

    Disposal is final and ends everything Trolley can do for the device (no lost mode, no
    freeze), so it comes only with a completed disposal batch, whose agency, receipt and
    erasure evidence P-DISPOSE-1 asks for: never one account's status change.
    """
    old = device.status
    if new_status == old:
        raise Conflict(f"{device.asset_tag} is already {old.label.lower()}.")
    if new_status not in TRANSITIONS[old]:
        raise ValidationFailed(
            f"{device.asset_tag} cannot go from {old.label.lower()} to "
            f"{new_status.label.lower()}. {refusal(old, new_status)}",
            code="not_allowed",
        )
    if new_status is DeviceStatus.DISPOSED and not in_disposal_batch:
        raise ValidationFailed(
            f"{device.asset_tag} is disposed of through a disposal batch, which records the "
            "agency, the waste transfer note and how its storage was erased: add it to one on "
            "the Disposals page.",
            code="through_disposal",
        )
    if not reason.strip():
        raise ValidationFailed("Say why the status is changing; it goes in the device's history.")
    device.status = new_status
    if new_status is DeviceStatus.DISPOSED:
        device.home_slot = None  # frees the slot; the device keeps its history
    add_event(
        session,
        device,
        kind="status",
        summary=f"{old.label} → {new_status.label}: {reason.strip()}",
        actor=actor,
        details={"from": old.value, "to": new_status.value},
    )
    record(
        session,
        actor=actor,
        action="device.status_changed",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"from": old.value, "to": new_status.value, "reason": reason.strip()},
    )
    if commit:
        session.commit()
    return device
