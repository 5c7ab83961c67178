"""Spreadsheet import rate: a 10,000-row CSV into a fresh SQLite register, against a bare insert.

The service is `server.imports.services.import_file`, timed from the file's bytes to the commit:
decode, guess the columns, check every row against the register, write devices and their
timeline events, record the activity entry. The baseline, measured in the same run on its own
fresh database, is a bare SQLAlchemy Core `executemany` INSERT of the same devices, already typed
(no reading, no checking, no events). Prints the ratio first, then rows/s for both, and writes
bench/results/import.json.

    .venv/bin/python bench/bench_import.py [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

# Run as a script (bench/bench_import.py), the repository root is not on the path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.imports.services import import_file
from server.schools.models import LocationKind
from server.schools.services import add_location, create_school

RESULTS = Path(__file__).resolve().parent / "results" / "import.json"
# Reading, checking and writing events too may cost this many times the bare insert.
TARGET_RATIO = 10.0
ROOMS = [f"Room {n}" for n in range(1, 41)]
MODELS = [
    (Platform.IPADOS, "Apple", "iPad (9th generation)", 32900),
    (Platform.IPADOS, "Apple", "iPad (10th generation)", 34900),
    (Platform.CHROMEOS, "Lenovo", "300e Chromebook Gen 3", 26500),
    (Platform.CHROMEOS, "Acer", "Chromebook Spin 511", 29900),
]
HEADINGS = [
    "Asset No.",
    "Serial Number",
    "Make/Model",
    "Purchase Date",
    "Cost (£)",
    "Room",
    "Supplier",
    "Warranty",
    "Notes",
]


@dataclass(frozen=True)
class Row:
    tag: str
    serial: str
    model: int
    bought: date
    room: int


def generate(rows: int) -> list[Row]:
    rng = random.Random(2026)
    alphabet = "BCDFGHJKLMNPQRTVWXYZ0123456789"
    return [
        Row(
            tag=f"IMP-{n:06d}",
            serial="".join(rng.choice(alphabet) for _ in range(6)) + f"{n:06d}",
            model=n % len(MODELS),
            bought=date(2019, 9, 1) + timedelta(days=rng.randrange(5 * 365)),
            room=rng.randrange(len(ROOMS)),
        )
        for n in range(rows)
    ]


def as_csv(devices: list[Row]) -> bytes:
    """The SBM's spreadsheet, as Excel saves "CSV (Comma delimited)" (Windows-1252)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(HEADINGS)
    for d in devices:
        _, make, model, cost = MODELS[d.model]
        writer.writerow(
            [
                d.tag,
                d.serial,
                f"{make} {model}",
                d.bought.strftime("%d/%m/%Y"),
                f"£{cost / 100:,.2f}",
                ROOMS[d.room],
                "XMA Ltd",
                (d.bought + timedelta(days=3 * 365)).strftime("%-d %b %Y"),
                "",
            ]
        )
    return buffer.getvalue().encode("cp1252")


def fresh_school(folder: Path, name: str) -> tuple[Engine, int, list[int]]:
    """A migrated SQLite file with one school, a site, a building and 40 rooms."""
    engine = make_engine(f"sqlite:///{folder / name}")
    migrate(engine)
    with Session(engine) as session:
        school = create_school(session, slug="benchmark", name="Benchmark Primary")
        site = add_location(
            session, actor=None, school_id=school.id, kind=LocationKind.SITE, name="Site"
        )
        building = add_location(
            session,
            actor=None,
            school_id=school.id,
            kind=LocationKind.BUILDING,
            name="Main building",
            parent=site,
        )
        rooms = [
            add_location(
                session,
                actor=None,
                school_id=school.id,
                kind=LocationKind.ROOM,
                name=room,
                parent=building,
            ).id
            for room in ROOMS
        ]
        session.commit()
        return engine, school.id, rooms


