"""Flask extensions, created unbound and attached in create_app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

login_manager = LoginManager()
csrf = CSRFProtect()


def db_session(*, write: bool | None = None) -> Session:
    """The request's session: writing requests take the write lock up front (SQLite).

    `write=True` marks a GET that writes (a device's one-time download) as a writing request.
    """
    from flask import current_app, g, request

    session: Session | None = g.get("_trolley_db")
    if session is None:
        database = current_app.extensions["trolley.db"]
        if write is None:
            write = request.method not in {"GET", "HEAD", "OPTIONS"}
        session = g._trolley_db = database.session(write=write)
    return session


def close_db_session(_exc: BaseException | None = None) -> None:
    from flask import g

    session = g.pop("_trolley_db", None)
    if session is not None:
        session.close()
