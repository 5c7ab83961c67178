"""Faults on the whole system: brokers, the worker, devices, backups and the database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.commands import services as commands
from server.commands.models import CommandStatus
from server.db import utcnow
from server.devices.models import Device
from server.profiles import services as profiles
from tests.e2e.conftest import Stack, build_stack, wait_until
from tests.e2e.test_whole_system import _online

pytestmark = pytest.mark.slow


def _issue(
    stack: Stack, kind: str, devices: list[Device] | None = None, **options: object
) -> list[str]:
    """Queue `kind` for the given (or every) device of the school straight through the service."""
    with stack.database.begin() as session:
        tech = session.merge(stack.technician)
        rows = (
            [session.get(Device, d.id) for d in devices]
            if devices is not None
            else list(session.scalars(select(Device).where(Device.school_id == stack.school_id)))
        )
        issued = commands.issue(session, tech, rows, kind, **options)  # type: ignore[arg-type]
        return [c.cmd_id for c in issued]


def test_broker_restarted_mid_fan_out(stack: Stack) -> None:
    """P-PHOTO-1: the broker dies mid-wipe (Mosquitto: SIGKILL); every wipe still finishes, once."""
    stack.enrol(stack.add_devices(10), photos=3, delay=0.4)
    _online(stack, 10)
    cmd_ids = _issue(stack, "wipe_photos")
    wait_until(
        lambda: any(k.ran("wipe_photos") for k in stack.kiosks), 20, "the first device to start"
    )
    stack.restart_broker(kill=True)
    statuses = stack.wait_finished(cmd_ids, timeout=50)
    assert set(statuses.values()) == {CommandStatus.DONE}, stack.details(cmd_ids)
    for kiosk in stack.kiosks:
        assert kiosk.ran("wipe_photos") == 1, kiosk.asset_tag
        assert kiosk.photos() == 0, kiosk.asset_tag


@pytest.fixture
def sqlite_stack(live_sqlite: str, tmp_path: Path) -> object:
    """The whole system on a SQLite file and the embedded broker."""
    from tests.e2e.conftest import empty_database

    yield from build_stack("embedded", live_sqlite, tmp_path)
    empty_database(live_sqlite)


def _worker(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "server", "worker", "--tick", "1", "--client-id", "trolley-w"],
            env=stack.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _only_worker(stack: Stack, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`trolley worker` as a subprocess, the only worker, with three kiosks of two photos."""
    stack.stop_channel()
    stack.enrol(stack.add_devices(3), photos=2)
    log = tmp_path / "worker.log"
    return _worker(stack, log), log


def test_worker_killed_then_restarted_publishes_what_was_queued(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    """The `trolley worker` process is SIGKILLed; commands committed while it is dead are
    published when it starts again, and each runs exactly once."""
    stack = sqlite_stack
    worker, log = _only_worker(stack, tmp_path)
    try:
        try:
            _online(stack, 3)
        except AssertionError:
            raise AssertionError(log.read_text()) from None
        first = _issue(stack, "ping")
        assert set(stack.wait_finished(first).values()) == {CommandStatus.DONE}, log.read_text()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        queued = _issue(stack, "wipe_photos")
        time.sleep(1.5)
        assert set(stack.statuses(queued).values()) == {CommandStatus.QUEUED}
        assert all(k.photos() == 2 for k in stack.kiosks)
        worker = _worker(stack, log)
        try:
            stack.wait_finished(queued, timeout=40)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()}") from None
        assert set(stack.statuses(queued).values()) == {CommandStatus.DONE}
        for kiosk in stack.kiosks:
            assert kiosk.ran("wipe_photos") == 1
            assert kiosk.photos() == 0
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)


def _recording_process(worker: subprocess.Popen[bytes], log: Path) -> int:
    """The pid of the recording process `trolley worker` started, once there is one."""
    found: list[int] = []

    def started() -> bool:
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        found[:] = [int(pid) for pid in children]
        return len(found) == 1

    try:
        wait_until(started, 15, "the worker's recording process")
    except AssertionError:
        raise AssertionError(log.read_text()) from None
    return found[0]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, waiting to be reaped


def test_the_recording_process_killed_is_started_again_and_loses_no_answer(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    """P-PHOTO-1: `trolley worker` records in a process of its own; SIGKILLed, it is started
    again, collects the answers the broker kept for it, and every wipe is recorded done once."""
    stack = sqlite_stack
    worker, log = _only_worker(stack, tmp_path)
    try:
        recorder = _recording_process(worker, log)
        _online(stack, 3)
        os.kill(recorder, signal.SIGKILL)
        cmd_ids = _issue(stack, "wipe_photos")
        try:
            statuses = stack.wait_finished(cmd_ids, timeout=40)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()}") from None
        assert set(statuses.values()) == {CommandStatus.DONE}, stack.details(cmd_ids)
        for kiosk in stack.kiosks:
            assert kiosk.ran("wipe_photos") == 1 and kiosk.photos() == 0
        assert "the recording process stopped (exit code -9); starting it again" in log.read_text()
        assert _recording_process(worker, log) != recorder
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)


