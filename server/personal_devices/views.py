"""Pages for staff personal devices: the register (SBM and head), photo use and reports."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from server.auth.permissions import Permission, has_permission, requires
from server.auth.services import school_users
from server.errors import TrolleyError
from server.extensions import db_session
from server.personal_devices import services
from server.personal_devices.forms import (
    AuthoriseForm,
    ConfirmForm,
    EntryForm,
    RemoveForm,
    ReportForm,
    WithdrawForm,
)
from server.personal_devices.models import PhotoDayState, ReportKind
from server.schools.services import when
from server.web import refusing

bp = Blueprint("personal_devices", __name__)
# The service checks the role as well: a second guard for the most personal register.
PERMISSION = Permission.PERSONAL_DEVICES
# A member of staff's own devices are theirs to see, whatever their role; the service checks.
OWN = Permission.ACCOUNT_USE


@bp.app_context_processor
def _personal_device_helpers() -> dict[str, object]:
    def personal_device_counts() -> services.Counts | None:
        if not current_user.is_authenticated or not services.can_see(current_user):
            return None
        return services.counts(db_session(), current_user)

    def personal_when(moment: datetime | None) -> str:
        """A stored time on the school's clock, as staff read it."""
        return when(moment, current_user.school)

    return {"personal_device_counts": personal_device_counts, "personal_when": personal_when}


def _owner_choices(form: EntryForm) -> None:
    people = school_users(db_session(), current_user.school_id)
    form.owner_id.choices = [("", "Not listed (type the name below)")] + [
        (str(p.id), f"{p.name} ({p.role.label})") for p in people if p.active
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
        today=services.school_today(db_session(), current_user.school_id),
    )


@bp.route("/personal-devices/new", methods=["GET", "POST"])
@requires(PERMISSION)
def new() -> Response | tuple[str, int]:
    services.check_can_see(current_user)
    form = EntryForm()
    _owner_choices(form)
    error = None
    if form.validate_on_submit():
        with refusing(None) as refused:
            services.add_entry(db_session(), current_user, form.values())
        if refused.error:
            error = _show_errors(form, refused.error)
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
        with refusing(None) as refused:
            services.update_entry(session, current_user, entry.id, form.values())
        if refused.error:
            error = _show_errors(form, refused.error)
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
        with refusing(None) as refused:
            services.remove(
                session, current_user, entry.id, form.reason.data or "", on=form.removed_on.value
            )
        if refused.error:
            error = _show_errors(form, refused.error)
        else:
            flash("Removed from the register; the entry is kept as history.", "success")
            return redirect(url_for("personal_devices.index"))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "personal_devices/remove.html", form=form, entry=entry, error=error
    ), status


@bp.get("/personal-devices/<int:entry_id>")
@requires(PERMISSION)
def show(entry_id: int) -> str:
    """One staff device: its photo authorisations, each day confirmed or not, its reports."""
    session = db_session()
    entry = services.get_entry(session, current_user, entry_id)
    return render_template(
        "personal_devices/show.html",
        entry=entry,
        authorisations=services.authorisations(session, entry),
        days=services.record_of_days(session, entry),
        reports=services.reports_for(session, entry),
        can_authorise=has_permission(current_user.role, Permission.PHOTOS_AUTHORISE),
        withdraw_form=WithdrawForm(),
    )


@bp.route("/personal-devices/<int:entry_id>/authorise", methods=["GET", "POST"])
@requires(Permission.PHOTOS_AUTHORISE)
def authorise(entry_id: int) -> Response | tuple[str, int]:
    session = db_session()
    entry = services.get_entry(session, current_user, entry_id)
    form = AuthoriseForm()
    error = None
    if form.validate_on_submit():
        assert form.starts_on.value is not None and form.ends_on.value is not None
        with refusing(None) as refused:
            services.authorise(
                session,
                current_user,
                entry.id,
                starts_on=form.starts_on.value,
                ends_on=form.ends_on.value,
                purpose=form.purpose.data,
            )
        if refused.error:
            error = _show_errors(form, refused.error)
        else:
            flash("Photo use authorised. The owner confirms each day in Trolley.", "success")
            return redirect(url_for("personal_devices.show", entry_id=entry.id))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "personal_devices/authorise.html", form=form, entry=entry, error=error
    ), status


@bp.post("/personal-devices/authorisations/<int:authorisation_id>/withdraw")
@requires(Permission.PHOTOS_AUTHORISE)
def withdraw(authorisation_id: int) -> Response:
    form = WithdrawForm()
    session = db_session()
    if not form.validate_on_submit():
        flash("Say why photo use is withdrawn.", "warning")
        return redirect(request.referrer or url_for("personal_devices.index"))
    with refusing() as refused:
        granted = services.withdraw(session, current_user, authorisation_id, form.reason.data or "")
    if not refused.error:
        flash("Photo use withdrawn; the record is kept.", "success")
        return redirect(url_for("personal_devices.show", entry_id=granted.device_id))
    return redirect(url_for("personal_devices.index"))


@bp.get("/my-devices")
@requires(OWN)
def mine() -> str:
    """A member of staff's own devices: photo use, today's confirmation, reporting a loss."""
    return render_template(
        "personal_devices/mine.html",
        devices=services.my_devices(db_session(), current_user),
        form=ConfirmForm(),
        moved=PhotoDayState.MOVED_AND_DELETED.value,
        not_used=PhotoDayState.NOT_USED.value,
    )


@bp.post("/my-devices/<int:entry_id>/photos")
@requires(OWN)
def confirm(entry_id: int) -> Response:
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash("Say what happened to the day's photos.", "warning")
        return redirect(url_for("personal_devices.mine"))
    with refusing() as refused:
        services.confirm_day(
            db_session(),
            current_user,
            entry_id,
            PhotoDayState(form.state.data),
            day=form.day.value,
        )
    if not refused.error:
        flash("Thank you: recorded with today's date and time.", "success")
    return redirect(url_for("personal_devices.mine"))


@bp.route("/my-devices/<int:entry_id>/report", methods=["GET", "POST"])
@requires(OWN)
def report(entry_id: int) -> Response | tuple[str, int]:
    """The owner (or the SBM or head) reports a loss, theft or new owner (P-LOSS-4)."""
    session = db_session()
    entry = services.visible_entry(session, current_user, entry_id)
    form = ReportForm()
    error = None
    if form.validate_on_submit():
        assert form.happened_on.value is not None
        with refusing(None) as refused:
            services.report(
                session,
                current_user,
                entry.id,
                kind=ReportKind(form.kind.data),
                happened_on=form.happened_on.value,
                details=form.details.data or "",
            )
        if refused.error:
            error = _show_errors(form, refused.error)
        else:
            flash("Reported. The headteacher has been told.", "success")
            if services.can_see(current_user):
                return redirect(url_for("personal_devices.show", entry_id=entry.id))
            return redirect(url_for("personal_devices.mine"))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "personal_devices/report.html", form=form, entry=entry, error=error
    ), status
