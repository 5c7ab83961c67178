"""Pages for the staff personal devices register: SBM and headteacher only (P-REG-6)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from server.auth.permissions import Permission, requires
from server.auth.services import school_users
from server.errors import TrolleyError
from server.extensions import db_session
from server.personal_devices import services
from server.personal_devices.forms import EntryForm, RemoveForm

bp = Blueprint("personal_devices", __name__)
# The service checks the role as well: a second guard for the most personal register.
PERMISSION = Permission.PERSONAL_DEVICES


@bp.app_context_processor
def _personal_device_helpers() -> dict[str, object]:
    def personal_device_counts() -> services.Counts | None:
        if not current_user.is_authenticated or not services.can_see(current_user):
            return None
        return services.counts(db_session(), current_user)

    return {"personal_device_counts": personal_device_counts}


def _owner_choices(form: EntryForm) -> None:
    people = school_users(db_session(), current_user.school_id)
    form.owner_id.choices = [("", "Not listed (type the name below)")] + [
        (str(p.id), f"{p.name} ({p.email})") for p in people if p.active
    ]


def _show_errors(form: FlaskForm, exc: TrolleyError) -> str | None:
    shown = False
    for issue in exc.details or []:
        name = {"owner": "owner_id"}.get(issue["field"], issue["field"])
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, issue["message"]]
            shown = True
    return None if shown else exc.message


@bp.get("/personal-devices")
@requires(PERMISSION)
def index() -> str:
    include_removed = request.args.get("removed") == "1"
    session = db_session()
    return render_template(
        "personal_devices/index.html",
        entries=services.list_entries(session, current_user, include_removed=include_removed),
        counts=services.counts(session, current_user),
        include_removed=include_removed,
    )


@bp.get("/personal-devices/print")
@requires(PERMISSION)
def printable() -> str:
    return render_template(
        "personal_devices/print.html",
        entries=services.list_entries(db_session(), current_user),
        school=current_user.school,
        today=date.today(),
    )


@bp.route("/personal-devices/new", methods=["GET", "POST"])
@requires(PERMISSION)
def new() -> Response | tuple[str, int]:
    services.check_can_see(current_user)
    form = EntryForm()
    _owner_choices(form)
    error = None
    if form.validate_on_submit():
        try:
            services.add_entry(db_session(), current_user, form.values())
        except TrolleyError as exc:
            db_session().rollback()
            error = _show_errors(form, exc)
        else:
            flash("Noted in the register.", "success")
            return redirect(url_for("personal_devices.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("personal_devices/form.html", form=form, entry=None, error=error), status


@bp.route("/personal-devices/<int:entry_id>/edit", methods=["GET", "POST"])
@requires(PERMISSION)
def edit(entry_id: int) -> Response | tuple[str, int]:
    session = db_session()
    entry = services.get_entry(session, current_user, entry_id)
    if request.method == "GET":
        form = EntryForm(
            formdata=None,
            obj=entry,
            owner_id=str(entry.owner_id) if entry.owner_id else "",
            noted_on=entry.noted_on.strftime("%d/%m/%Y"),
        )
    else:
        form = EntryForm()
    _owner_choices(form)
    error = None
    if form.validate_on_submit():
        try:
            services.update_entry(session, current_user, entry.id, form.values())
        except TrolleyError as exc:
            session.rollback()
            error = _show_errors(form, exc)
        else:
            flash("Saved.", "success")
            return redirect(url_for("personal_devices.index"))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "personal_devices/form.html", form=form, entry=entry, error=error
    ), status


@bp.route("/personal-devices/<int:entry_id>/remove", methods=["GET", "POST"])
@requires(PERMISSION)
def remove(entry_id: int) -> Response | tuple[str, int]:
    session = db_session()
    entry = services.get_entry(session, current_user, entry_id)
    form = RemoveForm()
    error = None
    if form.validate_on_submit():
        try:
            services.remove(
                session, current_user, entry.id, form.reason.data or "", on=form.removed_on.value
            )
        except TrolleyError as exc:
            session.rollback()
            error = _show_errors(form, exc)
        else:
            flash("Removed from the register; the entry is kept as history.", "success")
            return redirect(url_for("personal_devices.index"))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "personal_devices/remove.html", form=form, entry=entry, error=error
    ), status
