"""What a member of staff holds: school devices from the register and the loans, and their own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device, DeviceStatus
from server.errors import Conflict
from server.leavers.models import ItemKind, LeaverCase, LeaverItem
from server.leavers.services.common import _describe
from server.loans.services import devices_out
from server.personal_devices import services as personal_devices


@dataclass(frozen=True)
class Held:
    """A school device the person holds, and how: on the register, or out on a loan."""

    device: Device
    source: str


def _on_loan(session: Session, user: User) -> dict[str, str]:
    """The loans domain's view of what the person has out now: asset tag → how it is out."""
    out = {}
    for row in devices_out(session, user.school_id, teacher_id=user.id):
        if row.kind == "home":
            out[row.asset_tag] = "Home loan"
        else:
            out[row.asset_tag] = f"Lesson loan ({row.class_label or 'no class given'})"
    return out


def held_by(session: Session, user: User) -> list[Held]:
    """Every school device the register and the loans say the person holds."""
    loans = _on_loan(session, user)
    holds = Device.holder_id == user.id
    if loans:
        holds = or_(holds, Device.asset_tag.in_(list(loans)))
    devices = session.scalars(
        select(Device)
        .where(Device.school_id == user.school_id, Device.status != DeviceStatus.DISPOSED, holds)
        .order_by(Device.asset_tag)
    ).all()
    return [Held(d, loans.get(d.asset_tag, "Held (asset register)")) for d in devices]


def _busy(session: Session, device_ids: Sequence[int], *, but: int | None = None) -> list[Device]:
    """Devices already on another open case."""
    if not device_ids:
        return []
    query = (
        select(Device)
        .join(LeaverItem, LeaverItem.device_id == Device.id)
        .where(LeaverItem.device_id.in_(list(device_ids)), LeaverItem.settled_at.is_(None))
    )
    if but is not None:
        query = query.where(LeaverItem.case_id != but)
    return list(session.scalars(query.order_by(Device.asset_tag)).unique())


def _busy_error(session: Session, busy: Sequence[Device]) -> Conflict:
    owners = session.execute(
        select(Device.asset_tag, LeaverCase.leaver_name)
        .join(LeaverItem, LeaverItem.device_id == Device.id)
        .join(LeaverCase, LeaverCase.id == LeaverItem.case_id)
        .where(Device.id.in_([d.id for d in busy]), LeaverItem.settled_at.is_(None))
    ).all()
    words = "; ".join(f"{tag} is on the open leaver case for {name}" for tag, name in owners)
    return Conflict(
        f"{words or 'A device is already on another open leaver case'}. "
        "A device can be on only one open case: finish or close that case first.",
        code="device_in_open_case",
        details=[{"asset_tag": tag, "case_of": name} for tag, name in owners],
    )


def _device_item(case: LeaverCase, device: Device, source: str, now: datetime) -> LeaverItem:
    return LeaverItem(
        school_id=case.school_id,
        kind=ItemKind.DEVICE,
        device_id=device.id,
        device=device,
        description=_describe(device),
        source=source[:120],
        added_at=now,
        escrow_ids=[],
    )


def _personal_items(
    session: Session, case: LeaverCase, leaver: User, now: datetime, *, skip: set[int]
) -> list[LeaverItem]:
    return [
        LeaverItem(
            school_id=case.school_id,
            kind=ItemKind.PERSONAL_DEVICE,
            personal_device_id=entry.id,
            description=f"{entry.make} {entry.model}, serial {entry.serial}"[:300],
            source="Staff personal devices register",
            added_at=now,
            escrow_ids=[],
        )
        for entry in personal_devices.personal_devices_of(session, leaver)
        if entry.id not in skip
    ]
