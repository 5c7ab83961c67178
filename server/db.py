"""Engines, sessions, the declarative base and migrations."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from psycopg import sql
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnDefault,
    Connection,
    DateTime,
    Engine,
    MetaData,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")
# PostgreSQL's deadlock, serialisation failure and lock-not-available codes.
_CONTENTION_CODES = {"40P01", "40001", "55P03"}


def is_contention(exc: BaseException) -> bool:
    """Two transactions met on the same rows (or SQLite's lock timed out): try again."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _CONTENTION_CODES or "database is locked" in str(exc.orig)


def retrying(session: Session, work: Callable[[], T], *, attempts: int = 3) -> T:
    """Run a unit of work that commits, again from the start if the database chose it as the
    loser of a deadlock; anything else, or a third loss, propagates."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            session.rollback()
            if attempt == attempts or not is_contention(exc):
                raise
            log.info("database contention (attempt %d of %d); retrying", attempt, attempts)
            time.sleep(0.02 * attempt)
    raise AssertionError("unreachable")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Always an aware UTC datetime in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


def table(model: type[Base]) -> Table:
    """A model's table, for Core statements: inserting thousands of rows through it takes half
    the time the ORM's bulk insert does, which keeps state for every row."""
    return cast(Table, model.__table__)


def insert_rows(session: Session, target: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows nobody needs back (each with the same keys): one `COPY` on PostgreSQL,
    one statement with a parameter set per row elsewhere.

    A fleet-wide command writes thousands of commands and timeline lines at once. Measured at
    1,000 timeline lines on PostgreSQL: 17 ms as a parameter set per row (each one a statement
    the server parses and runs), 6 ms as a `COPY`.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(target), rows)
        return
    dialect = connection.dialect
    given = [target.c[name] for name in rows[0]]
    # What `insert()` would fill in for a column left out: its Python-side default, each row
    # (none of the models' defaults reads the statement, which a `COPY` does not have).
    defaults = [
        (column, column.default)
        for column in target.c
        if column.key not in rows[0]
        and isinstance(column.default, ColumnDefault)
        and (column.default.is_scalar or column.default.is_callable)
    ]
    columns = [*given, *(column for column, _default in defaults)]
    # Each value as the statement would bind it; JSON as its text, which the server parses
    # (the driver knows no column types in a `COPY`).
    processors = [
        json.dumps if isinstance(column.type, JSON) else column.type.bind_processor(dialect)
        for column in columns
    ]
    preparer = dialect.identifier_preparer
    statement = "COPY {} ({}) FROM STDIN".format(
        preparer.format_table(target), ", ".join(preparer.quote(column.name) for column in columns)
    )
    raw = connection.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                values = [row[column.key] for column in given] + [
                    default.arg(None) if default.is_callable else default.arg
                    for _column, default in defaults
                ]
                copy.write_row(
                    [
                        value if process is None else process(value)
                        for value, process in zip(values, processors, strict=True)
                    ]
                )
    except raw.Error as exc:
        # As any other statement's failure reads: an IntegrityError, contention and the rest.
        raise DBAPIError.instance(statement, None, exc, raw.Error, dialect=dialect) from exc


def expire_loaded(session: Session, model: type[Base], ids: Iterable[Any]) -> None:
    """Expire the session's loaded copies of these rows, which a Core statement just changed.

    A caller that loaded one (a test, the request that asked) then reads it afresh rather than
    the old values; a worker's session holds none, and then no key is looked up at all.
    """
    if not session.identity_map:
        return
    for row_id in ids:
        loaded = session.identity_map.get(session.identity_key(model, row_id))
        if loaded is not None:
            session.expire(loaded)


def one_of(column: ColumnElement[Any] | QueryableAttribute[Any], key: str) -> ColumnElement[bool]:
    """`column IN (:key)`, the values given at execution as a list under `key`.

    Bound as one parameter per value on SQLite; on PostgreSQL as `column = ANY(:key)`, one
    array: at 1,000 values PostgreSQL took 11–15 ms to plan the first and 2.4 ms the second.
    """
    return _OneOf(column, bindparam(key))


class _OneOf(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True  # its column and parameter are its clauses, which the cache key covers
    name = "one_of"


def _one_of_parts(element: _OneOf) -> tuple[ColumnElement[Any], str]:
    column, param = element.clauses.clauses
    return column, cast(Any, param).key


@compiles(_OneOf)
def _one_of_listed(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _one_of_parts(element)
    return compiler.process(column.in_(bindparam(key, expanding=True)), **kw)


@compiles(_OneOf, "postgresql")
def _one_of_array(element: _OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _one_of_parts(element)
    return compiler.process(column == any_(bindparam(key, type_=ARRAY(column.type))), **kw)


def _sqlite_setup(engine: Engine, *, immediate: bool) -> None:
    """WAL, foreign keys, a busy timeout; we emit BEGIN ourselves so savepoints behave."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the lock up front: no deadlock-prone lock upgrades under load.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, immediate: bool = True, **kwargs: Any) -> Engine:
    """An engine for SQLite (WAL, FKs, BEGIN IMMEDIATE for writers) or PostgreSQL."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 15, "check_same_thread": False})
        if ":memory:" in url or url in {"sqlite://", "sqlite:///"}:
            raise ValueError("an in-memory SQLite database cannot be shared; use a file")
        engine = create_engine(url, **kwargs)
        _sqlite_setup(engine, immediate=immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Database:
    """The session factories: one for writing requests (lock up front) and one for reading."""

    def __init__(self, url: str, *, bind: Connection | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if bind is not None:
            # Tests: every session joins the test's outer transaction through savepoints.
            self.engine = bind.engine
            factory = sessionmaker(
                bind=bind, join_transaction_mode="create_savepoint", expire_on_commit=False
            )
            self._writer = self._reader = factory
            return
        self.engine = make_engine(url, immediate=True)
        self._writer = sessionmaker(bind=self.engine, expire_on_commit=False)
        if self.is_sqlite:
            self.read_engine = make_engine(url, immediate=False)
            self._reader = sessionmaker(bind=self.read_engine, expire_on_commit=False)
        else:
            self._reader = self._writer

    def session(self, *, write: bool = True) -> Session:
        return (self._writer if write else self._reader)()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A writing session for the CLI and worker: commit on success, roll back on error."""
        session = self.session(write=True)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def one_writer(self) -> AbstractContextManager[object]:
        """A turn at writing, for the worker's threads and processes: on SQLite, `WriterTurn`."""
        if not self.is_sqlite:
            return nullcontext()
        return WriterTurn(f"{self.engine.url.database}-writer")

    def dispose(self) -> None:
        self.engine.dispose()
        if getattr(self, "read_engine", None) is not None:
            self.read_engine.dispose()


# PostgreSQL's channels belong to the whole database: each is named for its schema too, so two
# deployments (or test runs) sharing one database never wake each other. 63 bytes at most.
_CHANNEL_NAME = "left(CAST({} AS text) || ':' || current_schema(), 63)"


def notify(session: Session, channel: str) -> None:
    """Tell every `Listener` on `channel` once this transaction commits (PostgreSQL; nothing is
    sent if it rolls back). SQLite has no such thing: its listeners keep their own schedule."""
    if session.get_bind().dialect.name == "postgresql":
        named = _CHANNEL_NAME.format(":channel")
        session.execute(text(f"SELECT pg_notify({named}, '')"), {"channel": channel})


class Listener:
    """Calls `heard` from a thread of its own whenever a transaction that called `notify` on
    `channel` commits, and once on (re)connecting, for what was committed meanwhile.

    PostgreSQL only, on a connection of its own taken out of the pool; on SQLite `start` does
    nothing. A lost connection is logged and made again after `retry` seconds.
    """

    def __init__(
        self, database: Database, channel: str, heard: Callable[[], None], *, retry: float = 1.0
    ) -> None:
        self.database = database
        self.channel = channel
        self.heard = heard
        self.retry = retry
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.database.is_sqlite or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._listen_forever, name=f"listen-{self.channel}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _listen_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # the database went away: the caller's polling goes on
                self.listening.clear()
                log.warning("lost the database's notifications on %s (%s)", self.channel, exc)
                self._stop.wait(self.retry)

    def _listen(self) -> None:
        pooled = self.database.engine.raw_connection()
        raw = cast(Any, pooled.driver_connection)
        pooled.detach()  # held for as long as this listens: never handed to anyone else
        try:
            raw.rollback()  # a checkout's ping may have begun a transaction
            raw.autocommit = True
            named = raw.execute(
                f"SELECT {_CHANNEL_NAME.format('%(channel)s')}", {"channel": self.channel}
            ).fetchone()[0]
            raw.execute(sql.SQL("LISTEN {}").format(sql.Identifier(named)))
            self.listening.set()
            self.heard()
            while not self._stop.is_set():
                for _notice in raw.notifies(timeout=1.0):
                    self.heard()
        finally:
            pooled.close()


class WriterTurn:
    """SQLite's one writer, queued for here by every thread and process that holds one of these.

    The lock is handed over at once (a thread lock, and an exclusive `flock` on a file beside
    the database for other processes), rather than in SQLite's busy handler, which sleeps up to
    100 ms between tries: under load that alone cost seconds a fleet-wide command.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.close = weakref.finalize(self, os.close, self._fd)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(target: Engine | Connection, revision: str = "heads") -> None:
    """Bring the schema to `revision` by running the Alembic migrations."""
    from alembic import command

    if isinstance(target, Engine):
        with target.connect() as connection:
            if connection.dialect.name != "sqlite":
                command.upgrade(alembic_config(connection), revision)
                connection.commit()
                return
            _sqlite_foreign_keys(connection, on=False)
            try:
                command.upgrade(alembic_config(connection), revision)
                connection.commit()
            finally:
                connection.rollback()
                _sqlite_foreign_keys(connection, on=True)
    else:
        command.upgrade(alembic_config(target), revision)


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Switch SQLite's foreign keys outside any transaction (the only place the switch works).

    A migration that rebuilds a table (SQLite cannot drop a constraint in place) drops the old
    one; with foreign keys on, that drop would first delete every row referring to it.
    """
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    if on:
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migrations left rows pointing nowhere: {broken[:5]}")


def schema_revisions(engine: Engine) -> set[str]:
    """The revisions the database is at (one per branch of domain migrations)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def head_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
