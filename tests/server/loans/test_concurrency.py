"""Two teachers scanning the same device at the same instant: exactly one wins (real HTTP)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from server import create_app
from server.db import Database
from server.devices.models import Device
from server.loans.models import ItemState, LoanItem, Scan
from server.schools.models import Location
from tests.helpers import free_port
from tests.server.conftest import DATA_KEY, seed_trolley_school, serving

TEACHERS = 6
DEVICES = 8


@dataclass
class Served:
    base: str
    database: Database
    school_id: int
    trolley_id: int
    tags: list[str]
    teachers: list[tuple[str, dict[str, str]]]  # (name, headers)


@pytest.fixture
def served(live_url: str, tmp_path: Path) -> Iterator[Served]:
    """The app over real HTTP (a threaded WSGI server) on a database that really commits."""
    database = Database(live_url)
    with database.begin() as session:
        seeded = seed_trolley_school(session, "race", devices=DEVICES, teachers=TEACHERS)
        tags = [d.asset_tag for d in seeded.devices]
        teachers = [
            (user.name, {"Authorization": f"Bearer {plain}"})
            for user, plain in zip(seeded.teachers, seeded.tokens, strict=True)
        ]
        trolley_id, school_id = seeded.trolley.id, seeded.school.id
    app = create_app(
        {
            "database_url": live_url,
            "testing": True,
            "instance_dir": tmp_path / "instance",
            "secure_cookies": False,
            "data_keys": [DATA_KEY],
        }
    )
    with serving(app, free_port()) as base:
        yield Served(base, database, school_id, trolley_id, tags, teachers)
    with database.begin() as session:
        # The shared live database is emptied table by table after each test; a trolley
        # nested in a room would stop its parent being deleted (ON DELETE RESTRICT).
        session.execute(
            update(Location).where(Location.school_id == school_id).values(parent_id=None)
        )
    database.dispose()


def _race(served: Served, calls: list[tuple[dict[str, str], dict[str, Any]]]) -> list[Any]:
    """Send every call at the same instant, one thread each; return the responses in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def send(n: int, headers: dict[str, str], body: dict[str, Any]) -> None:
        with requests.Session() as http:
            barrier.wait()
            results[n] = http.post(
                f"{served.base}/api/v1/scans", json=body, headers=headers, timeout=60
            )

    threads = [
        threading.Thread(target=send, args=(n, headers, body))
        for n, (headers, body) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_exactly_one_teacher_wins_each_device(served: Served) -> None:
    """P-REG-3: simultaneous scans of one device: one holder, everyone else told who has it."""
    for tag in served.tags:
        calls = [
            (
                headers,
                {
                    "mode": "out",
                    "trolley": served.trolley_id,
                    "code": tag,
                    "idempotency_key": uuid.uuid4().hex,
                },
            )
            for _name, headers in served.teachers
        ]
        responses = _race(served, calls)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [409] * (TEACHERS - 1), [r.text for r in responses]
        winner = next(n for n, r in enumerate(responses) if r.status_code == 200)
        winner_name = served.teachers[winner][0]
        for n, response in enumerate(responses):
            if n != winner:
                error = response.json()["error"]
                assert error["code"] == "held_by_other"
                assert error["details"]["holder"] == winner_name
                assert winner_name in error["message"]
        with served.database.begin() as session:
            device = session.scalars(select(Device).where(Device.asset_tag == tag)).one()
            holder_items = session.scalars(
                select(LoanItem).where(LoanItem.device_id == device.id)
            ).all()
            assert [i.state for i in holder_items] == [ItemState.OUT]
            assert device.holder is not None and device.holder.name == winner_name


def test_one_scan_sent_many_times_at_once_is_recorded_once(served: Served) -> None:
    """An offline queue and a retry racing each other: one take-out, one answer, one record."""
    _name, headers = served.teachers[0]
    body = {
        "mode": "out",
        "trolley": served.trolley_id,
        "code": served.tags[0],
        "idempotency_key": "race-same-key-0001",
    }
    responses = _race(served, [(headers, body)] * 5)
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert {r.json()["outcome"] for r in responses} == {"out"}
    assert sorted(r.json()["replayed"] for r in responses) == [False] + [True] * 4
    with served.database.begin() as session:
        mine = LoanItem.school_id == served.school_id
        assert session.scalar(select(func.count()).select_from(LoanItem).where(mine)) == 1
        scans = Scan.school_id == served.school_id
        assert session.scalar(select(func.count()).select_from(Scan).where(scans)) == 1
