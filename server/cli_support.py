"""What every domain's cli.py shares: the lazy context, domain errors as messages, the school."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from server.config import (
    ConfigError,
    Locations,
    Settings,
    load_locations,
    load_settings,
    with_demo_settings,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.schools.models import School


class Context:
    """Settings and the database, built lazily so `--help` needs neither."""

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.overrides = overrides or {}
        self._settings: Settings | None = None
        self._db: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.environ(), self.overrides)
            except ConfigError as exc:
                raise click.ClickException(f"configuration: {exc}") from exc
        return self._settings

    def environ(self) -> dict[str, str]:
        """The process's settings, over the demo's when run where `trolley demo` ran."""
        return with_demo_settings(os.environ)

    @property
    def locations(self) -> Locations:
        """Where the database and instance folder are, without needing any key."""
        try:
            return load_locations(self.environ(), self.overrides)
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc

    @property
    def db(self) -> Any:
        if self._db is None:
            from server.db import Database

            self._db = Database(self.settings.database_url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None


pass_ctx = click.make_pass_decorator(Context)


def fail_on_domain_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into a one-line message and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from server.errors import TrolleyError

        try:
            return fn(*args, **kwargs)
        except TrolleyError as exc:
            raise click.ClickException(exc.message) from exc

    return run


def pick_school(session: Session, slug: str | None) -> School:
    """The school named by --school, or the only school there is."""
    from server.auth.services import get_school

    if slug:
        return get_school(session, slug)
    from server.schools.models import School

    found = session.scalars(select(School).limit(2)).all()
    if len(found) != 1:
        raise click.ClickException(
            "say which school with --school SLUG"
            if found
            else "there is no school yet: run `trolley schools create SLUG NAME` first"
        )
    return found[0]
