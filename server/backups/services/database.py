"""Copies of the database: SQLite's online backup or pg_dump out, checked copies back in."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from server.devices.services.search import POSTGRES_EXTENSIONS
from server.errors import ValidationFailed

log = logging.getLogger(__name__)
DUMP_NAMES = {"sqlite": "trolley.sqlite3", "postgresql": "trolley.pgdump"}


def kind_of(url: str) -> str:
    """'sqlite' or 'postgresql': which dump a database makes and takes."""
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def schema_of(url: str) -> str | None:
    """The schema a PostgreSQL URL limits itself to (search_path in its options), if any."""
    options = parse_qs(urlsplit(url).query).get("options", [""])[0]
    return options.split("search_path=", 1)[1].split()[0] if "search_path=" in options else None


def _libpq(url: str) -> tuple[str, list[str]]:
    """A libpq URI for pg_dump/pg_restore and the schema option to limit them to, if any."""
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    schema = schema_of(url)
    return plain, ([f"--schema={schema}"] if schema else [])


def sqlite_path(url: str) -> Path:
    return Path(url.split("sqlite:///", 1)[1])


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ValidationFailed(f"{name} is not installed (PostgreSQL's client tools).")
    return found


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ValidationFailed(f"{what} failed: {' / '.join(detail) or 'no message'}")


def dump(url: str, folder: Path) -> Path:
    """A consistent copy of the database in `folder`, taken while Trolley keeps running."""
    kind = kind_of(url)
    target = folder / DUMP_NAMES[kind]
    if kind == "sqlite":
        source = sqlite3.connect(sqlite_path(url))
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # SQLite's online backup: a consistent snapshot
        finally:
            copy.close()
            source.close()
    else:
        uri, extra = _libpq(url)
        _run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}", *extra, uri],
            "pg_dump",
        )
    return target


def check_sqlite_copy(file: Path, name: str) -> None:
    """A SQLite file that is whole and is a Trolley database, or a clear refusal."""
    check = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise ValidationFailed(f"{name} is damaged; nothing was restored.")
        tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise ValidationFailed(f"{name} is not a Trolley backup ({exc}).") from exc
    finally:
        check.close()
    if "alembic_version" not in tables or "devices" not in tables:
        raise ValidationFailed(f"{name} is not a Trolley backup; nothing was restored.")


def load(url: str, file: Path, *, dumped_schema: str | None) -> None:
    """Replace the database at `url` with the copy in `file` (stop the server first)."""
    if kind_of(url) == "sqlite":
        check_sqlite_copy(file, file.name)
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(file)
        target = sqlite3.connect(path, timeout=30)
        try:
            source.backup(target)  # page-by-page copy under SQLite's own locking
        finally:
            target.close()
            source.close()
        return
    schema = schema_of(url)
    if schema != dumped_schema:
        raise ValidationFailed(
            f"The backup holds the PostgreSQL schema {dumped_schema or 'public'}, but this "
            f"server's settings use {schema or 'public'}: use the same schema. Nothing was changed."
        )
    if schema:
        _execute(url, f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    _install_extensions(url)
    uri, extra = _libpq(url)
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            *extra,
            f"--dbname={uri}",
            str(file),
        ],
        "pg_restore",
    )


def _install_extensions(url: str) -> None:
    """The extensions the dumped indexes use: a schema's dump leaves them out, and a new
    machine's database has none (if one cannot be installed, pg_restore says which index)."""
    for name in POSTGRES_EXTENSIONS:
        try:
            _execute(url, f'CREATE EXTENSION IF NOT EXISTS "{name}" SCHEMA public')
        except DBAPIError as exc:
            log.warning("could not install the %s extension: %s", name, exc.orig or exc)


def _execute(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@contextmanager
def scratch(live_url: str, folder: Path, given: str | None = None) -> Iterator[str]:
    """A throw-away database of the live one's kind, removed afterwards (for restore drills)."""
    if given:
        yield given
        return
    if kind_of(live_url) == "sqlite":
        yield f"sqlite:///{folder / 'drill.db'}"
        return
    live = make_url(live_url)
    name = f"{live.database or 'trolley'}_drill_{uuid.uuid4().hex[:8]}"
    try:
        _execute(live_url, f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        raise ValidationFailed(
            "The drill could not make a scratch database next to the live one "
            f"({str(exc.orig or exc).strip().splitlines()[0]}): give Trolley's account "
            "CREATEDB, or name an empty database with --scratch-database."
        ) from exc
    try:
        yield live.set(database=name).render_as_string(hide_password=False)
    finally:
        _execute(live_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
