"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

import server.models_registry  # noqa: F401
from server.db import Base, head_revisions, schema_revisions


def test_migrated_schema_matches_the_models(database: tuple[str, Engine]) -> None:
    _url, engine = database
    assert schema_revisions(engine) == head_revisions()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
