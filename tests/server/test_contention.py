"""Two transactions on the same rows: the loser is retried, or told to try again — never a 500."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server import create_app
from server.db import is_contention, retrying
from tests.helpers import POSTGRES_ADDR, require_service
from tests.server.conftest import DATA_KEY, POSTGRES_BASE

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine() -> Iterator[Engine]:
    require_service("PostgreSQL", POSTGRES_ADDR)
    schema = f"deadlock_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'CREATE TABLE "{schema}".pair (id int primary key, n int)'))
        conn.execute(text(f'INSERT INTO "{schema}".pair VALUES (1, 0), (2, 0)'))
    made = create_engine(f"{POSTGRES_BASE}?options=-csearch_path%3D{schema}")
    yield made
    made.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _deadlock(engine: Engine) -> DBAPIError:
    """Two sessions update rows 1 and 2 in opposite orders; PostgreSQL cancels one."""
    barrier = threading.Barrier(2)
    errors: list[DBAPIError] = []

    def run(first: int, second: int) -> None:
        with Session(engine) as session:
            try:
                session.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": first})
                barrier.wait(5)
                session.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": second})
                session.commit()
            except DBAPIError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=order) for order in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_real_deadlock_is_contention_and_other_errors_are_not(engine: Engine) -> None:
    assert is_contention(_deadlock(engine))
    with Session(engine) as session, pytest.raises(DBAPIError) as caught:
        session.execute(text("SELECT 1 / 0"))
    assert not is_contention(caught.value)
    assert not is_contention(ValueError("nothing to do with the database"))


def test_retrying_runs_the_work_again_after_a_deadlock(engine: Engine) -> None:
    deadlock = _deadlock(engine)
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise deadlock
        return "saved"

    with Session(engine) as session:
        assert retrying(session, work) == "saved"
        assert len(calls) == 2

        def always() -> str:
            raise deadlock

        with pytest.raises(DBAPIError):
            retrying(session, always, attempts=3)


def test_the_loser_of_a_deadlock_is_told_to_try_again(engine: Engine, tmp_path: object) -> None:
    deadlock = _deadlock(engine)
    app: Flask = create_app(
        {
            "database_url": "sqlite:///" + str(tmp_path) + "/app.db",
            "testing": True,
            "instance_dir": str(tmp_path),
            "secure_cookies": False,
            "data_keys": [DATA_KEY],
        }
    )

    @app.get("/api/v1/contended")
    def contended() -> str:
        raise deadlock

    @app.get("/api/v1/broken")
    def broken() -> str:
        raise DBAPIError("SELECT", {}, ValueError("disk on fire"))

    client = app.test_client()
    answer = client.get("/api/v1/contended")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.get_json()["error"]["code"] == "busy"
    assert client.get("/api/v1/broken").status_code == 500
