"""The `trolley` command line: the same services, TROLLEY_* settings, clear errors."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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
    # P-SEC-1: the reset revoked the token made above.
    assert _count(env, "SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL") == 0


def test_accounts_end_roles_change_and_security_is_set_on_the_server(env: dict[str, str]) -> None:
    """P-LEAVE-1, P-SEC-1: the trust's own command line turns accounts off and on, gives roles
    and sets what a stolen administrator account must not: the cooling-off and token lifetime."""
    assert run(env, "db", "upgrade").exit_code == 0
    assert run(env, "schools", "create", "oakfield", "Oakfield Primary").exit_code == 0
    for email, role in (("sue@oakfield.example", "sbm"), ("ann@oakfield.example", "admin")):
        made = run(
            env, "users", "create", email, "--role", role, "--password-stdin", stdin="a-long-one!\n"
        )
        assert made.exit_code == 0, made.output
    assert run(env, "users", "token", "sue@oakfield.example", "--scope", "read").exit_code == 0
    off = run(env, "users", "deactivate", "sue@oakfield.example", "--reason", "Left in July")
    assert off.exit_code == 0, off.output
    assert _count(env, "SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL") == 0
    assert _count(env, "SELECT count(*) FROM users WHERE active") == 1
    on = run(env, "users", "reactivate", "sue@oakfield.example", "--reason", "Came back")
    assert on.exit_code == 0, on.output
    role = run(env, "users", "role", "sue@oakfield.example", "technician")
    assert role.exit_code == 0 and "now technician" in role.output
    assert run(env, "users", "role", "sue@oakfield.example", "wizard").exit_code == 2
    shown = run(env, "schools", "security", "oakfield")
    assert "idle time-out 10 minutes; approvers wait 7 days; tokens last at most 90" in shown.output
    changed = run(
        env,
        "schools",
        "security",
        "oakfield",
        "--approver-cooling-off-days",
        "14",
        "--token-days",
        "30",
    )
    assert changed.exit_code == 0 and "wait 14 days; tokens last at most 30 days" in changed.output
    too_long = run(env, "schools", "security", "oakfield", "--idle-minutes", "600")
    assert too_long.exit_code == 1 and "between 2 and 60 minutes" in too_long.output


def test_the_trust_sees_serials_two_schools_registered(env: dict[str, str]) -> None:
    """P-SEC-1: schools are never told; whoever runs the trust's Trolley lists them."""
    assert run(env, "db", "upgrade").exit_code == 0
    assert "No serial number" in run(env, "devices", "shared-serials").output
    engine = create_engine(env["TROLLEY_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            for slug in ("oakfield", "elmwood"):
                conn.execute(
                    text(
                        "INSERT INTO schools (slug, name, timezone, return_message, created_at) "
                        "VALUES (:s, :s, 'Europe/London', '-', CURRENT_TIMESTAMP)"
                    ),
                    {"s": slug},
                )
                conn.execute(
                    text(
                        "INSERT INTO devices (school_id, asset_tag, serial, platform, make, model,"
                        " status, created_at, updated_at) SELECT id, :tag, 'DMPXK2Q1JF81', "
                        "'ipados', 'Apple', 'iPad', 'in_service', CURRENT_TIMESTAMP, "
                        "CURRENT_TIMESTAMP FROM schools WHERE slug = :s"
                    ),
                    {"s": slug, "tag": f"{slug.upper()}-1"},
                )
    finally:
        engine.dispose()
    listed = run(env, "devices", "shared-serials").output.splitlines()
    assert listed == ["DMPXK2Q1JF81\telmwood\tELMWOOD-1", "DMPXK2Q1JF81\toakfield\tOAKFIELD-1"]


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
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a passphrase the school keeps\n")
    done = run(env, "backup", str(backup_file), "--passphrase-file", str(passphrase))
    assert done.exit_code == 0, done.output
    assert backup_file.stat().st_size > 10_000

    engine = create_engine(env["TROLLEY_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM device_events"))
        conn.execute(text("DELETE FROM devices"))
        conn.execute(text("UPDATE users SET name = 'changed'"))
    engine.dispose()
    assert _count(env, "SELECT count(*) FROM devices") == 0

    restored = run(env, "restore", str(backup_file), "--yes", "--passphrase-file", str(passphrase))
    assert restored.exit_code == 0, restored.output
    assert _count(env, "SELECT count(*) FROM devices") == 90
    assert _count(env, "SELECT count(*) FROM users") == users_before
    assert _count(env, "SELECT count(*) FROM users WHERE name = 'changed'") == 0
    # What the backup held, and the restore itself, recorded at the end of the trail.
    assert _count(env, "SELECT count(*) FROM activity_entries") == trail_before + 1
    assert _count(env, "SELECT count(*) FROM activity_entries WHERE action = 'backup.restored'")
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


def test_an_enrolment_payload_says_until_when_on_the_school_clock(
    sqlite_env: dict[str, str],
) -> None:
    """The technician reads the code's expiry as the school's clocks show it, not in UTC."""
    assert run(sqlite_env, "demo", "--seed-only").exit_code == 0
    engine = create_engine(sqlite_env["TROLLEY_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE schools SET timezone = 'Asia/Tokyo'"))
        result = CliRunner().invoke(
            main, ["devices", "enrol-payload", "OAK-IPAD-001"], env=sqlite_env
        )
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT max(expires_at) FROM enrolment_tokens")).scalar_one()
    finally:
        engine.dispose()
    assert result.exit_code == 0, result.output
    expires = datetime.fromisoformat(str(stored)).replace(tzinfo=UTC)
    tokyo = expires.astimezone(ZoneInfo("Asia/Tokyo"))
    said = re.search(r"\(valid once, until (.+)\)", result.output)
    assert said is not None and "UTC" not in said.group(1)
    assert said.group(1) == f"{tokyo:%H:%M} on {tokyo:%a} {tokyo.day} {tokyo:%b %Y}, school time"
