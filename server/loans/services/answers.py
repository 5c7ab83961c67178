"""What a scan answers: the result a teacher sees, and why a device may not go out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.errors import Conflict
from server.loans.models import Loan, LoanItem
from server.loans.services.common import MISSING, _event, _notify
from server.loans.services.places import _SQL, Counts
from server.losses import services as losses
from server.schools.models import Location, School
from server.schools.services.clock import when

REPORTED_LOST = "reported lost: the headteacher has been told it was found here"


@dataclass
class ScanResult:
    """What happened to one scanned device; stored with its key and replayed if re-sent."""

    outcome: str  # out | returned | put_back | transferred | already_out | already_in
    message: str
    asset_tag: str
    model: str
    counts: Counts | None
    loan_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    key: str | None = None
    recorded: bool = True
    replayed: bool = False
    wipe: str | None = None
    item_id: int | None = None

    @property
    def tone(self) -> str:
        return "warn" if self.warnings else "ok"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanResult:
        counts = data.get("counts")
        return cls(**{**data, "counts": Counts(**counts) if counts else None})


@dataclass
class Refusal:
    asset_tag: str
    code: str
    message: str


@dataclass
class BatchResult:
    """A whole-trolley take-out or a return of several devices."""

    loan: Loan | None
    results: list[ScanResult]
    refused: list[Refusal]
    counts: Counts | None
    key: str | None = None
    replayed: bool = False


def _holder_text(session: Session, device: Device) -> tuple[str, str | None]:
    """Who has a device now, as a person would say it, and their class."""
    item = open_item(session, device.id)
    holder = session.get(User, device.holder_id) if device.holder_id else None
    name = holder.name if holder else "someone"
    label = item.loan.class_label if item is not None and item.loan.class_label else None
    return name, label


def _held_by_other(session: Session, device: Device) -> Conflict:
    name, label = _holder_text(session, device)
    return Conflict(
        f"{device.asset_tag} is out with {name}{f' ({label})' if label else ''}. "
        "Take it over only if you have it in your hands.",
        code="held_by_other",
        details={"asset_tag": device.asset_tag, "holder": name, "can_transfer": True},
    )


def open_item(session: Session, device_id: int) -> LoanItem | None:
    item: LoanItem | None = session.scalar(_SQL["open_item"], {"device": device_id})
    return item


def _tell_losses(
    session: Session, actor: User, device: Device, place: Location | None, now: datetime
) -> None:
    """A lost or stolen device turned up: its loss report (or else the head directly) is told."""
    where = place.name if place is not None else "school"
    told = losses.device_scanned(session, device, location=place, actor=actor, now=now)
    if told is None:
        # No loss report to attach it to: tell the head directly.
        _notify(
            session,
            device.school_id,
            roles=[Role.HEADTEACHER],
            kind="device_found",
            title=f"{device.asset_tag}, reported {device.status.value}, was scanned in {where}",
            body=f"{actor.name} scanned {device.asset_tag} at {where} "
            f"at {when(now, session.get_one(School, device.school_id))}. "
            "Trolley did not let it go out.",
            link=f"/devices/{device.asset_tag}",
            devices=[device],
            at=now,
        )
    _event(
        session,
        device,
        now,
        kind="scan",
        summary=f"Scanned at {where} while reported {device.status.value}; the head was told",
        actor=actor,
    )
    record(
        session,
        actor=actor,
        action="loans.missing_device_scanned",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"location_id": place.id if place else None, "status": device.status.value},
        at=now,
    )


def _refuse_unusable(
    session: Session, actor: User, device: Device, place: Location | None, now: datetime
) -> None:
    """Refuse a device that may not go out, with the reason (lost ones tell the head first)."""
    if device.status in MISSING:
        _tell_losses(session, actor, device, place, now)
        raise Conflict(f"{device.asset_tag}: {REPORTED_LOST}.", code="reported_lost")
    if device.status is DeviceStatus.IN_REPAIR:
        raise Conflict(
            f"{device.asset_tag} is in repair, so it cannot go out. Leave it out of the trolley.",
            code="in_repair",
        )
    if device.status is DeviceStatus.DISPOSED:
        raise Conflict(
            f"{device.asset_tag} has been disposed of and should not be in school. "
            "Please give it to the school business manager.",
            code="disposed",
        )
