"""The activity trail page."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user

from server.activity import services
from server.auth.permissions import Permission, has_permission, requires
from server.extensions import db_session

bp = Blueprint("activity", __name__)


@bp.get("/activity")
@requires(Permission.ACTIVITY_READ)
def index() -> str:
    session = db_session()
    before = request.args.get("before", "")
    entries = services.recent(
        session,
        current_user.school_id,
        before_seq=int(before) if before.isdigit() else None,
        include_filtering=has_permission(current_user.role, Permission.FILTERING_MANAGE),
    )
    check = services.verify_chain(session) if request.args.get("verify") == "1" else None
    return render_template(
        "activity/index.html",
        entries=entries,
        check=check,
        names=services.actor_names(session, entries),
        action_label=services.action_label,
    )
