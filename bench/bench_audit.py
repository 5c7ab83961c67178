"""Closing-report generation at 100,000 devices over 3,000 places, against one GROUP BY.

Seeds a fresh SQLite file with Core executemany (300 staff, 3,000 places, 100,000 devices), runs
last term's audit and this term's through the real services (start is one INSERT ... SELECT; the
scans' results are written in bulk: about 95% verified, 2% missing, 1.5% misplaced, 0.5% found,
1% damaged, 40 unknown labels), signs both off, then times `audits.services.report` - the
summary, the per-place table, every list, the cross-checks and the comparison with last term -
against a baseline measured in the same run and interleaved with it: one bare GROUP BY of the
same audit's rows by place and result. Prints the ratio first and writes bench/results/audit.json
(and audit_postgresql.json).
With --postgres it does the same on PostgreSQL (a throwaway schema) and adds those numbers.

    .venv/bin/python bench/bench_audit.py [--devices N] [--places N] [--runs N] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, insert, select, text, update
from sqlalchemy.orm import Session

# Run as a script (bench/bench_audit.py), the repository root is not on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, percentile, write_result
from server.audits import services
from server.audits.models import AuditItem, AuditState, AuditUnknownTag
from server.auth.models import Role, User
from server.auth.services import create_user
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.schools.models import Location, LocationKind, Term
from server.schools.services import create_school, uk_default_terms

TARGET_RATIO = 3.0
TARGET_SECONDS = 1.0
POSTGRES = os.environ.get("TROLLEY_BENCH_POSTGRES", "postgresql+psycopg://127.0.0.1:5432/test")
# Last term's audit is signed off in December; this term's, the one measured, in March.
PREVIOUS = datetime(2025, 12, 10, 15, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def say(message: str) -> None:
    """Progress goes to stderr: stdout starts with the ratio."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Seeded:
    school_id: int
    audit_id: int
    seconds: float
    sign_off_seconds: float


def _places(conn: Any, school_id: int, places: int) -> list[int]:
    """Sites › buildings › rooms › trolleys, safes and cupboards, with explicit ids."""
    sites, buildings, rooms = 5, 25, 500
    rows: list[dict[str, Any]] = []
    next_id = iter(range(1, places + 1))
    now = NOW

    def place(kind: LocationKind, name: str, parent: int | None, capacity: int | None) -> int:
        ident = next(next_id)
        rows.append(
            {
                "id": ident,
                "school_id": school_id,
                "parent_id": parent,
                "kind": kind,
                "name": name,
                "capacity": capacity,
                "created_at": now,
            }
        )
        return ident

    site_ids = [place(LocationKind.SITE, f"Site {n}", None, None) for n in range(sites)]
    building_ids = [
        place(LocationKind.BUILDING, f"Building {n}", site_ids[n % sites], None)
        for n in range(buildings)
    ]
    room_ids = [
        place(LocationKind.ROOM, f"Room {n}", building_ids[n % buildings], None)
        for n in range(rooms)
    ]
    kinds = [LocationKind.TROLLEY, LocationKind.SAFE, LocationKind.CUPBOARD]
    storage = [
        place(kinds[n % 3], f"{kinds[n % 3].value.title()} {n}", room_ids[n % rooms], 200)
        for n in range(places - sites - buildings - rooms)
    ]
    conn.execute(insert(Location), rows)
    return storage


def _results(conn: Any, audit_id: int, lead_id: int, at: datetime, shift: int) -> None:
    """What the scanners found, written in bulk (the services' per-scan path is tested apart)."""
    item = AuditItem.__table__
    this = item.c.audit_id == audit_id
    conn.execute(
        update(item)
        .where(this)
        .values(
            state=AuditState.VERIFIED.value,
            scanned_location_id=item.c.expected_location_id,
            scanned_at=at,
            first_scanned_at=at,
            scanned_by_id=lead_id,
            scan_count=1,
        )
    )
    conn.execute(
        update(item)
        .where(this, (item.c.id + shift) % 67 == 0)
        .values(
            state=AuditState.MISPLACED.value, scanned_location_id=item.c.expected_location_id - 1
        )
    )
    conn.execute(
        update(item)
        .where(this, (item.c.id + shift) % 200 == 3)
        .values(state=AuditState.FOUND.value)
    )
    conn.execute(
        update(item)
        .where(this, (item.c.id + shift) % 100 == 7)
        .values(screen_intact=False, case_on=True, damaged=True, condition_at=at)
    )
    conn.execute(
        update(item)
        .where(this, (item.c.id + shift) % 50 == 1)
        .values(
            state=AuditState.MISSING.value,
            scanned_location_id=None,
            scanned_at=None,
            first_scanned_at=None,
            scanned_by_id=None,
            scan_count=0,
            damaged=False,
            screen_intact=None,
            case_on=None,
        )
    )


