"""The home page: one per role, with cards that later features fill."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, g, render_template
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from server.auth.permissions import Permission, public, requires
from server.dashboard.services import ROLE_INTRO, home_data, waiting_for
from server.extensions import db_session
from server.waiting import Waiting

log = logging.getLogger(__name__)
bp = Blueprint("dashboard", __name__)


def _waiting() -> list[Waiting]:
    """What waits for the signed-in person, read once per request."""
    if "waiting" not in g:
        g.waiting = waiting_for(db_session(), current_user)
    found: list[Waiting] = g.waiting
    return found


@bp.app_context_processor
def _waiting_count() -> dict[str, object]:
    def waiting_count() -> int:
        if not current_user.is_authenticated:
            return 0
        try:
            return len(_waiting())
        except SQLAlchemyError:
            # The nav is on every page, error pages included: it must never break one.
            log.warning("could not read what waits for %s", current_user.id, exc_info=True)
            return 0

    return {"waiting_count": waiting_count}


@bp.get("/")
@requires(Permission.ACCOUNT_USE)
def home() -> str:
    data = home_data(db_session(), current_user)
    return render_template(
        "dashboard/home.html",
        data=data,
        intro=ROLE_INTRO[current_user.role],
        waiting=_waiting(),
    )


@bp.get("/favicon.ico")
@public
def favicon() -> Response:
    """The tab icon: browsers ask for it at this address on every page, logged in or not."""
    # Sent from memory, not streamed: it is a few kilobytes and no open file outlives the reply.
    icon = (Path(str(current_app.static_folder)) / "favicon.ico").read_bytes()
    response = Response(icon, mimetype="image/x-icon")
    response.cache_control.public = True
    response.cache_control.max_age = 86_400
    return response
