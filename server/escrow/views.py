"""PIN escrow on the device page: deposit, and a logged reveal for technicians."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, make_response, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.permissions import Permission, requires
from server.devices.models import Device
from server.devices.services import get_device
from server.escrow import services
from server.escrow.forms import DepositForm, RevealForm
from server.escrow.models import SecretKind
from server.extensions import db_session
from server.web import refusing

bp = Blueprint("escrow", __name__)


@bp.app_context_processor
def _escrow_panel() -> dict[str, object]:
    def escrow_for(device: Device) -> dict[str, object]:
        return {
            "entries": services.history_for_device(db_session(), device),
            "deposit": DepositForm(formdata=None),
            "reveal": RevealForm(formdata=None),
        }

    return {"escrow_for": escrow_for}


@bp.post("/devices/<asset_tag>/escrow")
@requires(Permission.DEVICES_ENROL)
def deposit(asset_tag: str) -> Response:
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    form = DepositForm()
    if not form.validate_on_submit():
        flash("Enter the PIN, passcode or password to keep.", "warning")
    else:
        with refusing() as refused:
            services.deposit(
                session,
                current_app.extensions["trolley.box"],
                current_user,
                device,
                SecretKind(form.kind.data),
                form.secret.data or "",
                label=form.label.data or "",
            )
        if not refused:
            flash(
                "Kept safely. Only a technician can read it, and every read is recorded.", "success"
            )
    return redirect(url_for("devices.detail", asset_tag=asset_tag))


@bp.post("/escrow/<int:escrow_id>/reveal")
@requires(Permission.ESCROW_READ)
def reveal(escrow_id: int) -> Response | tuple[str, int]:
    form = RevealForm()
    if not form.validate_on_submit():
        flash("Say why you need it.", "warning")
        return redirect(url_for("dashboard.home"))
    entry, secret = services.reveal(
        db_session(),
        current_app.extensions["trolley.box"],
        current_user,
        escrow_id,
        reason=form.reason.data or "",
    )
    response = make_response(render_template("escrow/revealed.html", entry=entry, secret=secret))
    response.headers["Cache-Control"] = "no-store"
    return response