def seed(engine: Engine, devices: int, places: int) -> Seeded:
    started = time.perf_counter()
    rng = random.Random(2026)
    with Session(engine) as session:
        school = create_school(session, slug="benchmark", name="Benchmark Primary")
        for term in uk_default_terms(date(2025, 10, 1)):
            term.school_id = school.id
            session.add(term)
        session.flush()
        lead = create_user(
            session,
            actor=None,
            school=school,
            email="lead@benchmark.example",
            name="Computing Lead",
            role=Role.COMPUTING_LEAD,
            password="long-password-1",
        )
        session.commit()
        school_id, lead_id = school.id, lead.id
        terms = {t.name: t.id for t in session.scalars(select(Term))}
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {
                    "school_id": school_id,
                    "email": f"staff{n}@benchmark.example",
                    "name": f"Teacher {n}",
                    "role": Role.TEACHER,
                    "password_hash": "x",
                    "active": True,
                    "session_nonce": f"{n:032d}",
                    "created_at": NOW,
                }
                for n in range(300)
            ],
        )
        storage = _places(conn, school_id, places)
        staff = list(conn.scalars(select(User.id).where(User.school_id == school_id)))
    statuses = [DeviceStatus.IN_SERVICE] * 95 + [
        DeviceStatus.IN_STOCK,
        DeviceStatus.IN_REPAIR,
        DeviceStatus.LOST,
        DeviceStatus.STOLEN,
        DeviceStatus.DISPOSED,
    ]
    batch: list[dict[str, Any]] = []
    for n in range(devices):
        home = storage[rng.randrange(len(storage))]
        silent = rng.random() < 0.03
        batch.append(
            {
                "school_id": school_id,
                "asset_tag": f"BEN-{n:06d}",
                "serial": f"SER{n:09d}",
                "platform": Platform.IPADOS,
                "make": "Apple",
                "model": "iPad (10th generation)",
                "status": rng.choice(statuses),
                "home_location_id": home,
                "current_location_id": home,
                "holder_id": rng.choice(staff) if rng.random() < 0.05 else None,
                "last_seen_at": NOW - timedelta(days=40 if silent else rng.random()),
                "photo_count": rng.choice([1, 3, 12]) if rng.random() < 0.05 else 0,
                "photo_count_at": NOW - timedelta(hours=rng.randrange(1, 300)),
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
        if len(batch) == 10_000:
            with engine.begin() as conn:
                conn.execute(insert(Device), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(Device), batch)
    say(f"seeded {devices:,} devices over {places:,} places")

    def audit(term: str, at: datetime, shift: int) -> tuple[int, float]:
        with Session(engine, expire_on_commit=False) as session:
            actor = session.get(User, lead_id)
            assert actor is not None
            started_audit = services.start_audit(session, actor, term_id=terms[term], now=at)
            audit_id = started_audit.id
        with engine.begin() as conn:
            _results(conn, audit_id, lead_id, at, shift)
            conn.execute(
                insert(AuditUnknownTag),
                [
                    {
                        "school_id": school_id,
                        "audit_id": audit_id,
                        "tag": f"UNKNOWN-{n:03d}",
                        "location_id": storage[n],
                        "first_scanned_at": at,
                        "scanned_at": at,
                        "scanned_by_id": lead_id,
                        "scan_count": 1,
                    }
                    for n in range(40)
                ],
            )
        signing = time.perf_counter()
        with Session(engine, expire_on_commit=False) as session:
            actor = session.get(User, lead_id)
            assert actor is not None
            services.close_audit(session, actor, audit_id, now=at + timedelta(hours=2))
        return audit_id, time.perf_counter() - signing

    # Last term's audit first (the report compares with it), then this term's: the one measured.
    audit("Autumn 2025/26", PREVIOUS, 13)
    current, sign_off = audit("Spring 2025/26", NOW, 0)
    return Seeded(school_id, current, time.perf_counter() - started, sign_off)


def measure(
    engine: Engine, runs: int, seeded: Seeded
) -> tuple[list[float], list[float], int, float]:
    """Interleaved: the service's report, then the bare GROUP BY, each in a fresh session."""
    item = AuditItem.__table__
    baseline = (
        select(item.c.expected_location_id, item.c.state, func.count())
        .where(item.c.audit_id == seeded.audit_id)
        .group_by(item.c.expected_location_id, item.c.state)
    )
    report_times, base_times, rows = [], [], 0
    for n in range(runs + 2):
        with Session(engine) as session:
            start = time.perf_counter()
            got = services.report(session, seeded.school_id, seeded.audit_id)
            took = time.perf_counter() - start
        with engine.connect() as conn:
            start = time.perf_counter()
            rows = len(conn.execute(baseline).all())
            base = time.perf_counter() - start
        if n >= 2:  # the first runs warm the caches on both sides
            report_times.append(took)
            base_times.append(base)
    assert got.totals.expected > 0 and got.previous is not None
    with Session(engine) as session:
        start = time.perf_counter()
        services.report_csv(session, seeded.school_id, seeded.audit_id)
        csv_seconds = time.perf_counter() - start
    return report_times, base_times, rows, csv_seconds


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'audit.db'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(
    database: Callable[[], Any], devices: int, places: int, runs: int
) -> dict[str, float | int]:
    with database() as url:
        writer = make_engine(url)
        migrate(writer)
        seeded = seed(writer, devices, places)
        writer.dispose()
        engine = make_engine(url, immediate=False)
        if engine.dialect.name == "postgresql":
            # What autovacuum does after a bulk load: statistics and the visibility map.
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        report_times, base_times, rows, csv_seconds = measure(engine, runs, seeded)
        engine.dispose()
    return {
        "report_p50_ms": median(report_times) * 1000,
        "report_p99_ms": percentile(report_times, 99) * 1000,
        "baseline_p50_ms": median(base_times) * 1000,
        "baseline_p99_ms": percentile(base_times, 99) * 1000,
        "ratio": median(report_times) / median(base_times),
        "baseline_rows": rows,
        "sign_off_ms": seeded.sign_off_seconds * 1000,
        "csv_ms": csv_seconds * 1000,
        "seed_seconds": seeded.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--places", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    args = parser.parse_args(argv)
    sqlite = run(sqlite_database, args.devices, args.places, args.runs)
    details: dict[str, Any] = {
        "devices": args.devices,
        "places": args.places,
        "runs": args.runs,
        "sqlite": {k: round(v, 3) for k, v in sqlite.items()},
    }
    pg = None
    if args.postgres:
        pg = run(postgres_database, args.devices, args.places, args.runs)
        details["postgresql"] = {k: round(v, 3) for k, v in pg.items()}
    measured = [("SQLite", sqlite), ("PostgreSQL", pg)]
    within = True
    for name, numbers in measured:
        if numbers is None:
            continue
        write_result(
            "audit" if name == "SQLite" else "audit_postgresql",
            value=float(numbers["report_p50_ms"]),
            unit=f"ms (p50, {name})",
            baseline=float(numbers["baseline_p50_ms"]),
            ratio=float(numbers["ratio"]),
            target=f"≤ {TARGET_RATIO:g}× one GROUP BY and < {TARGET_SECONDS:g} s",
            details=details,
        )
        within = within and (
            float(numbers["ratio"]) <= TARGET_RATIO
            and float(numbers["report_p50_ms"]) / 1000 < TARGET_SECONDS
        )
    for name, numbers in measured:
        if numbers is None:
            continue
        print(
            f"  {name}: report {numbers['report_p50_ms']:.1f} ms p50 "
            f"({numbers['report_p99_ms']:.1f} p99) vs one GROUP BY "
            f"{numbers['baseline_p50_ms']:.1f} ms: {numbers['ratio']:.2f}×; sign-off "
            f"{numbers['sign_off_ms']:.0f} ms; CSV of every device {numbers['csv_ms']:.0f} ms"
        )
    print(f"  {args.devices:,} devices over {args.places:,} places; within target: {within}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
