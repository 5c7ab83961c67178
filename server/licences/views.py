"""Licence pages: the reconciliation, one licence's installs, add and edit (P-REG-5)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, has_permission, requires
from server.devices.models import Device
from server.devices.services.parsing import format_pounds
from server.errors import TrolleyError
from server.extensions import db_session
from server.licences import services
from server.licences.forms import LicenceForm
from server.licences.models import InstalledApp, Licence
from server.web import refusing

bp = Blueprint("licences", __name__)
FORM_NAMES = {"cost_pence": "cost"}


@bp.app_context_processor
def _licence_helpers() -> dict[str, object]:
    def licence_attention() -> services.Reconciliation | None:
        if not current_user.is_authenticated or not has_permission(
            current_user.role, Permission.REPORTS_READ
        ):
            return None
        return services.reconcile(db_session(), current_user.school_id, with_unlicensed=False)

    def installed_apps(device: Device) -> list[InstalledApp]:
        return list(services.apps_on_device(db_session(), device))

    return {"licence_attention": licence_attention, "installed_apps": installed_apps}


def _show_errors(form: LicenceForm, exc: TrolleyError) -> str | None:
    shown = False
    for issue in exc.details or []:
        field = getattr(form, FORM_NAMES.get(issue["field"], issue["field"]), None)
        if field is not None:
            field.errors = [*field.errors, issue["message"]]
            shown = True
    return None if shown else exc.message


@bp.get("/licences")
@requires(Permission.REPORTS_READ)
def index() -> str:
    return render_template(
        "licences/index.html",
        result=services.reconcile(db_session(), current_user.school_id),
        window=services.EXPIRY_WARNING_DAYS,
    )


@bp.get("/licences/print")
@requires(Permission.REPORTS_READ)
def printable() -> str:
    return render_template(
        "licences/print.html",
        result=services.reconcile(db_session(), current_user.school_id),
        school=current_user.school,
        today=date.today(),
        window=services.EXPIRY_WARNING_DAYS,
    )


@bp.get("/licences/<int:licence_id>")
@requires(Permission.REPORTS_READ)
def detail(licence_id: int) -> str:
    session = db_session()
    line = services.licence_line(session, current_user.school_id, licence_id)
    return render_template(
        "licences/detail.html",
        line=line,
        installs=services.devices_with_app(session, current_user.school_id, line.licence.app_id),
        form=EmptyForm(formdata=None),
    )


def _form_page(
    form: LicenceForm, licence: Licence | None, error: str | None, status: int
) -> tuple[str, int]:
    return render_template("licences/form.html", form=form, licence=licence, error=error), status


def _after_save(licence: Licence) -> Response:
    # A technician edits licences but does not read reports: they go home, not to a 403.
    if has_permission(current_user.role, Permission.REPORTS_READ):
        return redirect(url_for("licences.detail", licence_id=licence.id))
    return redirect(url_for("dashboard.home"))


@bp.route("/licences/new", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def new() -> Response | tuple[str, int]:
    form = LicenceForm()
    error = None
    if form.validate_on_submit():
        with refusing(None) as refused:
            licence = services.create_licence(db_session(), current_user, form.values())
        if refused.error:
            error = _show_errors(form, refused.error)
        else:
            flash(f"Licence for {licence.app_name} recorded.", "success")
            return _after_save(licence)
    return _form_page(form, None, error, 400 if form.is_submitted() else 200)


@bp.route("/licences/<int:licence_id>/edit", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def edit(licence_id: int) -> Response | tuple[str, int]:
    session = db_session()
    licence = services.get_licence(session, current_user.school_id, licence_id)
    if request.method == "GET":
        form = LicenceForm(
            formdata=None,
            obj=licence,
            expires_on=licence.expires_on.strftime("%d/%m/%Y") if licence.expires_on else "",
            cost=format_pounds(licence.cost_pence) if licence.cost_pence is not None else "",
        )
    else:
        form = LicenceForm()
    error = None
    if form.validate_on_submit():
        with refusing(None) as refused:
            services.update_licence(session, current_user, licence.id, form.values())
        if refused.error:
            error = _show_errors(form, refused.error)
        else:
            flash("Saved.", "success")
            return _after_save(licence)
    return _form_page(form, licence, error, 400 if form.is_submitted() else 200)


@bp.post("/licences/<int:licence_id>/delete")
@requires(Permission.DEVICES_WRITE)
def delete(licence_id: int) -> Response:
    session = db_session()
    licence = services.get_licence(session, current_user.school_id, licence_id)
    name = licence.app_name
    services.delete_licence(session, current_user, licence.id)
    flash(f"The licence for {name} was deleted.", "success")
    if has_permission(current_user.role, Permission.REPORTS_READ):
        return redirect(url_for("licences.index"))
    return redirect(url_for("dashboard.home"))