def time_service(folder: Path, data: bytes, rows: int) -> tuple[float, float]:
    """Seconds for the import into an empty register, and for importing it again unchanged."""
    engine, school_id, _rooms = fresh_school(folder, "service.db")
    try:
        with Session(engine) as session:
            started = time.perf_counter()
            plan, result = import_file(session, school_id, data, actor=None, filename="bench.csv")
            first = time.perf_counter() - started
        if result is None or result.created != rows:
            raise SystemExit(f"the import did not import every row: {plan.problems[:5]}")
        with Session(engine) as session:
            started = time.perf_counter()
            _plan, again = import_file(session, school_id, data, actor=None, filename="bench.csv")
            second = time.perf_counter() - started
        if again is None or again.unchanged != rows:
            raise SystemExit("re-importing the same file changed something")
        return first, second
    finally:
        engine.dispose()


def time_baseline(folder: Path, devices: list[Row]) -> float:
    """Seconds for one Core executemany INSERT of the same devices, typed, then commit."""
    engine, school_id, rooms = fresh_school(folder, "baseline.db")
    now = datetime.now(UTC)
    values: list[dict[str, Any]] = []
    for d in devices:
        platform, make, model, cost = MODELS[d.model]
        values.append(
            {
                "school_id": school_id,
                "asset_tag": d.tag,
                "serial": d.serial,
                "platform": platform,
                "make": make,
                "model": model,
                "status": DeviceStatus.IN_SERVICE,
                "home_location_id": rooms[d.room],
                "current_location_id": rooms[d.room],
                "purchase_date": d.bought,
                "purchase_cost_pence": cost,
                "supplier": "XMA Ltd",
                "warranty_until": d.bought + timedelta(days=3 * 365),
                "created_at": now,
                "updated_at": now,
            }
        )
    try:
        with engine.connect() as conn:
            started = time.perf_counter()
            conn.execute(insert(Device.__table__), values)
            conn.commit()
            seconds = time.perf_counter() - started
            inserted = conn.scalar(select(func.count()).select_from(Device.__table__))
        if inserted != len(devices):
            raise SystemExit(f"the baseline inserted {inserted} rows")
        return seconds
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="fresh databases per side")
    args = parser.parse_args(argv)
    devices = generate(args.rows)
    data = as_csv(devices)
    service: list[float] = []
    reimport: list[float] = []
    baseline: list[float] = []
    for _ in range(args.repeat):
        # Alternate the two sides so drift on the machine hits both alike.
        with tempfile.TemporaryDirectory() as tmp:
            first, second = time_service(Path(tmp), data, args.rows)
            service.append(first)
            reimport.append(second)
        with tempfile.TemporaryDirectory() as tmp:
            baseline.append(time_baseline(Path(tmp), devices))
    service_rate = args.rows / statistics.median(service)
    baseline_rate = args.rows / statistics.median(baseline)
    reimport_rate = args.rows / statistics.median(reimport)
    ratio = baseline_rate / service_rate

    print(f"ratio {ratio:.2f}× (bare insert ÷ import, rows/s; target ≤ {TARGET_RATIO:.0f}×)")
    print(f"import of a {args.rows:,}-row CSV:    {service_rate:10,.0f} rows/s")
    print(f"bare executemany INSERT:         {baseline_rate:10,.0f} rows/s")
    print(f"re-import, every row unchanged:  {reimport_rate:10,.0f} rows/s")
    print(f"(medians of {args.repeat} runs, each on a fresh database)")
    print(f"file size: {len(data) / 1024:,.0f} KB")

    result = {
        "name": f"CSV import of {args.rows:,} rows into SQLite",
        "value": round(service_rate, 1),
        "unit": "rows/s",
        "baseline": round(baseline_rate, 1),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "machine": machine(),
        "details": {
            "rows": args.rows,
            "repeat": args.repeat,
            "service_seconds": [round(s, 4) for s in service],
            "baseline_seconds": [round(s, 4) for s in baseline],
            "reimport_rows_per_second": round(reimport_rate, 1),
            "file_bytes": len(data),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(RESULTS.parent.parent.parent)}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
