"""Closing an audit while people are scanning: real threads on a database that really commits.

Every scan either lands before the sign-off (and is in the signed-off report) or is refused with
a clear message. None is lost, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.audits import services
from server.audits.models import Audit, AuditItem, AuditState
from server.audits.services import locking
from server.auth.models import Role, User
from server.auth.services import create_user
from server.db import Database
from server.devices.models import Device
from server.errors import Conflict
from server.schools.models import Location
from server.schools.services import uk_default_terms
from tests.server.audits.conftest import BASE_URL, NOW
from tests.server.commands.conftest import live_postgres, live_sqlite, live_url  # noqa: F401
from tests.server.conftest import seed_trolley_school

SCANNERS = 6
DEVICES = 48


@dataclass
class Live:
    database: Database
    audit_id: int
    lead_id: int
    scanner_ids: list[int]
    trolley_id: int
    tags: list[str]


@pytest.fixture
def live_audit(live_url: str) -> Iterator[Live]:  # noqa: F811
    """A school with one trolley of devices and an open audit, on a committed database."""
    database = Database(live_url)
    with database.begin() as session:
        seeded = seed_trolley_school(
            session, "race", devices=DEVICES, teachers=SCANNERS, tokens=False
        )
        school = seeded.school
        for term in uk_default_terms(date(2025, 10, 1)):
            term.school_id = school.id
            session.add(term)
        lead = create_user(
            session,
            actor=None,
            school=school,
            email=f"computing_lead0-{uuid.uuid4().hex[:6]}@race.example",
            name="Computing lead 0",
            role=Role.COMPUTING_LEAD,
            password="long-password-1",
        )
        session.flush()
        tags = [d.asset_tag for d in seeded.devices]
        ids = (lead.id, [s.id for s in seeded.teachers], seeded.trolley.id)
    with database.begin() as session:
        actor = session.get(User, ids[0])
        assert actor is not None
        audit = services.start_audit(session, actor, now=NOW)
        audit_id = audit.id
    yield Live(database, audit_id, ids[0], ids[1], ids[2], tags)
    with database.begin() as session:
        # The shared live database is emptied table by table after each test; a trolley
        # nested in a room would stop its parent being deleted (ON DELETE RESTRICT).
        session.execute(
            update(Location).where(Location.parent_id.is_not(None)).values(parent_id=None)
        )
    database.dispose()


def _as(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    assert user is not None
    return user


def _scan(live: Live, user_id: int, tag: str) -> Any:
    session = live.database.session(write=True)
    try:
        return services.scan(
            session,
            _as(session, user_id),
            live.audit_id,
            tag,
            location_id=live.trolley_id,
            base_url=BASE_URL,
        )
    finally:
        session.close()


def _close(live: Live) -> Audit:
    session = live.database.session(write=True)
    try:
        return services.close_audit(session, _as(session, live.lead_id), live.audit_id)
    finally:
        session.close()


def _states(live: Live) -> dict[str, AuditState]:
    with live.database.session(write=False) as session:
        rows = session.execute(
            select(Device.asset_tag, AuditItem.state)
            .join(AuditItem, AuditItem.device_id == Device.id)
            .where(AuditItem.audit_id == live.audit_id)
        ).all()
    return {tag: state for tag, state in rows}


def _pause_in(
    monkeypatch: pytest.MonkeyPatch, thread_name: str
) -> tuple[threading.Event, threading.Event]:
    """Hold the named thread just after it has taken the audit's lock, until released."""
    locked, release = threading.Event(), threading.Event()
    original: Callable[..., Audit] = locking._locked

    def holding(*args: Any, **kwargs: Any) -> Audit:
        audit = original(*args, **kwargs)
        if threading.current_thread().name == thread_name:
            locked.set()
            assert release.wait(30), "the test never released the lock"
        return audit

    monkeypatch.setattr(locking, "_locked", holding)
    return locked, release


