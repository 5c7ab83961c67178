"""The bell, the notifications page and the e-mail delivery page."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, has_permission, requires
from server.extensions import db_session
from server.notifications import services
from server.notifications.models import EmailStatus, Notification

bp = Blueprint("notifications", __name__)
log = logging.getLogger(__name__)
PAGE_SIZE = 50


@bp.app_context_processor
def _notification_helpers() -> dict[str, object]:
    """Functions for the bell and the home card; they query only when a template calls them."""

    def notifications_unread() -> int | None:
        if not current_user.is_authenticated:
            return None
        try:
            return services.unread_count(db_session(), current_user)
        except SQLAlchemyError:
            # The bell is on every page, error pages included: it must never break one.
            log.warning("could not count unread notifications", exc_info=True)
            return None

    def notifications_latest_unread(limit: int = 3) -> Sequence[Notification]:
        if not current_user.is_authenticated:
            return []
        return services.latest_unread(db_session(), current_user, limit=limit)

    def email_problems() -> dict[EmailStatus, int] | None:
        if not current_user.is_authenticated or not has_permission(
            current_user.role, Permission.ACTIVITY_READ
        ):
            return None
        return services.email_counts(db_session(), current_user.school_id)

    return {
        "notifications_unread": notifications_unread,
        "notifications_latest_unread": notifications_latest_unread,
        "email_problems": email_problems,
    }


@bp.get("/notifications")
@requires(Permission.ACCOUNT_USE)
def index() -> str:
    before = request.args.get("before", "")
    notices = services.list_for_user(
        db_session(),
        current_user,
        limit=PAGE_SIZE,
        before_id=int(before) if before.isdigit() and len(before) < 12 else None,
    )
    return render_template(
        "notifications/index.html", notices=notices, form=EmptyForm(), page_size=PAGE_SIZE
    )


@bp.post("/notifications/<int:notification_id>/read")
@requires(Permission.ACCOUNT_USE)
def mark_read(notification_id: int) -> Response:
    services.mark_read(db_session(), current_user, notification_id)
    return redirect(url_for("notifications.index"))


@bp.post("/notifications/read-all")
@requires(Permission.ACCOUNT_USE)
def mark_all_read() -> Response:
    marked = services.mark_all_read(db_session(), current_user)
    flash("All your notifications are marked as read." if marked else "Nothing was unread.", "info")
    return redirect(url_for("notifications.index"))


@bp.get("/notifications/email")
@requires(Permission.ACTIVITY_READ)
def email() -> str:
    session = db_session()
    try:
        chosen = EmailStatus(request.args.get("status", ""))
    except ValueError:
        chosen = None
    statuses = [chosen] if chosen else [EmailStatus.QUEUED, EmailStatus.FAILED]
    return render_template(
        "notifications/email.html",
        messages=services.email_outbox(session, current_user.school_id, statuses=statuses),
        counts=services.email_counts(session, current_user.school_id),
        chosen=chosen,
        statuses=list(EmailStatus),
        configured=bool(current_app.extensions["trolley.settings"].smtp_host),
        form=EmptyForm(),
    )


@bp.post("/notifications/email/<int:email_id>/retry")
@requires(Permission.ACTIVITY_READ)
def retry(email_id: int) -> Response:
    message = services.retry_email(db_session(), current_user, email_id)
    flash(
        f"The e-mail to {message.to_address} is back in the queue and will go out shortly.",
        "success",
    )
    return redirect(url_for("notifications.email"))
