"""The `trolley` command line: the same services, TROLLEY_* settings, clear errors."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from server.cli import main
from tests.helpers import POSTGRES_ADDR, require_service
from tests.server.conftest import POSTGRES_BASE


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "TROLLEY_INSTANCE_DIR": str(tmp_path / "instance"),
        "TROLLEY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "TROLLEY_DEMO": "1",
    }


@pytest.fixture
def postgres_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    require_service("PostgreSQL", POSTGRES_ADDR)
    schema = f"cli_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield {
        "TROLLEY_INSTANCE_DIR": str(tmp_path / "instance"),
        "TROLLEY_DATABASE_URL": f"{POSTGRES_BASE}?options=-csearch_path%3D{schema}",
        "TROLLEY_DEMO": "1",
    }
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    return request.getfixturevalue(f"{request.param}_env")  # type: ignore[no-any-return]


def _count(env: dict[str, str], sql: str) -> int:
    engine = create_engine(env["TROLLEY_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_users_create_token_and_reset(env: dict[str, str]) -> None:
    assert run(env, "db", "upgrade").exit_code == 0
    assert run(env, "schools", "create", "oakfield", "Oakfield Primary").exit_code == 0
    made = run(
        env,
        "users",
        "create",
        "Sue@Oakfield.example",
        "--role",
        "sbm",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert made.exit_code == 0, made.output
    assert "sue@oakfield.example (School business manager)" in made.output
    again = run(
        env,
        "users",
        "create",
        "sue@oakfield.example",
        "--role",
        "sbm",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert again.exit_code == 1 and "already an account" in again.output
    bad_role = run(
        env,
        "users",
        "create",
        "x@o.example",
        "--role",
        "wizard",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert bad_role.exit_code == 2 and "choose one of" in bad_role.output
    weak = run(
        env,
        "users",
        "create",
        "y@o.example",
        "--role",
        "teacher",
        "--password-stdin",
        stdin="short\n",
    )
    assert weak.exit_code == 1 and "at least 10" in weak.output
    token = run(env, "users", "token", "sue@oakfield.example")
    assert token.exit_code == 0 and token.output.strip().startswith("trl_")
    assert run(env, "users", "token", "nobody@x.example").exit_code == 1
    reset = run(
        env,
        "users",
        "reset-password",
        "sue@oakfield.example",
        "--password-stdin",
        stdin="another-long-one\n",
    )
    assert reset.exit_code == 0 and "signed out" in reset.output


def test_serve_refuses_an_old_schema(sqlite_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["serve"], env=sqlite_env)
    assert result.exit_code == 1 and "trolley db upgrade" in result.output


def test_backup_and_restore_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    """P-SEC-2: a consistent backup and a tested restore of the whole system."""
    seeded = run(env, "demo", "--seed-only")
    assert seeded.exit_code == 0, seeded.output
    assert _count(env, "SELECT count(*) FROM devices") == 90
    users_before = _count(env, "SELECT count(*) FROM users")
    trail_before = _count(env, "SELECT count(*) FROM activity_entries")
    backup_file = tmp_path / "trolley.backup"
    done = run(env, "backup", str(backup_file))
    assert done.exit_code == 0, done.output
    assert backup_file.stat().st_size > 10_000

    engine = create_engine(env["TROLLEY_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM device_events"))
        conn.execute(text("DELETE FROM devices"))
        conn.execute(text("UPDATE users SET name = 'changed'"))
    engine.dispose()
    assert _count(env, "SELECT count(*) FROM devices") == 0

    restored = run(env, "restore", str(backup_file), "--yes")
    assert restored.exit_code == 0, restored.output
    assert _count(env, "SELECT count(*) FROM devices") == 90
    assert _count(env, "SELECT count(*) FROM users") == users_before
    assert _count(env, "SELECT count(*) FROM users WHERE name = 'changed'") == 0
    assert _count(env, "SELECT count(*) FROM activity_entries") == trail_before
    assert run(env, "activity", "verify").exit_code == 0


def test_restore_refuses_a_file_that_is_not_a_backup(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    run(sqlite_env, "db", "upgrade")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(main, ["restore", str(junk), "--yes"], env=sqlite_env)
    assert result.exit_code == 1 and "not a Trolley backup" in result.output
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    result = CliRunner().invoke(main, ["restore", str(other), "--yes"], env=sqlite_env)
    assert result.exit_code == 1 and "not a Trolley backup" in result.output


def test_activity_verify_names_the_tampered_entry(sqlite_env: dict[str, str]) -> None:
    """P-SEC-1: `trolley activity verify` reports the first tampered entry."""
    run(sqlite_env, "demo", "--seed-only")
    ok = run(sqlite_env, "activity", "verify")
    assert ok.exit_code == 0 and "intact" in ok.output
    db = sqlite3.connect(sqlite_env["TROLLEY_DATABASE_URL"].split("sqlite:///")[1])
    db.execute('UPDATE activity_entries SET details = \'{"role": "admin"}\' WHERE seq = 3')
    db.commit()
    db.close()
    result = run(sqlite_env, "activity", "verify")
    assert result.exit_code == 1
    assert "TAMPERED: entry 3" in result.output


def test_demo_school_has_what_the_brief_promises(sqlite_env: dict[str, str]) -> None:
    result = run(sqlite_env, "demo", "--seed-only")
    assert result.exit_code == 0
    for email in ("teacher@", "computing@", "sbm@", "head@", "tech@", "governor@", "admin@"):
        assert email in result.output
    assert _count(sqlite_env, "SELECT count(*) FROM users") == 7
    assert (
        _count(
            sqlite_env, "SELECT count(*) FROM locations WHERE kind = 'trolley' AND capacity = 30"
        )
        == 3
    )
    assert _count(sqlite_env, "SELECT count(*) FROM locations WHERE kind = 'safe'") == 2
    assert _count(sqlite_env, "SELECT count(*) FROM devices WHERE platform = 'ipados'") == 60
    assert _count(sqlite_env, "SELECT count(*) FROM devices WHERE platform = 'chromeos'") == 30
    assert _count(sqlite_env, "SELECT count(DISTINCT serial) FROM devices") == 90
    again = run(sqlite_env, "demo", "--seed-only")  # seeding twice changes nothing
    assert again.exit_code == 0 and _count(sqlite_env, "SELECT count(*) FROM devices") == 90
