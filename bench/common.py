"""Shared helpers for benchmarks: machine facts, percentiles and the result file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/meminfo") as handle:
            facts["memory_kb"] = int(handle.readline().split()[1])
    except OSError:
        pass
    return facts


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` calls."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def write_result(
    name: str,
    *,
    value: float,
    unit: str,
    baseline: float,
    ratio: float,
    target: str,
    details: dict[str, Any] | None = None,
) -> Path:
    """bench/results/<name>.json, and the ratio printed first."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "details": details or {},
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"ratio {ratio:.2f} ({target}) — {name}: {value:.4g} {unit} vs baseline {baseline:.4g}")
    return path


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


# --- a bench school and its broker, shared by the fan-out and server-cost measures -------------

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass(frozen=True)
class BenchSchool:
    """A school with a technician who asks and a headteacher who approves."""

    school_id: int
    tech_id: int
    head_id: int
    device_ids: list[int]


def bench_school(session: Any, box: Any, count: int, *, tag: str, model: str) -> BenchSchool:
    """The school, its two staff and `count` in-service Linux devices, flushed (not committed)."""
    from server.auth.models import Role
    from server.auth.services import create_user, new_totp_secret, set_security
    from server.devices.models import Device, DeviceStatus, Platform
    from server.schools.services import create_school

    school = create_school(session, slug="bench", name="Bench Primary")
    tech, head = (
        create_user(
            session,
            actor=None,
            school=school,
            email=f"{role.value}@bench.example",
            name=role.value,
            role=role,
            password="long-password-1",
        )
        for role in (Role.TECHNICIAN, Role.HEADTEACHER)
    )
    # The headteacher approves the wipe: a second factor, and no cooling-off in a bench.
    head.totp_secret_sealed = box.seal(new_totp_secret())
    set_security(session, None, school.id, approver_cooling_off_days=0)
    devices = [
        Device(
            school_id=school.id,
            asset_tag=f"{tag}-{n:05d}",
            serial=f"S{tag}{n:08d}",
            platform=Platform.LINUX,
            make="Bench",
            model=model,
            status=DeviceStatus.IN_SERVICE,
        )
        for n in range(count)
    ]
    session.add_all(devices)
    session.flush()
    return BenchSchool(school.id, tech.id, head.id, [d.id for d in devices])


def last_term(database: Any, bench: BenchSchool) -> None:
    """Move the commands of the last term a term back, before a round's clock starts.

    The fleet budget counts the last day (a second whole-school wipe within it is refused);
    the table keeps every row, as a school's does, so each round runs against the history
    before it. Rows moved once stay put: a school's history is not rewritten each day, and
    rewriting it left every index of `commands` a dead entry per row, round after round.
    """
    from datetime import timedelta

    from sqlalchemy import select, update

    from server.commands.models import Command
    from server.db import utcnow

    term = timedelta(days=91)
    moved = ("created_at", "approved_at", "expires_at", "sent_at", "received_at", "finished_at")
    with database.begin() as session:
        rows = session.execute(
            select(Command.id, *(getattr(Command, name) for name in moved)).where(
                Command.school_id == bench.school_id, Command.created_at > utcnow() - term
            )
        ).all()
        if rows:
            session.execute(
                update(Command),
                [
                    {"id": row[0]}
                    | {
                        name: None if when is None else when - term
                        for name, when in zip(moved, row[1:], strict=True)
                    }
                    for row in rows
                ],
            )


def wipe_every_device(database: Any, bench: BenchSchool) -> str:
    """Ask for a photo wipe of every device and approve it, as the web does; the batch id."""
    from sqlalchemy import select

    from server.auth.models import User
    from server.commands import services as commands
    from server.db import utcnow
    from server.devices.models import Device

    # Two transactions, as two people's requests are: the approval loads the batch afresh.
    with database.begin() as session:
        tech = session.get(User, bench.tech_id)
        assert tech is not None
        rows = list(session.scalars(select(Device).where(Device.school_id == bench.school_id)))
        issued = commands.issue(session, tech, rows, "wipe_photos", reason="bench")
        batch = issued[0].batch_id
        assert batch is not None
    with database.begin() as session:
        head = session.get(User, bench.head_id)
        assert head is not None
        commands.approve(session, head, batch_id=batch, stepped_up_at=utcnow())
    return batch


def wait_batch_done(database: Any, batch: str, count: int, timeout: float = 900) -> None:
    """Poll until every command of the batch is recorded `done`.

    Each look asks whether any of the batch is still on its way, through the index on status
    and creation time (a batch is created at one instant, and a bench's database holds nothing
    else created then), which reads just the commands still in flight. Counting the batch's
    `done` rows instead read all of them, 3 ms of PostgreSQL a look at 10,000 devices, and with
    a look every 1% of the time so far that was a twentieth of the machine's work in a round,
    taken from what it timed.
    """
    from sqlalchemy import func, select

    from server.commands.models import FINISHED, Command, CommandStatus

    with database.session(write=False) as session:
        created = session.scalar(select(Command.created_at).where(Command.batch_id == batch))
    in_flight = (
        select(Command.id)
        .where(
            Command.status.in_([status for status in CommandStatus if status not in FINISHED]),
            # Not the batch id as well: the planner would join in that index, which holds an
            # entry for every version of every command of the batch.
            Command.created_at == created,
        )
        .limit(1)
    )
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        # A reading session, as a page would use: on SQLite a writing one would take the write
        # lock from the workers it is timing.
        with database.session(write=False) as session:
            if session.scalar(in_flight) is None:
                done = session.scalar(
                    select(func.count()).where(
                        Command.batch_id == batch, Command.status == CommandStatus.DONE
                    )
                )
                if done != count:
                    raise RuntimeError(f"{done} of the batch's {count} commands were done")
                return
        # Every 1% of the time so far: the end is seen within 1% of it, at 20 ms at least.
        time.sleep(min(0.5, max(0.02, (time.monotonic() - started) / 100)))
    raise RuntimeError(f"the batch {batch} was not done within {timeout:.0f} s")
