"""Trolley scans at 100,000 devices: check-out and return throughput through the real WSGI stack.

Seeds a fresh database (SQLite by default, or PostgreSQL with --postgres) with 100,000 enrolled
devices in trolleys of 30 (Core executemany), then serves the app with gunicorn (the same
settings as `trolley serve`) and drives it over HTTP from several client threads, each a teacher
with an API token working through their own trolleys. Three kinds of request alternate in rounds
so that noise on the machine hits all of them:

- check-out: POST /api/v1/scans {mode: out}: one device out of its trolley (the page's call);
- return:    POST /api/v1/scans {mode: in}: the same device back, which queues its photo wipe
  (with --own-trolley, naming no trolley, as the scan page does unless one is scanned or chosen:
  the device goes back into its own);
- baseline:  POST /api/v1/bench/touch: an endpoint that exists only in this benchmark's server
  process. It goes through the same stack (gunicorn, Flask, token authentication, the JSON
  body check, a writing session) and updates one indexed row, and nothing else.

Prints the ratio first (the slower of check-out and return against the baseline; the aim is at
least 0.5), then throughput and p50/p99 latency, and writes bench/results/loans.json.

    .venv/bin/python bench/bench_loans.py [--devices N] [--clients N] [--rounds N] [--per-round N]
                                          [--own-trolley]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.orm import Session

from server.auth.models import Role
from server.auth.services import create_user, issue_token
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.enrolment.models import DeviceIdentity
from server.schools.models import Location, LocationKind
from server.schools.services import add_location, create_school

RESULTS = Path(__file__).parent / "results" / "loans.json"
TARGET_RATIO = 0.5
PER_TROLLEY = 30
POSTGRES = "postgresql+psycopg://127.0.0.1:5432/test"


# --- the server process ----------------------------------------------------------------------


def serve(url: str, port: int, workers: int, threads: int, instance: str) -> None:
    """Run gunicorn on the app, with the baseline endpoint added in this process only."""
    from gunicorn.app.base import BaseApplication
    from pydantic import BaseModel, ConfigDict, Field
    from sqlalchemy import update

    from server.auth.permissions import Permission
    from server.db import utcnow
    from server.extensions import db_session
    from server.openapi import endpoint

    class TouchIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        device: int = Field(ge=1)

    class Touched(BaseModel):
        ok: bool

    # Registered on the API blueprint before create_app attaches it: this process only.
    @endpoint(
        "/bench/touch",
        "POST",
        permission=Permission.LOANS_USE,
        summary="Benchmark baseline: update one indexed row",
        tag="bench",
        body=TouchIn,
        response=Touched,
    )
    def bench_touch(body: TouchIn) -> Touched:
        session = db_session()
        session.execute(update(Device).where(Device.id == body.device).values(updated_at=utcnow()))
        session.commit()
        return Touched(ok=True)

    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "TROLLEY_DATABASE_URL": url,
            "TROLLEY_INSTANCE_DIR": instance,
            "TROLLEY_SECRET_KEY": secrets.token_urlsafe(48),
            "TROLLEY_DATA_KEYS": Fernet.generate_key().decode(),
        }
    )

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": f"127.0.0.1:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "timeout": 120,
                "keepalive": 60,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from server import create_app

            return create_app()

    Server().run()


# --- seeding ---------------------------------------------------------------------------------


@dataclass
class Teacher:
    name: str
    token: str
    trolleys: list[tuple[int, list[tuple[int, str]]]]  # (trolley id, [(device id, tag)])


def seed(engine: Engine, devices: int, clients: int) -> tuple[list[Teacher], float]:
    """One school: rooms, trolleys of 30 and `devices` enrolled iPads; a token per teacher."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    with Session(engine) as session:
        school = create_school(session, slug="loans-bench", name="Benchmark Primary")
        room = add_location(
            session, actor=None, school_id=school.id, kind=LocationKind.ROOM, name="Hall"
        )
        teachers = []
        for n in range(clients):
            user = create_user(
                session,
                actor=None,
                school=school,
                email=f"teacher{n}@bench.example",
                name=f"Teacher {n}",
                role=Role.TEACHER,
                password="long-password-1",
            )
            _token, plain = issue_token(session, user, "benchmark")
            teachers.append((user.name, plain))
        session.commit()
        school_id, room_id = school.id, room.id
    trolleys = -(-devices // PER_TROLLEY)
    with engine.begin() as conn:
        first = conn.scalar(select(sqlalchemy.func.coalesce(sqlalchemy.func.max(Location.id), 0)))
        conn.execute(
            insert(Location),
            [
                {
                    "id": first + 1 + n,
                    "school_id": school_id,
                    "parent_id": room_id,
                    "kind": LocationKind.TROLLEY,
                    "name": f"Trolley {n:04d}",
                    "capacity": PER_TROLLEY,
                    "created_at": now,
                }
                for n in range(trolleys)
            ],
        )
    rows: list[dict[str, Any]] = []
    for n in range(devices):
        rows.append(
            {
                "school_id": school_id,
                "asset_tag": f"BEN-{n:06d}",
                "serial": f"BS{n:010d}",
                "platform": Platform.IPADOS,
                "make": "Apple",
                "model": "iPad (10th generation)",
                "status": DeviceStatus.IN_SERVICE,
                "home_location_id": first + 1 + n // PER_TROLLEY,
                "home_slot": n % PER_TROLLEY + 1,
                "current_location_id": first + 1 + n // PER_TROLLEY,
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(rows) == 10_000 or n == devices - 1:
            with engine.begin() as conn:
                conn.execute(insert(Device), rows)
            rows = []
    with engine.begin() as conn:
        ids = conn.execute(
            select(Device.id, Device.asset_tag, Device.home_location_id)
            .where(Device.school_id == school_id)
            .order_by(Device.id)
        ).all()
        for start in range(0, len(ids), 10_000):
            conn.execute(
                insert(DeviceIdentity),
                [
                    {
                        "school_id": school_id,
                        "device_id": ident,
                        "mqtt_id": f"dev-{ident:016x}",
                        "public_key": "0" * 43,
                        "kid": "0" * 16,
                        "broker_secret_hash": "x",
                        "platform": "ipados",
                        "enrolled_at": now,
                        "online": False,
                        "last_seq": 0,
                    }
                    for ident, _tag, _home in ids[start : start + 10_000]
                ],
            )
    by_trolley: dict[int, list[tuple[int, str]]] = {}
    for ident, tag, home in ids:
        by_trolley.setdefault(home, []).append((ident, tag))
    # Each teacher works through trolleys of their own, spread over the whole fleet.
    order = sorted(by_trolley)
    people = [Teacher(name, plain, []) for name, plain in teachers]
    for n, trolley in enumerate(order):
        people[n % clients].trolleys.append((trolley, by_trolley[trolley]))
    return people, time.perf_counter() - started


# --- the load --------------------------------------------------------------------------------


@dataclass
class Phase:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


class Client:
    """One teacher at a trolley: a keep-alive HTTP connection and the next devices to scan."""

    def __init__(self, port: int, teacher: Teacher) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {
            "Authorization": f"Bearer {teacher.token}",
            "Content-Type": "application/json",
        }
        self.devices = [
            (trolley, ident, tag) for trolley, items in teacher.trolleys for ident, tag in items
        ]
        self.cursor = 0

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, float]:
        payload = json.dumps(body)
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.connection.request("POST", path, body=payload, headers=self.headers)
                response = self.connection.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException):
                # The server closed an idle keep-alive connection: reconnect and send again
                # (safe: a scan's idempotency key stops it being recorded twice).
                self.connection.close()
                if attempt == 2:
                    raise
        return response.status, time.perf_counter() - started

    def batch(self, size: int) -> list[tuple[int, int, str]]:
        chosen = self.devices[self.cursor : self.cursor + size]
        self.cursor += size
        if len(chosen) < size:
            raise SystemExit("not enough devices for that many rounds; use --devices or fewer")
        return chosen


def run_phase(clients: list[Client], work: list[list[tuple[str, dict[str, Any]]]]) -> Phase:
    """Every client sends its requests back to back; the phase lasts until the last is answered."""
    phase = Phase()
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients) + 1)

    def go(client: Client, requests: list[tuple[str, dict[str, Any]]]) -> None:
        barrier.wait()
        mine, bad = [], 0
        for path, body in requests:
            status, seconds = client.post(path, body)
            mine.append(seconds)
            bad += status != 200
        with lock:
            phase.latencies.extend(mine)
            phase.errors += bad

    threads = [
        threading.Thread(target=go, args=(client, requests))
        for client, requests in zip(clients, work, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    return phase


def _scan(mode: str, trolley: int | None, tag: str) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"mode": mode, "code": tag, "idempotency_key": uuid.uuid4().hex}
    if trolley is not None:
        body["trolley"] = trolley
    if mode == "out":
        body["class_label"] = "Year 4 Oak"
    return "/api/v1/scans", body


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1m_at_start": load,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "system": platform.platform(),
    }


