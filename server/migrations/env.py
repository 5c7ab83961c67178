"""Alembic environment: runs on the connection handed in by server.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import server.models_registry  # noqa: F401  (imports every model so metadata is complete)
from server.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("migrations need a connection or sqlalchemy.url")
        with create_engine(url).connect() as conn:
            _run_on(conn)
            conn.commit()
        return
    _run_on(connection)


def _run_on(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
