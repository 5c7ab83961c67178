"""The home page: one per role, with cards that later features fill."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from server.auth.permissions import Permission, requires
from server.dashboard.services import ROLE_INTRO, home_data
from server.extensions import db_session

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@requires(Permission.ACCOUNT_USE)
def home() -> str:
    data = home_data(db_session(), current_user)
    return render_template(
        "dashboard/home.html",
        data=data,
        intro=ROLE_INTRO[current_user.role],
    )