def _wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8, help="client threads (teachers)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=60, help="requests per client per phase")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL at 127.0.0.1:5432")
    parser.add_argument(
        "--own-trolley", action="store_true", help="returns name no trolley (the page's default)"
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("URL", "PORT", "INSTANCE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        url, port, instance = args.serve
        serve(url, int(port), args.workers, args.threads, instance)
        return 0

    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        admin: Engine | None = None
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        else:
            url = f"sqlite:///{Path(tmp) / 'loans.db'}"
        try:
            engine = make_engine(url)
            migrate(engine)
            teachers, seeded = seed(engine, args.devices, args.clients)
            engine.dispose()
            port = _free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--workers",
                    str(args.workers),
                    "--threads",
                    str(args.threads),
                    "--serve",
                    url,
                    str(port),
                    str(Path(tmp) / "instance"),
                ],
                cwd=Path(__file__).parent.parent,
            )
            try:
                _wait_for(port, server)
                results = drive(port, teachers, args.rounds, args.per_round, args.own_trolley)
            finally:
                server.terminate()
                server.wait(timeout=30)
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    report(results, args, seeded, info, "PostgreSQL" if args.postgres else "SQLite")
    return 0


def drive(
    port: int, teachers: list[Teacher], rounds: int, per: int, own_trolley: bool = False
) -> dict[str, Phase]:
    clients = [Client(port, t) for t in teachers]
    totals = {name: Phase() for name in ("baseline", "check-out", "return")}
    # A warm-up round settles connections, imports and caches; it is not counted.
    for counted in [False] + [True] * rounds:
        picked = [client.batch(per if counted else 5) for client in clients]
        steps = [
            (
                "baseline",
                [[("/api/v1/bench/touch", {"device": d}) for _t, d, _g in p] for p in picked],
            ),
            ("check-out", [[_scan("out", t, g) for t, _d, g in p] for p in picked]),
            (
                "baseline",
                [[("/api/v1/bench/touch", {"device": d}) for _t, d, _g in p] for p in picked],
            ),
            (
                "return",
                [[_scan("in", None if own_trolley else t, g) for t, _d, g in p] for p in picked],
            ),
        ]
        for name, work in steps:
            phase = run_phase(clients, work)
            if phase.errors:
                raise SystemExit(f"{phase.errors} {name} requests failed")
            if counted:
                totals[name].seconds += phase.seconds
                totals[name].latencies.extend(phase.latencies)
    return totals


