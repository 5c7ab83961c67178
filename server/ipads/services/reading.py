"""What an iPad reported, for its device page: each fact as it said it, with the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.ipads.models import IpadEnrolment, Stage

SHOWN = (
    ("DeviceName", "Name on the iPad"),
    ("ModelName", "Model"),
    ("ProductName", "Product"),
    ("OSVersion", "iPadOS"),
    ("SerialNumber", "Serial number"),
)


@dataclass(frozen=True)
class IpadFacts:
    """The latest enrolment of one iPad and what it reported."""

    enrolment: IpadEnrolment
    rows: list[tuple[str, str]]
    supervised: bool | None
    shared_ipad: bool | None
    passcode: bool | None
    encryption_caps: int | None
    reported_at: datetime | None

    @property
    def stage(self) -> str:
        return self.enrolment.stage.label


def ipad_facts(session: Session, device: Device) -> IpadFacts | None:
    """The iPad's latest enrolment and its reports; None when it was never sent a profile."""
    enrolment = session.scalar(
        select(IpadEnrolment)
        .where(IpadEnrolment.device_id == device.id, IpadEnrolment.stage != Stage.REPLACED)
        .order_by(IpadEnrolment.created_at.desc(), IpadEnrolment.id.desc())
        .limit(1)
    )
    if enrolment is None:
        return None
    facts: dict[str, Any] = enrolment.facts or {}
    security: dict[str, Any] = facts.get("SecurityInfo") or {}
    rows = [(label, str(facts[key])) for key, label in SHOWN if facts.get(key) not in (None, "")]
    passcode = security.get("PasscodePresent")
    caps = security.get("HardwareEncryptionCaps")
    return IpadFacts(
        enrolment=enrolment,
        rows=rows,
        supervised=enrolment.supervised,
        shared_ipad=enrolment.shared_ipad,
        passcode=passcode if isinstance(passcode, bool) else None,
        encryption_caps=caps if isinstance(caps, int) else None,
        reported_at=enrolment.facts_at,
    )
