"""The demo school: one user per role, three trolleys, two safes and 90 devices."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role
from server.auth.services import create_user
from server.devices.models import Device, DeviceEvent, DeviceStatus, Platform
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location, create_school

DEMO_SLUG = "oakfield"
DEMO_PASSWORD = "oakfield-demo-1"
DEMO_ACCOUNTS_AGE = timedelta(days=30)
# Six iPads of the Year 3 trolley are managed through Apple's MDM protocol, as a school's iPads
# would be; the demo's other devices run the kiosk client over MQTT.
MDM_IPADS = tuple(f"OAK-IPAD-{slot:03d}" for slot in range(25, 31))
DEMO_PEOPLE = [
    (Role.TEACHER, "teacher@oakfield.example", "Amira Khan"),
    (Role.COMPUTING_LEAD, "computing@oakfield.example", "Tom Price"),
    (Role.SBM, "sbm@oakfield.example", "Sue Marsh"),
    (Role.HEADTEACHER, "head@oakfield.example", "Dr Helen Ward"),
    (Role.TECHNICIAN, "tech@oakfield.example", "Raj Patel"),
    (Role.GOVERNOR, "governor@oakfield.example", "Peter Lowe"),
    (Role.ADMIN, "admin@oakfield.example", "Office Admin"),
]


@dataclass(frozen=True)
class DemoLogin:
    role: Role
    email: str
    password: str


def _apple_serial(rng: random.Random) -> str:
    # Apple's randomised 10-character serials (2021 onwards) avoid vowels and O/I lookalikes.
    alphabet = "BCDFGHJKLMNPQRTVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(10))


def _lenovo_serial(rng: random.Random) -> str:
    return "PF" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(6))


def seed_demo(session: Session) -> tuple[School, list[DemoLogin]]:
    """Create the demo school unless it exists; returns it and its log-ins."""
    logins = [DemoLogin(role, email, DEMO_PASSWORD) for role, email, _ in DEMO_PEOPLE]
    school = session.scalar(select(School).where(School.slug == DEMO_SLUG))
    if school is not None:
        return school, logins
    school = create_school(session, slug=DEMO_SLUG, name="Oakfield Primary School")
    people = {
        role: create_user(
            session,
            actor=None,
            school=school,
            email=email,
            name=name,
            role=role,
            password=DEMO_PASSWORD,
        )
        for role, email, name in DEMO_PEOPLE
    }
    for person in people.values():
        # The demo school has used Trolley for a while: its approvers are past their
        # cooling-off, so a factory reset can be approved on the first day of a demo.
        person.created_at -= DEMO_ACCOUNTS_AGE
    sbm = people[Role.SBM]

    def place(
        kind: LocationKind,
        name: str,
        parent: Location | None = None,
        capacity: int | None = None,
        code: str | None = None,
    ) -> Location:
        return add_location(
            session,
            actor=sbm,
            school_id=school.id,
            kind=kind,
            name=name,
            parent=parent,
            capacity=capacity,
            code=code,
        )

    site = place(LocationKind.SITE, "Oakfield Road site")
    building = place(LocationKind.BUILDING, "Main building", site)
    rooms = {
        name: place(LocationKind.ROOM, name, building)
        for name in (
            "Year 3 classroom",
            "Year 4 classroom",
            "Year 6 classroom",
            "School office",
            "Head's office",
        )
    }
    # Each storage place has the short code printed on its label (and shown on the scan page).
    trolleys = {
        year: place(
            LocationKind.TROLLEY,
            f"Year {year} trolley",
            rooms[f"Year {year} classroom"],
            30,
            f"Y{year}-TROLLEY",
        )
        for year in (3, 4, 6)
    }
    place(LocationKind.SAFE, "Office safe", rooms["School office"], 10, "OFFICE-SAFE")
    place(LocationKind.SAFE, "Head's office safe", rooms["Head's office"], 10, "HEAD-SAFE")

    rng = random.Random(2026)  # the same demo school every time
    fleet = [
        (
            3,
            Platform.IPADOS,
            "Apple",
            "iPad (9th generation)",
            "OAK-IPAD",
            0,
            32900,
            date(2022, 8, 15),
        ),
        (
            4,
            Platform.IPADOS,
            "Apple",
            "iPad (10th generation)",
            "OAK-IPAD",
            30,
            34900,
            date(2023, 8, 21),
        ),
        (
            6,
            Platform.CHROMEOS,
            "Lenovo",
            "300e Chromebook Gen 3",
            "OAK-CB",
            0,
            26500,
            date(2023, 2, 6),
        ),
    ]
    for year, platform, make, model, prefix, offset, cost, bought in fleet:
        trolley = trolleys[year]
        for slot in range(1, 31):
            serial = _apple_serial(rng) if platform is Platform.IPADOS else _lenovo_serial(rng)
            device = Device(
                school_id=school.id,
                asset_tag=f"{prefix}-{offset + slot:03d}",
                serial=serial,
                platform=platform,
                make=make,
                model=model,
                os_version="iPadOS 18.1" if platform is Platform.IPADOS else "ChromeOS 130",
                status=DeviceStatus.IN_SERVICE,
                home_location_id=trolley.id,
                home_slot=slot,
                current_location_id=trolley.id,
                purchase_date=bought,
                purchase_cost_pence=cost,
                supplier="XMA Ltd" if platform is Platform.IPADOS else "Stone Group",
                warranty_until=bought + timedelta(days=3 * 365),
            )
            session.add(device)
            session.flush()
            session.add(
                DeviceEvent(
                    school_id=school.id,
                    device_id=device.id,
                    kind="created",
                    summary=f"Added to the register in {trolley.name}, slot {slot}",
                    actor_id=sbm.id,
                )
            )
    return school, logins


def demo_fleet_arguments(database: Any, settings: Any) -> list[str]:
    """One-time codes for the demo devices not yet enrolled, and the simulator's arguments.

    The simulator enrols them over HTTP, exactly as a real kiosk would.
    """
    from server.chromebooks.models import GoogleDevice
    from server.enrolment.models import DeviceIdentity
    from server.enrolment.services import issue_enrolment_tokens

    fleet_dir = settings.instance_dir / "fleet"
    fleet_dir.mkdir(parents=True, exist_ok=True)
    payload_file = fleet_dir / "enrol.txt"
    with database.begin() as session:
        enrolled = set(
            session.scalars(
                select(DeviceIdentity.device_id).where(DeviceIdentity.revoked_at.is_(None))
            )
        )
        # Chromebooks Google manages are reached through Google, and the MDM iPads through
        # Apple's protocol: neither is a simulated kiosk client.
        by_google = set(session.scalars(select(GoogleDevice.device_id)))
        devices = [
            device
            for device in session.scalars(
                select(Device)
                .join(School, School.id == Device.school_id)
                .where(School.slug == DEMO_SLUG)
            )
            if device.id not in by_google and device.asset_tag not in MDM_IPADS
        ]
        waiting = [device for device in devices if device.id not in enrolled]
        codes = [
            payload.encode()
            for _token, payload in issue_enrolment_tokens(session, None, waiting, settings)
        ]
    payload_file.write_text("".join(f"{code}\n" for code in codes))
    return [
        "simulate",
        "--count",
        str(len(devices)),
        "--data-dir",
        str(fleet_dir),
        "--enrol-file",
        str(payload_file),
    ]
