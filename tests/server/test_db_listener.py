"""A transaction's word to the worker: `notify` on commit, heard by a `Listener` (PostgreSQL)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from server.db import Database, Listener, notify
from tests.helpers import Heard, migrated_sqlite
from tests.server.conftest import POSTGRES_BASE

CHANNEL = "trolley_test_channel"


@pytest.fixture
def on_postgres(postgres_database: tuple[str, Engine]) -> Iterator[Database]:
    database = Database(postgres_database[0])
    yield database
    database.dispose()


def _listening(database: Database, heard: Heard) -> Listener:
    listener = Listener(database, CHANNEL, heard, retry=0.1)
    listener.start()
    assert listener.listening.wait(10), "the listener never listened"
    assert heard.wait_for(1), "a listener says so once it listens, for what it may have missed"
    return listener


def _only_this_is_heard_next(database: Database, heard: Heard) -> None:
    """A committed notify on `database` is heard, and nothing sent before it was: notifications
    arrive in commit order, so an earlier one would have come first."""
    with database.begin() as session:
        notify(session, CHANNEL)
    assert heard.wait_for(2)
    time.sleep(0.2)
    assert heard.count == 2


@pytest.mark.postgres
def test_a_committed_notify_is_heard_and_a_rolled_back_one_is_not(on_postgres: Database) -> None:
    heard = Heard()
    listener = _listening(on_postgres, heard)
    try:
        with pytest.raises(RuntimeError), on_postgres.begin() as session:
            notify(session, CHANNEL)
            raise RuntimeError("the request failed")
        _only_this_is_heard_next(on_postgres, heard)
    finally:
        listener.stop()


@pytest.mark.postgres
def test_another_schema_of_the_same_database_is_not_heard(on_postgres: Database) -> None:
    """Two deployments (or test runs) sharing one PostgreSQL database never wake each other."""
    schema = f"other_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    other = Database(f"{POSTGRES_BASE}?options=-csearch_path%3D{schema}")
    heard = Heard()
    listener = _listening(on_postgres, heard)
    try:
        with other.begin() as session:
            notify(session, CHANNEL)
        _only_this_is_heard_next(on_postgres, heard)
    finally:
        listener.stop()
        other.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_a_listener_whose_connection_is_cut_listens_again(
    on_postgres: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A database restart must not leave the worker deaf: it falls back on polling meanwhile."""
    heard = Heard()
    listener = _listening(on_postgres, heard)
    try:
        with caplog.at_level(logging.WARNING, logger="server.db"):
            with on_postgres.begin() as session:
                cut = session.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
                        " AND query LIKE :channel"
                    ),
                    {"channel": f"%{CHANNEL}%"},
                ).all()
            assert cut, "no listening connection was found to cut"
            assert heard.wait_for(2), "it never listened again"
        assert "lost the database's notifications" in caplog.text
        with on_postgres.begin() as session:
            notify(session, CHANNEL)
        assert heard.wait_for(3)
    finally:
        listener.stop()


def test_on_sqlite_nothing_listens_and_notify_sends_nothing(tmp_path: Path) -> None:
    """SQLite's workers keep looking on their own schedule; queuing work there still commits."""
    database = Database(migrated_sqlite(tmp_path / "trolley.db"))
    try:
        heard = Heard()
        listener = Listener(database, CHANNEL, heard)
        listener.start()
        with database.begin() as session:
            notify(session, CHANNEL)
        listener.stop()
        assert heard.count == 0
        assert not listener.listening.is_set()
        assert not any(t.name == f"listen-{CHANNEL}" for t in threading.enumerate())
    finally:
        database.dispose()
