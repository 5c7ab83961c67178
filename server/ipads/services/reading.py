"""What an iPad reported, for its device page: each fact as it said it, with the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.ipads.models import ACTIVE, IpadEnrolment, Stage

SHOWN = (
    ("DeviceName", "Name on the iPad"),
    ("ModelName", "Model"),
    ("ProductName", "Product"),
    ("OSVersion", "iPadOS"),
    ("SerialNumber", "Serial number"),
)
# What an erase leaves as it was: the hardware. Its name, iPadOS and the rest are set up afresh.
HARDWARE = frozenset({"ModelName", "ProductName", "SerialNumber"})


@dataclass(frozen=True)
class IpadFacts:
    """The latest enrolment of one iPad and what it reported.

    What it reported before its storage was last erased (a reset it confirmed, or one a
    technician recorded) describes an iPad that is no more: those facts are None, their
    `*_erased` flag says why, `erased_at` is that erase, and only the hardware rows are shown.
    """

    enrolment: IpadEnrolment
    rows: list[tuple[str, str]]
    supervised: bool | None
    shared_ipad: bool | None
    passcode: bool | None
    encryption_caps: int | None
    reported_at: datetime | None
    apps_count: int | None
    erased_at: datetime | None = None
    facts_erased: bool = False
    apps_erased: bool = False
    seen_since_erase: bool = True

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
    erased = device.erased_since(enrolment.facts_at)
    security: dict[str, Any] = {} if erased else facts.get("SecurityInfo") or {}
    rows = [
        (label, str(facts[key]))
        for key, label in SHOWN
        if facts.get(key) not in (None, "") and (key in HARDWARE or not erased)
    ]
    passcode = security.get("PasscodePresent")
    caps = security.get("HardwareEncryptionCaps")
    apps_erased = device.erased_since(enrolment.apps_at)
    # An enrolment the erase ended (the iPad checked out) says so itself.
    unseen = enrolment.stage in ACTIVE and device.erased_since(enrolment.last_seen_at)
    return IpadFacts(
        enrolment=enrolment,
        rows=rows,
        supervised=None if erased else enrolment.supervised,
        shared_ipad=None if erased else enrolment.shared_ipad,
        passcode=passcode if isinstance(passcode, bool) else None,
        encryption_caps=caps if isinstance(caps, int) else None,
        reported_at=enrolment.facts_at,
        apps_count=None if apps_erased else enrolment.apps_count,
        erased_at=device.erased_at if erased or apps_erased or unseen else None,
        facts_erased=erased,
        apps_erased=apps_erased,
        seen_since_erase=not unseen,
    )