def report(
    results: dict[str, Phase],
    args: argparse.Namespace,
    seeded: float,
    info: dict[str, Any],
    db: str,
) -> None:
    base = results["baseline"].throughput
    ratios = {name: results[name].throughput / base for name in ("check-out", "return")}
    worst = min(ratios, key=lambda k: ratios[k])
    ratio = ratios[worst]
    flag = "" if ratio >= TARGET_RATIO else "  BELOW TARGET"
    print(
        f"ratio: {ratio:.2f} ({worst} throughput ÷ one-row update baseline, same stack, "
        f"same run; target ≥ {TARGET_RATIO}){flag}"
    )
    for name in ("check-out", "return"):
        print(f"  {name:<10} {ratios[name]:.2f}")
    print(
        f"\n{args.devices:,} devices on {db}, seeded in {seeded:.1f} s; gunicorn "
        f"{args.workers}×{args.threads} threads; {args.clients} client threads; "
        f"{args.rounds} rounds × {args.per_round} requests per client per phase"
    )
    print(f"  {'':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}")
    for name in ("baseline", "check-out", "return"):
        phase = results[name]
        p50, p99 = _percentiles(phase.latencies)
        print(f"  {name:<10}{phase.throughput:9.1f}{p50:9.2f}{p99:9.2f}{phase.count:10d}")

    def numbers(phase: Phase) -> dict[str, float]:
        p50, p99 = _percentiles(phase.latencies)
        return {
            "throughput": round(phase.throughput, 1),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "requests": phase.count,
        }

    slower = results[worst]
    document = {
        "name": f"trolley scans at {args.devices:,} devices on {db} "
        f"(slower of check-out and return: {worst})",
        "value": round(slower.throughput, 1),
        "unit": "scans/s",
        "baseline": round(base, 1),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "machine": info,
        "details": {
            "database": db,
            "devices": args.devices,
            "clients": args.clients,
            "gunicorn": {"workers": args.workers, "threads": args.threads},
            "rounds": args.rounds,
            "per_round": args.per_round,
            "returns_name_a_trolley": not args.own_trolley,
            "seed_seconds": round(seeded, 1),
            "baseline_is": "POST /api/v1/bench/touch (benchmark process only): token auth, "
            "JSON body check, one UPDATE of devices by primary key, commit",
            "check_out": {**numbers(results["check-out"]), "ratio": round(ratios["check-out"], 3)},
            "return": {**numbers(results["return"]), "ratio": round(ratios["return"], 3)},
            "baseline": numbers(results["baseline"]),
        },
    }
    # One file per database, so `make bench` keeps both.
    path = RESULTS if db == "SQLite" else RESULTS.with_name(f"loans_{db.lower()}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(Path(__file__).parent.parent)}")


if __name__ == "__main__":
    sys.exit(main())
