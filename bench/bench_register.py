"""Register search at 100,000 devices: server time of `search_devices` against a bare select.

Seeds a fresh SQLite file (100,000 devices over 3,000 places, Core executemany), then times four
searches - the first page unfiltered, a text search, a home-location filter and a warranty filter
- each against a baseline measured in the same run: a bare Core select of the same page of rows
(same WHERE, ORDER BY and LIMIT; no ORM, no count). The service and the baseline run interleaved
so that noise on the machine hits both. Prints the ratios first, then the numbers, and writes
bench/results/register.json.

    .venv/bin/python bench/bench_register.py [--devices N] [--places N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import ColumnElement, Engine, insert, or_, select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.devices.services import search_devices
from server.schools.models import Location, LocationKind
from server.schools.services import create_school

RESULTS = Path(__file__).parent / "results" / "register.json"
TODAY = date(2026, 3, 2)  # fixed, so every run filters the same rows
PER_PAGE = 50
# The service pays fixed costs per page that the bare select does not: building 50 devices with
# their places and holder (about 1 ms) and counting up to COUNT_LIMIT matches (about 1 ms).
# Against a 0.3 ms index read that is 5-10x; an unindexed sort, a join before the sort or a
# count of every row made it 20-400x, which is what this target catches. Judged on the p50.
TARGET_RATIO = 10.0

MODELS = [
    (Platform.IPADOS, "Apple", "iPad (9th generation)"),
    (Platform.IPADOS, "Apple", "iPad (10th generation)"),
    (Platform.IPADOS, "Apple", "iPad Air (5th generation)"),
    (Platform.IPADOS, "Apple", "iPad mini (6th generation)"),
    (Platform.CHROMEOS, "Lenovo", "300e Chromebook Gen 3"),
    (Platform.CHROMEOS, "Acer", "Chromebook Spin 511"),
    (Platform.LINUX, "Raspberry Pi", "Raspberry Pi 400"),
]


@dataclass(frozen=True)
class Seeded:
    school_id: int
    trolley_id: int
    seconds: float


def seed(engine: Engine, devices: int, places: int) -> Seeded:
    """One school: 300 staff, `places` places (sites › buildings › rooms › storage), devices."""
    started = time.perf_counter()
    rng = random.Random(2026)
    with Session(engine) as session:
        school = create_school(session, slug="benchmark", name="Benchmark Primary")
        session.commit()
        school_id = school.id
    now = datetime.now(UTC)
    first_names = ["Amira", "Tom", "Sue", "Helen", "Raj", "Peter", "Ola", "Ben", "Chloe", "Dev"]
    surnames = ["Khan", "Price", "Marsh", "Ward", "Patel", "Lowe", "Smith", "Jones", "Brown"]
    users = [
        {
            "school_id": school_id,
            "email": f"staff{n}@benchmark.example",
            "name": f"{rng.choice(first_names)} {rng.choice(surnames)} {n}",
            "role": Role.TEACHER,
            "password_hash": "x",
            "active": True,
            "session_nonce": f"{n:032d}",
            "created_at": now,
        }
        for n in range(300)
    ]
    # Sites › buildings › rooms › trolleys, safes and cupboards, with explicit ids.
    sites, buildings, rooms = 5, 25, 500
    storage = places - sites - buildings - rooms
    rows: list[dict[str, Any]] = []
    next_id = iter(range(1, places + 1))

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
    storage_ids = [
        place(kinds[n % 3], f"{kinds[n % 3].value.title()} {n}", room_ids[n % rooms], 200)
        for n in range(storage)
    ]
    with engine.begin() as conn:
        conn.execute(insert(User), users)
        conn.execute(insert(Location), rows)
        user_ids = list(conn.scalars(select(User.id).where(User.school_id == school_id)).all())
    statuses = [DeviceStatus.IN_SERVICE] * 90 + [
        DeviceStatus.IN_STOCK,
        DeviceStatus.IN_STOCK,
        DeviceStatus.IN_REPAIR,
        DeviceStatus.IN_REPAIR,
        DeviceStatus.LOST,
        DeviceStatus.STOLEN,
        DeviceStatus.DISPOSED,
        DeviceStatus.DISPOSED,
        DeviceStatus.DISPOSED,
        DeviceStatus.DISPOSED,
    ]
    slots: dict[int, int] = {}
    alphabet = string.ascii_uppercase + string.digits
    batch: list[dict[str, Any]] = []
    for n in range(devices):
        plat, make, model = MODELS[n % len(MODELS)]
        home = storage_ids[rng.randrange(len(storage_ids))]
        slot = slots.get(home, 0) + 1
        slots[home] = slot
        bought = date(2019, 9, 1) + timedelta(days=rng.randrange(6 * 365))
        status = rng.choice(statuses)
        batch.append(
            {
                "school_id": school_id,
                "asset_tag": f"BEN-{n:06d}",
                "serial": "".join(rng.choice(alphabet) for _ in range(12)) + f"{n:06d}",
                "platform": plat,
                "make": make,
                "model": model,
                "status": status,
                "home_location_id": home,
                "home_slot": slot if slot <= 200 and status is not DeviceStatus.DISPOSED else None,
                "current_location_id": home,
                "holder_id": rng.choice(user_ids) if rng.random() < 0.05 else None,
                "purchase_date": bought,
                "purchase_cost_pence": rng.choice([26500, 32900, 34900, 47900]),
                "warranty_until": bought + timedelta(days=3 * 365),
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(batch) == 10_000:
            with engine.begin() as conn:
                conn.execute(insert(Device), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(Device), batch)
    busiest = max(slots, key=lambda k: slots[k])
    return Seeded(school_id, busiest, time.perf_counter() - started)


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def bare_page(school_id: int, *where: ColumnElement[bool]) -> sqlalchemy.Select[Any]:
    """The baseline: the same page of device rows, written by hand in Core."""
    d = Device.__table__
    return (
        select(d)
        .where(d.c.school_id == school_id, d.c.status != DeviceStatus.DISPOSED, *where)
        .order_by(d.c.asset_tag)
        .limit(PER_PAGE)
    )


def text_condition(school_id: int, q: str) -> ColumnElement[bool]:
    """A bare text search: LIKE over the device's own columns and its holder (SQLite's LIKE
    already ignores case), reading every device; the service uses its word index instead."""
    d, u = Device.__table__, User.__table__
    like = _like(q)
    holders = select(u.c.id).where(
        u.c.school_id == school_id,
        or_(u.c.name.like(like, escape="\\"), u.c.email.like(like, escape="\\")),
    )
    return or_(
        d.c.asset_tag.like(like, escape="\\"),
        d.c.serial.like(like, escape="\\"),
        d.c.model.like(like, escape="\\"),
        d.c.holder_id.in_(holders),
    )


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def measure(
    engine: Engine, runs: int, service: Callable[[Session], Any], baseline: sqlalchemy.Select[Any]
) -> dict[str, float]:
    """Interleave service and baseline runs (after a warm-up) so drift hits both alike."""
    service_ms: list[float] = []
    bare_ms: list[float] = []
    rows_service = rows_bare = 0
    for i in range(runs + 5):
        with Session(engine) as session:
            t0 = time.perf_counter()
            page = service(session)
            t1 = time.perf_counter()
            rows_service = len(page.items)
        with engine.connect() as conn:
            t2 = time.perf_counter()
            rows = conn.execute(baseline).all()
            t3 = time.perf_counter()
            rows_bare = len(rows)
        if i >= 5:
            service_ms.append((t1 - t0) * 1000)
            bare_ms.append((t3 - t2) * 1000)
    if rows_service != rows_bare:
        raise SystemExit(f"the baseline returned {rows_bare} rows, the service {rows_service}")
    p50, p99 = _percentiles(service_ms)
    b50, b99 = _percentiles(bare_ms)
    return {"p50": p50, "p99": p99, "base_p50": b50, "base_p99": b99, "rows": rows_service}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "system": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--places", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'register.db'}"
        writer = make_engine(url)
        migrate(writer)
        seeded = seed(writer, args.devices, args.places)
        writer.dispose()
        engine = make_engine(url, immediate=False)
        sid = seeded.school_id
        d = Device.__table__
        q = "0421"
        cases: list[tuple[str, Callable[[Session], Any], sqlalchemy.Select[Any]]] = [
            (
                "first page, no filter",
                lambda s: search_devices(s, sid, per_page=PER_PAGE),
                bare_page(sid),
            ),
            (
                f"text search {q!r}",
                lambda s: search_devices(s, sid, q=q, per_page=PER_PAGE),
                bare_page(sid, text_condition(sid, q)),
            ),
            (
                "home location filter",
                lambda s: search_devices(
                    s, sid, home_location_id=seeded.trolley_id, per_page=PER_PAGE
                ),
                bare_page(sid, d.c.home_location_id == seeded.trolley_id),
            ),
            (
                "warranty ends within 90 days",
                lambda s: search_devices(
                    s, sid, warranty_within_days=90, today=TODAY, per_page=PER_PAGE
                ),
                bare_page(
                    sid,
                    d.c.warranty_until >= TODAY,
                    d.c.warranty_until <= TODAY + timedelta(days=90),
                ),
            ),
        ]
        results = []
        for name, service, baseline in cases:
            m = measure(engine, args.runs, service, baseline)
            results.append((name, m))
        engine.dispose()

    print(f"ratio: service ÷ bare select of the same page (p50, p99); target p50 ≤ {TARGET_RATIO}×")
    for name, m in results:
        ratio, ratio99 = m["p50"] / m["base_p50"], m["p99"] / m["base_p99"]
        flag = "" if ratio <= TARGET_RATIO else "  OVER TARGET"
        print(f"  {name:<32}{ratio:7.2f}×{ratio99:8.2f}×{flag}")
    print(
        f"\n{args.devices:,} devices over {args.places:,} places, seeded in {seeded.seconds:.1f} s"
    )
    print(f"  {'ms':<32}{'p50':>8}{'p99':>9}{'bare p50':>10}{'p99':>9}  rows")
    for name, m in results:
        print(
            f"  {name:<32}{m['p50']:8.2f}{m['p99']:9.2f}{m['base_p50']:10.2f}"
            f"{m['base_p99']:9.2f}  {m['rows']}"
        )

    info = machine()
    entries: list[dict[str, Any]] = [
        {
            "name": f"register search: {name}",
            "value": round(m["p50"], 3),
            "unit": "ms (p50)",
            "p99": round(m["p99"], 3),
            "baseline": round(m["base_p50"], 3),
            "baseline_p99": round(m["base_p99"], 3),
            "ratio": round(m["p50"] / m["base_p50"], 3),
            "ratio_p99": round(m["p99"] / m["base_p99"], 3),
            "target": TARGET_RATIO,
            "machine": info,
        }
        for name, m in results
    ]
    worst = max(entries, key=lambda e: float(e["ratio"]))
    document = {
        **worst,
        "name": f"register search at {args.devices:,} devices (worst case: {worst['name']})",
        "cases": entries,
        "devices": args.devices,
        "places": args.places,
        "runs": args.runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(Path(__file__).parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
