"""iPads over Apple's MDM: hundreds of simulated iPads at once, each answering a command.

A fleet of simulated iPads (the tests' own, speaking Apple's schema, signing every message) is
enrolled through the real endpoints (enrolment profile, Authenticate, TokenUpdate) on a SQLite
file, then, with `--threads` of them talking at once:

- measured: "lost mode off" for every iPad is issued in one transaction (a command the fleet
  budget lets through for hundreds at once); each iPad checks in (Idle), is handed
  DisableLostMode, acknowledges it, and is told there is nothing more. The clock stops when the
  last iPad has its answer recorded.
- baseline: the same iPads check in (Idle) with nothing queued: the protocol's bare cost
  (signature verified, identity looked up, nothing to hand out).

Prints the ratio first, writes bench/results/ipads_<count>.json.

    .venv/bin/python bench/bench_ipads.py [--count N] [--threads T]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result


def run(count: int, threads: int, work: Path) -> dict[str, Any]:
    from cryptography.fernet import Fernet
    from sqlalchemy import func, select

    from server import create_app
    from server.auth.models import Role
    from server.auth.services import create_user
    from server.commands import services as commands
    from server.commands.models import Command, CommandStatus
    from server.db import Database, make_engine, migrate, utcnow
    from server.devices.models import Device, DeviceStatus, Platform
    from server.ipads import services as ipads
    from server.ipads.simulator import SimulatedIpad
    from server.schools.services import create_school

    url = f"sqlite:///{work / 'trolley.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    app = create_app(
        {
            "database_url": url,
            "instance_dir": work / "instance",
            "data_keys": [Fernet.generate_key().decode()],
            "secure_cookies": False,
            "secret_key": "bench-" + "x" * 40,
        }
    )
    settings = app.extensions["trolley.settings"]
    database = Database(url)
    with database.begin() as session:
        school = create_school(session, slug="bench", name="Bench Primary")
        tech = create_user(
            session,
            actor=None,
            school=school,
            email="tech@bench.example",
            name="Tech",
            role=Role.TECHNICIAN,
            password="long-password-1",
        )
        devices = [
            Device(
                school_id=school.id,
                asset_tag=f"I-{n:05d}",
                serial=f"DMP{n:09d}",
                platform=Platform.IPADOS,
                make="Apple",
                model="iPad",
                status=DeviceStatus.IN_SERVICE,
            )
            for n in range(count)
        ]
        session.add_all(devices)
        session.flush()
        tech_id = tech.id
    paths = []
    with database.session() as session:
        tech = session.get(type(tech), tech_id)
        for device in session.scalars(select(Device).order_by(Device.id)):
            link = ipads.enrolment_link(session, tech, device, settings, now=utcnow())
            paths.append("/" + link.url.split("/", 3)[3])

    def enrol(path: str) -> SimulatedIpad:
        client = app.test_client()
        ipad = SimulatedIpad(client, supervised=True)
        profile = client.get(path)
        assert profile.status_code == 200, profile.status_code
        ipad.enrol(profile.data)
        ipad.run()  # the inventory every new iPad is asked for
        return ipad

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        fleet = list(pool.map(enrol, paths))
    enrolled_s = time.monotonic() - started

    def idle(ipad: SimulatedIpad) -> int:
        return ipad.run()

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        assert sum(pool.map(idle, fleet)) == 0
    baseline = time.monotonic() - started

    with database.session() as session:
        tech = session.get(type(tech), tech_id)
        devices = list(session.scalars(select(Device).order_by(Device.id)))
        issued = commands.issue(session, tech, devices, "lost_mode", {"enabled": False})
        assert all(c.status is CommandStatus.QUEUED for c in issued), "budget would hold these"
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        assert sum(pool.map(idle, fleet)) == count
    measured = time.monotonic() - started
    with database.session() as session:
        done = session.scalar(
            select(func.count()).where(
                Command.type == "lost_mode", Command.status == CommandStatus.DONE
            )
        )
    assert done == count and all(ipad.handled[-1] == "DisableLostMode" for ipad in fleet)
    return {"measured": measured, "baseline": baseline, "enrolled_s": enrolled_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        got = run(args.count, args.threads, Path(tmp))
    write_result(
        f"ipads_{args.count}",
        value=got["measured"],
        unit="s",
        baseline=got["baseline"],
        ratio=got["measured"] / got["baseline"],
        target="≤ 4 (a command round costs a few idle check-ins)",
        details={
            "count": args.count,
            "threads": args.threads,
            "enrol_s": round(got["enrolled_s"], 2),
            "command_ms_per_ipad": round(1000 * got["measured"] / args.count, 2),
        },
    )


if __name__ == "__main__":
    main()
