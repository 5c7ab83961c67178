"""What waits for an approver at 100,000 commands: `approvals_for` with the school/status/created
index against the same call with that index dropped, in the same run.

Seeds a fresh SQLite file (one school, 1,000 enrolled devices, 100,000 finished commands and an
84-device wipe waiting for approval), then times the home page's approvals query with the index,
drops it, and times it again. Prints the ratio first and writes bench/results/waiting.json.

    .venv/bin/python bench/bench_waiting.py [--commands N] [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, timed, write_result
from server.auth.models import Role
from server.auth.services import create_user
from server.commands.models import Command, CommandStatus
from server.commands.services import approvals_for
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.schools.services import create_school

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
TARGET = 0.2  # with the index, at most a fifth of the time without it


def seed(session: Session, commands: int) -> int:
    school = create_school(session, slug="bench", name="Bench Primary")
    lead = create_user(
        session,
        actor=None,
        school=school,
        email="lead@bench.example",
        name="Lead",
        role=Role.COMPUTING_LEAD,
        password="long-password-1",
    )
    tech = create_user(
        session,
        actor=None,
        school=school,
        email="tech@bench.example",
        name="Tech",
        role=Role.TECHNICIAN,
        password="long-password-1",
    )
    tech.created_at = NOW - timedelta(days=60)
    tech.totp_secret_sealed = (
        b"x"  # any second factor: approvals_for only asks whether there is one
    )
    session.flush()
    session.execute(
        insert(Device),
        [
            {
                "school_id": school.id,
                "asset_tag": f"B-{n:05d}",
                "serial": f"S{n:09d}",
                "platform": Platform.IPADOS,
                "make": "Apple",
                "model": "iPad",
                "status": DeviceStatus.IN_SERVICE,
            }
            for n in range(1000)
        ],
    )
    ids = [r[0] for r in session.execute(text("SELECT id FROM devices ORDER BY id"))]
    rows = [
        {
            "school_id": school.id,
            "device_id": ids[n % len(ids)],
            "cmd_id": str(uuid.uuid4()),
            "type": "ping",
            "args": {},
            "reason": "",
            "status": CommandStatus.DONE,
            "requested_by_id": lead.id,
            "created_at": NOW - timedelta(seconds=n),
            "expires_at": NOW,
            "attempts": 1,
            "detail": "",
            "result": {},
        }
        for n in range(commands)
    ]
    batch = str(uuid.uuid4())
    rows += [
        {
            **rows[0],
            "device_id": ids[n],
            "cmd_id": str(uuid.uuid4()),
            "batch_id": batch,
            "type": "wipe_photos",
            "status": CommandStatus.PENDING_APPROVAL,
        }
        for n in range(84)
    ]
    for start in range(0, len(rows), 20_000):
        session.execute(insert(Command), rows[start : start + 20_000])
    session.commit()
    return tech.id


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/waiting.db")
        migrate(engine)
        with Session(engine) as session:
            from server.auth.models import User

            tech = session.get(User, seed(session, args.commands))
            assert tech is not None
            found = approvals_for(session, tech, now=NOW)
            assert [w.count for w in found] == [84], found
            indexed = timed(lambda: approvals_for(session, tech, now=NOW), args.runs)
            session.execute(text("DROP INDEX ix_commands_school_status_created"))
            session.commit()
            bare = timed(lambda: approvals_for(session, tech, now=NOW), args.runs)
        engine.dispose()
    value, baseline = median(indexed) * 1000, median(bare) * 1000
    write_result(
        "waiting",
        value=value,
        unit="ms",
        baseline=baseline,
        ratio=value / baseline,
        target=f"<= {TARGET}",
        details={"commands": args.commands, "runs": args.runs, "waiting": 84},
    )
    return 0 if value / baseline <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
