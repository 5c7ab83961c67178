"""The demo school linked to a local stand-in for Google: Chromebooks synced, a profile pushed."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.auth.models import Role, User
from server.chromebooks import services
from server.chromebooks.services.policies import push_profiles
from server.chromebooks.stand_in import CUSTOMER, GoogleStandIn
from server.crypto import SecretBox
from server.db import Database
from server.devices.models import Device, Platform
from server.errors import TrolleyError
from server.profiles import services as profiles
from server.profiles.models import Profile
from server.schools.models import Location, LocationKind, School

log = logging.getLogger(__name__)

ADMIN = "it.admin@oakfield.example"
ORG_UNIT = ("03ph8a2z0006x", "/Pupils/Year 6")
SCHOOL_NETWORK = "81.2.69.0/24"
PROFILE_NAME = "KS2 Chromebooks"


def _seed_file(settings: Any) -> Path:
    folder = Path(settings.instance_dir) / "google-stand-in"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "domain.json"


def prepare(database: Database, settings: Any, school_slug: str) -> Path:
    """Write the stand-in's domain (a key, the school's Chromebooks) once; link the school."""
    seed = _seed_file(settings)
    with database.begin() as session:
        school = session.scalar(select(School).where(School.slug == school_slug))
        assert school is not None
        if not seed.exists():
            chromebooks = session.scalars(
                select(Device)
                .where(Device.school_id == school.id, Device.platform == Platform.CHROMEOS)
                .order_by(Device.asset_tag)
            ).all()
            devices: list[dict[str, Any]] = [{"serial": d.serial} for d in chromebooks]
            if devices:
                # One taken home without a home loan: seen by Google outside school.
                devices[-1]["lastKnownNetwork"] = [
                    {"ipAddress": "192.168.1.20", "wanIpAddress": "86.14.220.7"}
                ]
            devices += [{"serial": "PF4DEMO01"}, {"serial": "PF4DEMO02"}]  # not registered yet
            key = GoogleStandIn(port=0).service_account()
            seed.write_text(json.dumps({"key": key, "devices": devices}, indent=1))
            seed.chmod(0o600)
        if services.get_link(session, school.id) is None:
            sbm = session.scalar(
                select(User).where(User.school_id == school.id, User.role == Role.SBM)
            )
            assert sbm is not None
            services.save_link(
                session,
                SecretBox(settings.data_keys),
                sbm,
                key_text=json.dumps(json.loads(seed.read_text())["key"]),
                customer_id=CUSTOMER,
                admin_email=ADMIN,
                school_networks=SCHOOL_NETWORK,
            )
    return seed


def stand_in_from(seed: Path, port: int) -> GoogleStandIn:
    """The demo domain's stand-in: its administrator, org unit, key and Chromebooks."""
    domain = json.loads(seed.read_text())
    stand_in = GoogleStandIn(port=port)
    stand_in.admin(ADMIN)
    stand_in.org_units[ORG_UNIT[0]] = ORG_UNIT[1]
    stand_in.policies[ORG_UNIT[0]] = {}
    stand_in.register_key(domain["key"])
    for device in domain["devices"]:
        facts = {k: v for k, v in device.items() if k != "serial"}
        stand_in.add_device(
            device["serial"],
            # The same id at every start, as Google keeps it while the device stays enrolled.
            deviceId=str(uuid.uuid5(uuid.NAMESPACE_OID, device["serial"])),
            orgUnitPath=ORG_UNIT[1],
            orgUnitId=ORG_UNIT[0],
            **facts,
        )
    return stand_in


def _profile(session: Any, school: School) -> None:
    """The Year 6 trolley's Chromebooks get the library's KS2 Chromebook profile (once)."""
    if session.scalar(select(Profile).where(Profile.school_id == school.id)) is not None:
        return
    lead = session.scalar(
        select(User).where(User.school_id == school.id, User.role == Role.COMPUTING_LEAD)
    )
    trolley = session.scalar(
        select(Location).where(
            Location.school_id == school.id,
            Location.kind == LocationKind.TROLLEY,
            Location.name == "Year 6 trolley",
        )
    )
    if lead is None or trolley is None:
        return
    profile = profiles.create_profile(session, lead, name=PROFILE_NAME, start_from="ks2-chromebook")
    profiles.assign(session, lead, profile, "location", trolley.id)


def link_up(database: Database, settings: Any, school_slug: str, root: str) -> None:
    """Test the link, sync the Chromebooks and push the profile, as a technician would."""
    google = services.GoogleApi(root=root)
    box = SecretBox(settings.data_keys)
    with database.begin() as session:
        school = session.scalar(select(School).where(School.slug == school_slug))
        assert school is not None
        technician = session.scalar(
            select(User).where(User.school_id == school.id, User.role == Role.TECHNICIAN)
        )
        assert technician is not None
        try:
            services.check_link(session, box, google, technician)
            result = services.sync_devices(session, box, google, school.id)
            log.info("demo Google domain: %s", result.words)
            _profile(session, school)
            for problem in push_profiles(session, box, google, technician):
                log.warning("demo profile push: %s", problem)
        except TrolleyError as exc:
            # The demo goes on: the Chromebooks page shows the same problem to the technician.
            log.warning("demo Google link: %s", exc.message)
