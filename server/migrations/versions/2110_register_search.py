"""register search: every word of a search is looked for in an index of the devices' own words

SQLite: an FTS5 table over asset tag, serial, make and model with the trigram tokenizer (finds
part of a word, any case), reading its content from `devices` and kept in step by triggers.
PostgreSQL: a pg_trgm GIN index on the same words, lower-cased. Neither is in the models: the
migrations test leaves them out by name (server/devices/services/search.py).

A later migration that rebuilds `devices` on SQLite (batch "move and copy") drops the triggers
with the old table and must create them again; tests/server/devices/test_search_words.py checks.

Revision ID: 2110_register_search
Revises: 0500_register, 1210_accounts
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "2110_register_search"
# `devices` was last changed by these two (1210_accounts rebuilds it on SQLite).
down_revision = ("0500_register", "1210_accounts")
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

SQLITE = [
    "CREATE VIRTUAL TABLE device_words USING fts5(asset_tag, serial, make, model, "
    "content='devices', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER device_words_insert AFTER INSERT ON devices BEGIN
        INSERT INTO device_words(rowid, asset_tag, serial, make, model)
        VALUES (new.id, new.asset_tag, new.serial, new.make, new.model);
    END""",
    """CREATE TRIGGER device_words_delete AFTER DELETE ON devices BEGIN
        INSERT INTO device_words(device_words, rowid, asset_tag, serial, make, model)
        VALUES ('delete', old.id, old.asset_tag, old.serial, old.make, old.model);
    END""",
    """CREATE TRIGGER device_words_update AFTER UPDATE OF asset_tag, serial, make, model
    ON devices BEGIN
        INSERT INTO device_words(device_words, rowid, asset_tag, serial, make, model)
        VALUES ('delete', old.id, old.asset_tag, old.serial, old.make, old.model);
        INSERT INTO device_words(rowid, asset_tag, serial, make, model)
        VALUES (new.id, new.asset_tag, new.serial, new.make, new.model);
    END""",
    "INSERT INTO device_words(device_words) VALUES ('rebuild')",
]
# The expression search.device_words() builds; the query must repeat it to use the index.
WORDS = "lower((((((asset_tag || ' ') || serial) || ' ') || make) || ' ') || model)"


def _trigram_schema(bind: sa.Connection) -> str | None:
    """Where pg_trgm lives, installing it in `public` (not the migrating schema, so dropping
    that schema never takes the extension from another); None if it cannot be installed."""
    found = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )
    ).scalar()
    if found is not None:
        return str(found)
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
    except sa.exc.DBAPIError:
        log.warning(
            "pg_trgm could not be installed: register search works, without its index. "
            "A database superuser can run CREATE EXTENSION pg_trgm SCHEMA public."
        )
        return None
    return "public"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
        return
    schema = _trigram_schema(bind)
    if schema is not None:
        opclass = f'"{schema}".gin_trgm_ops'
        op.execute(f"CREATE INDEX ix_devices_words_trgm ON devices USING gin (({WORDS}) {opclass})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("device_words_insert", "device_words_update", "device_words_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS device_words")
    else:
        op.execute("DROP INDEX IF EXISTS ix_devices_words_trgm")
