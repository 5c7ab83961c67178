"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

import server.models_registry  # noqa: F401
from server.db import Base, alembic_config, head_revisions, make_engine, migrate, schema_revisions
from server.devices.services.search import POSTGRES_INDEX, SQLITE_TABLE


def _not_search_index(name: str | None, type_: str, _parent: object) -> bool:
    """The register's word index (an FTS5 table and its shadow tables, or an expression index)
    is built by its migration alone; test_search_words checks it."""
    if type_ == "table" and name and name.startswith(SQLITE_TABLE):
        return False
    return not (type_ == "index" and name == POSTGRES_INDEX)


def _heads_before(revision: str) -> set[str]:
    """The heads of the migrations that neither are `revision` nor come after it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    everything = list(script.walk_revisions())
    later = {revision}
    grew = True
    while grew:
        grew = False
        for rev in everything:
            if rev.revision not in later and set(rev._all_down_revisions) & later:
                later.add(rev.revision)
                grew = True
    earlier = {rev.revision for rev in everything} - later
    parents = {p for rev in everything if rev.revision in earlier for p in rev._all_down_revisions}
    return earlier - parents


def test_migrated_schema_matches_the_models(database: tuple[str, Engine]) -> None:
    _url, engine = database
    assert schema_revisions(engine) == head_revisions()
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _not_search_index}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_rebuilding_a_table_on_sqlite_keeps_every_row_that_points_at_it(tmp_path: Path) -> None:
    """Accounts' migration rebuilds `devices` and `users` on SQLite (a constraint cannot be
    dropped in place); with foreign keys on, dropping the old table would delete every device
    event, command and token pointing at it. Existing tokens keep working, for a while."""
    engine = make_engine(f"sqlite:///{tmp_path / 'upgrade.db'}")
    for head in sorted(_heads_before("1210_accounts")):
        migrate(engine, head)
    stamp = "2025-01-06 09:00:00.000000"
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO schools VALUES (1, 'oak', 'Oak', 'Europe/London', '-', :at)",
            "INSERT INTO users (id, school_id, email, name, role, password_hash, active, "
            "session_nonce, created_at) VALUES (1, 1, 'a@oak.example', 'A', 'teacher', 'x', 1, "
            "'n', :at)",
            "INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
            "VALUES (1, 'script', 'trl_abc', 'h', :at)",
            "INSERT INTO devices (id, school_id, asset_tag, serial, platform, make, model, status, "
            "created_at, updated_at) VALUES (1, 1, 'OAK-1', 'SER1', 'ipados', 'Apple', 'iPad', "
            "'in_service', :at, :at)",
            "INSERT INTO device_events (school_id, device_id, at, kind, summary, actor_id, "
            "details) VALUES (1, 1, :at, 'created', 'Added', 1, '{}')",
        ):
            conn.execute(text(sql), {"at": stamp})
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM device_events")).scalar_one() == 1
        token = conn.execute(text("SELECT scope, expires_at FROM api_tokens")).one()
        assert token.scope == "read_write" and token.expires_at is not None
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    engine.dispose()


def test_devices_erased_before_the_upgrade_read_as_erased_after_it(tmp_path: Path) -> None:
    """P-REG-7: a device whose erasure was recorded before `erased_at` existed gets its latest
    erasure's time, so what it reported before then is not counted as protection."""
    engine = make_engine(f"sqlite:///{tmp_path / 'upgrade.db'}")
    for head in sorted(_heads_before("2160_device_erased_at")):
        migrate(engine, head)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO schools VALUES (1, 'oak', 'Oak', 'Europe/London', '-', :at)"),
            {"at": "2025-01-06 09:00:00.000000"},
        )
        for device in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO devices (id, school_id, asset_tag, serial, platform, make, "
                    "model, status, created_at, updated_at) VALUES (:id, 1, :tag, :tag, "
                    "'ipados', 'Apple', 'iPad', 'in_service', :at, :at)"
                ),
                {"id": device, "tag": f"OAK-{device}", "at": "2025-01-06 09:00:00.000000"},
            )
        for at in ("2025-02-01 10:00:00.000000", "2025-03-01 10:00:00.000000"):
            conn.execute(
                text(
                    "INSERT INTO device_erasures (school_id, device_id, method, source, "
                    "confirmed_at, recorded_at) VALUES (1, 1, 'factory_reset', "
                    "'device_acknowledgement', :at, :at)"
                ),
                {"at": at},
            )
    migrate(engine)
    with engine.connect() as conn:
        erased = {i: at for i, at in conn.execute(text("SELECT id, erased_at FROM devices"))}
    assert erased == {1: "2025-03-01 10:00:00.000000", 2: None}
    engine.dispose()
