"""The demo's MDM iPads: which they are, and a one-time enrolment link for each that needs one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.db import Database, utcnow
from server.devices.models import Device
from server.ipads.models import ACTIVE, IpadEnrolment
from server.ipads.services import enrolment_link
from server.ipads.simulator import FleetIpad
from server.schools.demo import DEMO_SLUG, MDM_IPADS
from server.schools.models import School

# The last of them is not supervised, so the demo also shows lock-instead-of-lost-mode.
UNSUPERVISED = MDM_IPADS[-1]


def state_dir(settings: Any) -> Path:
    """Where the simulated iPads keep their identities between runs of the demo."""
    return Path(settings.instance_dir) / "fleet" / "ipads"


def demo_ipads(database: Database, settings: Any) -> list[FleetIpad]:
    """The demo's MDM iPads: those still enrolled resume, the others get an enrolment link."""
    kept = state_dir(settings)
    fleet = []
    with database.begin() as session:
        devices = session.scalars(
            select(Device)
            .join(School, School.id == Device.school_id)
            .where(School.slug == DEMO_SLUG, Device.asset_tag.in_(MDM_IPADS))
            .order_by(Device.asset_tag)
        ).all()
        for device in devices:
            enrolled = session.scalar(
                select(IpadEnrolment.id).where(
                    IpadEnrolment.device_id == device.id, IpadEnrolment.stage.in_(ACTIVE)
                )
            )
            resumes = enrolled is not None and (kept / f"{device.serial}.json").exists()
            link = None
            if not resumes:
                link = enrolment_link(session, None, device, settings, now=utcnow()).url
            fleet.append(
                FleetIpad(device.serial, supervised=device.asset_tag != UNSUPERVISED, link=link)
            )
    return fleet
