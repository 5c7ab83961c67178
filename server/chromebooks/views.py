"""The Chromebooks page: linking the Google domain, syncing, and what needs attention."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, requires
from server.chromebooks import services
from server.chromebooks.forms import MAX_KEY_BYTES, AddForm, LinkForm
from server.crypto import SecretBox
from server.devices.models import Device
from server.errors import ValidationFailed
from server.extensions import db_session
from server.web import refusing

bp = Blueprint("chromebooks", __name__)


def _box() -> SecretBox:
    box: SecretBox = current_app.extensions["trolley.box"]
    return box


def _google() -> services.GoogleApi:
    return services.GoogleApi(root=current_app.extensions["trolley.settings"].google_api_root)


@bp.app_context_processor
def _google_panel() -> dict[str, object]:
    def google_for(device: Device) -> object:
        return services.google_facts(db_session(), device)

    def google_settings(row: services.GoogleDevice) -> object:
        return services.settings_for_device(db_session(), row)

    return {"google_for": google_for, "google_settings": google_settings}


def _back() -> Response:
    return redirect(url_for("chromebooks.index"))


@bp.get("/chromebooks")
@requires(Permission.GOOGLE_MANAGE)
def index() -> str:
    session = db_session()
    seen = services.overview(session, current_user.school_id)
    form = LinkForm(formdata=None)
    if seen.link is not None:
        form.customer_id.data = seen.link.customer_id
        form.admin_email.data = seen.link.admin_email
        form.school_networks.data = "\n".join(seen.link.school_networks)
    return render_template(
        "chromebooks/index.html",
        seen=seen,
        form=form,
        add=AddForm(formdata=None),
        settings=services.settings_by_unit(session, current_user.school_id),
        empty=EmptyForm(formdata=None),
        scopes=services.SCOPES,
    )


def _key_text(form: LinkForm) -> str | None:
    upload = form.key_file.data
    if not upload or not getattr(upload, "filename", ""):
        return None
    data = upload.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise ValidationFailed("That file is too large to be a service-account key.")
    try:
        return str(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValidationFailed("That file is not a service-account key (it is not text).") from None


@bp.post("/chromebooks/link")
@requires(Permission.GOOGLE_MANAGE)
def link() -> Response:
    form = LinkForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "warning")
        return _back()
    with refusing() as refused:
        services.save_link(
            db_session(),
            _box(),
            current_user,
            key_text=_key_text(form),
            customer_id=form.customer_id.data or "",
            admin_email=form.admin_email.data or "",
            school_networks=form.school_networks.data or "",
        )
    if not refused:
        flash("Saved. Now test the link to check Google lets Trolley in.", "success")
    return _back()


@bp.post("/chromebooks/link/test")
@requires(Permission.GOOGLE_MANAGE)
def test() -> Response:
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        linked = services.check_link(db_session(), _box(), _google(), current_user)
    if not refused:
        if linked.working:
            flash("The link works: Trolley can read Chromebooks and Chrome policy.", "success")
        else:
            flash("Google did not let Trolley do everything it needs; see below.", "warning")
    return _back()


@bp.post("/chromebooks/link/remove")
@requires(Permission.GOOGLE_MANAGE)
def remove() -> Response:
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        services.remove_link(db_session(), current_user)
    if not refused:
        flash("The Google link and its key are gone; Chromebooks can no longer be reached.", "info")
    return _back()


@bp.post("/chromebooks/sync")
@requires(Permission.GOOGLE_MANAGE)
def sync() -> Response:
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        result = services.sync_devices(
            db_session(), _box(), _google(), current_user.school_id, actor=current_user
        )
    if not refused:
        flash(result.words, "success")
    return _back()


@bp.post("/chromebooks/profiles/push")
@requires(Permission.GOOGLE_MANAGE)
def push() -> Response:
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        problems = services.push_profiles(db_session(), _box(), _google(), current_user)
    if not refused:
        for problem in problems:
            flash(problem, "warning")
        flash("Profiles sent to Google and read back; each setting's state is below.", "success")
    return _back()


@bp.post("/chromebooks/devices/<int:row_id>/add")
@requires(Permission.DEVICES_WRITE)
def add(row_id: int) -> Response:
    form = AddForm()
    if not form.validate_on_submit():
        flash("Enter the asset tag on its label.", "warning")
        return _back()
    with refusing() as refused:
        device = services.add_to_register(
            db_session(), current_user, row_id, form.asset_tag.data or ""
        )
    if refused:
        for message in refused.messages[1:]:
            flash(message, "warning")
        return _back()
    flash(f"{device.asset_tag} is in the register.", "success")
    return redirect(url_for("devices.detail", asset_tag=device.asset_tag))