def _run(name: str, fn: Callable[[], Any], out: dict[str, Any]) -> threading.Thread:
    def target() -> None:
        try:
            out[name] = fn()
        except Exception as exc:  # the test inspects what each side got
            out[name] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def test_a_close_waits_for_the_scan_in_progress_and_includes_it(
    live_audit: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P-AUDIT-1: a scan mid-way when the close arrives is finished first, then reported."""
    live = live_audit
    locked, release = _pause_in(monkeypatch, "scanner")
    out: dict[str, Any] = {}
    scanner = _run("scanner", lambda: _scan(live, live.scanner_ids[0], "RACE-00"), out)
    assert locked.wait(15)
    closer = _run("closer", lambda: _close(live), out)
    time.sleep(0.5)
    assert closer.is_alive(), "the close did not wait for the scan holding the audit"
    release.set()
    scanner.join(20)
    closer.join(20)
    assert out["scanner"].outcome == "verified", out["scanner"]
    assert isinstance(out["closer"], Audit) and out["closer"].summary["verified"] == 1
    assert _states(live)["RACE-00"] is AuditState.VERIFIED


def test_a_scan_that_arrives_after_the_close_is_refused_never_dropped(
    live_audit: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = live_audit
    locked, release = _pause_in(monkeypatch, "closer")
    out: dict[str, Any] = {}
    closer = _run("closer", lambda: _close(live), out)
    assert locked.wait(15)
    scanner = _run("scanner", lambda: _scan(live, live.scanner_ids[0], "RACE-01"), out)
    time.sleep(0.5)
    assert scanner.is_alive(), "the scan did not wait for the close holding the audit"
    release.set()
    closer.join(20)
    scanner.join(20)
    assert isinstance(out["closer"], Audit)
    refused = out["scanner"]
    assert isinstance(refused, Conflict) and refused.code == "audit_closed"
    assert "RACE-01 was not recorded" in refused.message
    assert _states(live)["RACE-01"] is AuditState.MISSING


def test_many_people_scanning_while_the_audit_is_signed_off_lose_nothing(
    live_audit: Live,
) -> None:
    """Six people scan 48 devices at once; the close lands part-way. Each scan is either in the
    signed-off report or was refused with a message: the two sets account for every scan."""
    live = live_audit
    rng = random.Random(7)
    tags = list(live.tags)
    rng.shuffle(tags)
    shares = [tags[n::SCANNERS] for n in range(SCANNERS)]
    outcomes: dict[str, Any] = {}
    lock = threading.Lock()
    started = threading.Barrier(SCANNERS + 1)

    def work(user_id: int, mine: list[str]) -> None:
        started.wait()
        for tag in mine:
            try:
                result: Any = _scan(live, user_id, tag)
            except Exception as exc:  # collected and checked below
                result = exc
            with lock:
                outcomes[tag] = result
            time.sleep(rng.random() * 0.01)

    threads = [
        threading.Thread(target=work, args=(user, share), daemon=True)
        for user, share in zip(live.scanner_ids, shares, strict=True)
    ]
    for thread in threads:
        thread.start()
    started.wait()
    while len(outcomes) < DEVICES // 3:
        time.sleep(0.005)
    closed = _close(live)
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == DEVICES
    recorded = {t for t, r in outcomes.items() if isinstance(r, services.ScanResult)}
    refused = {
        t for t, r in outcomes.items() if isinstance(r, Conflict) and r.code == "audit_closed"
    }
    assert recorded | refused == set(live.tags), [
        r for r in outcomes.values() if not isinstance(r, services.ScanResult | Conflict)
    ]
    assert recorded and refused, "the close should land part-way through"
    states = _states(live)
    assert {t for t, s in states.items() if s is AuditState.VERIFIED} == recorded
    assert closed.summary["verified"] == len(recorded)
    assert closed.summary["missing"] == len(refused)
