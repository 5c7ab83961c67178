"""Passcode and storage encryption as each device reports them (P-REG-7): kept, listed, counted.

Only a device's own latest report counts. A device that never said, or whose latest report does
not say, or whose storage was erased after it, is "not known", and the register lists it with
those where either is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from server.devices.models import Device, DeviceProtection, DeviceStatus, Latest
from server.devices.services.register import add_event, reported_since_erase

PROTECTION_STATES = ("protected", "off", "not_known")
PROTECTION_LABELS = {
    "protected": "Passcode and encryption on",
    "off": "Passcode or encryption off",
    "not_known": "Not known",
}


@dataclass(frozen=True)
class Protection:
    """A device's passcode and encryption in words, from its own report (or not known)."""

    passcode: str
    encryption: str
    reported_at: datetime | None
    gap: bool  # either is off or not known
    erased_at: datetime | None = None  # set when an erase made the last report "not known"


def _word(value: bool | None, on: str, off: str) -> str:
    return "not known" if value is None else (on if value else off)


def record_protection(
    session: Session,
    device: Device,
    *,
    passcode: bool | None,
    storage_encrypted: bool | None,
    details: Mapping[str, str],
    at: datetime,
) -> DeviceProtection:
    """Keep what a report says about the passcode and encryption; joins the caller's transaction."""
    row = session.scalar(select(DeviceProtection).where(DeviceProtection.device_id == device.id))
    if row is not None and row.reported_at > at:
        return row  # an older report arriving late changes nothing
    before = (row.passcode, row.storage_encrypted) if row is not None else (None, None)
    if row is None:
        row = DeviceProtection(device_id=device.id, school_id=device.school_id, reported_at=at)
        session.add(row)
    row.passcode, row.storage_encrypted, row.reported_at = passcode, storage_encrypted, at
    row.passcode_detail = str(details.get("passcode", ""))[:200]
    row.encryption_detail = str(details.get("storage_encrypted", ""))[:200]
    if (passcode, storage_encrypted) != before:
        add_event(
            session,
            device,
            kind="report",
            summary=f"Reports passcode {_word(passcode, 'on', 'off')}, storage encrypted "
            f"{_word(storage_encrypted, 'yes', 'no')}",
            actor=None,
            details={"passcode": passcode, "storage_encrypted": storage_encrypted},
        )
    session.flush()
    return row


def protection_of(
    session: Session, device: Device, *, erased_at: datetime | Latest | None = Latest.ERASE
) -> Protection:
    """The device's passcode and encryption as it last reported them, in words.

    A report from before its latest erase (or the one at `erased_at`) is "not known".
    """
    row = session.scalar(select(DeviceProtection).where(DeviceProtection.device_id == device.id))
    if row is not None and device.erased_since(row.reported_at, erased_at):
        erased = "Not known: the device was erased after its last report"
        return Protection(erased, erased, None, True, erased_at=device.erasure_counted(erased_at))
    return describe_protection(row)


def describe_protection(row: DeviceProtection | None) -> Protection:
    """Words for a protection row; no row is "not known" for both."""
    if row is None:
        never = "Not known: the device has never reported it"
        return Protection(never, never, None, True)

    def say(value: bool | None, yes: str, no: str, how: str) -> str:
        if value is None:
            text = "Not known: the device's latest report does not say"
        else:
            text = yes if value else no
        return f"{text} ({how})" if how else text

    return Protection(
        passcode=say(
            row.passcode, "Yes: unlocking needs a passcode", "No passcode", row.passcode_detail
        ),
        encryption=say(row.storage_encrypted, "Encrypted", "Not encrypted", row.encryption_detail),
        reported_at=row.reported_at,
        gap=row.passcode is not True or row.storage_encrypted is not True,
    )


def protection_summary(session: Session, school_id: int) -> dict[str, int]:
    """How many devices in use are protected, have either off, or are not known (one query)."""
    state = case(
        # A report from before the device's storage was erased describes nothing there now.
        (not_(reported_since_erase(DeviceProtection.reported_at)), "not_known"),
        (
            and_(DeviceProtection.passcode.is_(True), DeviceProtection.storage_encrypted.is_(True)),
            "protected",
        ),
        (
            or_(
                DeviceProtection.passcode.is_(False),
                DeviceProtection.storage_encrypted.is_(False),
            ),
            "off",
        ),
        else_="not_known",
    )
    inner = (
        select(state.label("state"))
        .select_from(Device)
        .outerjoin(DeviceProtection, DeviceProtection.device_id == Device.id)
        .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
        .subquery()
    )
    rows = session.execute(select(inner.c.state, func.count()).group_by(inner.c.state)).all()
    counts = {str(name): int(n) for name, n in rows}
    return {name: counts.get(name, 0) for name in PROTECTION_STATES}