def test_the_recording_process_stops_with_its_worker(sqlite_stack: Stack, tmp_path: Path) -> None:
    """Stopped (SIGTERM) or killed, `trolley worker` leaves no recording process behind to
    hold its broker session against the next one."""
    stack = sqlite_stack
    stack.stop_channel()
    log = tmp_path / "worker.log"
    for how in (signal.SIGTERM, signal.SIGKILL):
        worker = _worker(stack, log)
        recorder = _recording_process(worker, log)
        worker.send_signal(how)
        worker.wait(timeout=20)
        wait_until(
            lambda pid=recorder: _gone(pid), 10, f"the recording process to stop after {how!r}"
        )


def test_device_offline_for_a_day_gets_its_wipe_and_profile(stack: Stack) -> None:
    """P-PHOTO-1, P-PROFILE-1: a kiosk switched off for a day collects its queued wipe and its
    current profile when it comes back."""
    [kiosk] = stack.enrol(stack.add_devices(1), photos=6)
    _online(stack, 1)
    kiosk.stop()
    yesterday = utcnow() - timedelta(days=1)
    cmd_ids = _issue(stack, "wipe_photos", now=yesterday)
    with stack.database.begin() as session:
        lead = session.merge(stack.lead)
        profile = profiles.create_profile(session, lead, name="Exam kiosk", start_from="exam-kiosk")
        profiles.assign(session, lead, profile, "location", stack.trolley_id)
        # A day of scheduled expiry passes: the wipe (seven days to live) stays queued.
        assert commands.expire(session, now=utcnow()) == 0
        session.commit()
    time.sleep(1)
    assert stack.statuses(cmd_ids)[cmd_ids[0]] in {CommandStatus.QUEUED, CommandStatus.SENT}
    kiosk.start()
    assert stack.wait_finished(cmd_ids) == {cmd_ids[0]: CommandStatus.DONE}, stack.details(cmd_ids)
    assert kiosk.photos() == 0

    def green() -> bool:
        with stack.database.begin() as session:
            return [r.state for r in profiles.compliance(session, stack.school_id)] == ["compliant"]

    wait_until(green, 20, "the profile to be applied")


def test_backup_restored_while_devices_are_enrolled(sqlite_stack: Stack, tmp_path: Path) -> None:
    """`trolley backup` then `trolley restore` with kiosks running: they keep obeying the server
    (their identities, keys and command sequence survive the restore)."""
    stack = sqlite_stack
    stack.enrol(stack.add_devices(2), photos=2)
    _online(stack, 2)
    backup = tmp_path / "trolley.backup"
    env = {**stack.env(), "TROLLEY_BACKUP_PASSPHRASE_FILE": str(tmp_path / "passphrase")}
    (tmp_path / "passphrase").write_text("the school's own passphrase\n")
    subprocess.run([sys.executable, "-m", "server", "backup", str(backup)], env=env, check=True)
    after = _issue(stack, "ping")  # commands the backup does not know about
    assert set(stack.wait_finished(after).values()) == {CommandStatus.DONE}
    stack.stop_channel()
    stack.database.dispose()
    subprocess.run(
        [sys.executable, "-m", "server", "restore", "--yes", str(backup)], env=env, check=True
    )
    stack.start_channel()
    wipes = _issue(stack, "wipe_photos")
    assert set(stack.wait_finished(wipes).values()) == {CommandStatus.DONE}, stack.details(wipes)
    assert all(k.photos() == 0 for k in stack.kiosks)


WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN IMMEDIATE")
    for n in range(20000):
        db.execute(
            "INSERT INTO device_events (school_id, device_id, at, kind, summary, details)"
            " VALUES (?, ?, datetime('now'), 'report', ?, '{}')",
            (int(sys.argv[3]), int(sys.argv[2]), "x" * 200),
        )
    print("writing", flush=True)
    time.sleep(60)
    """
)


def test_sqlite_writer_killed_mid_transaction(sqlite_stack: Stack) -> None:
    """A process killed in the middle of a big write leaves a clean database; the server serves."""
    stack = sqlite_stack
    [kiosk] = stack.enrol(stack.add_devices(1))
    _online(stack, 1)
    path = stack.settings.database_url.removeprefix("sqlite:///")
    with stack.database.begin() as session:
        device_id = session.scalar(select(Device.id))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, path, str(device_id), str(stack.school_id)],
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == b"writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    writer.stdout.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute(
            "SELECT count(*) FROM device_events WHERE summary LIKE 'xxx%'"
        ).fetchone() == (0,)
    answer = stack.api(stack.technician, "GET", f"/devices/{kiosk.asset_tag}")
    assert answer["asset_tag"] == kiosk.asset_tag
    ping = _issue(stack, "ping")
    assert set(stack.wait_finished(ping).values()) == {CommandStatus.DONE}
