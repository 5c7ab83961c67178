"""The technician's enrolment page: a one-time QR code per device."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import current_user
from markupsafe import Markup

from provisioning.qr import qr_svg
from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, requires
from server.db import utcnow
from server.devices.services import get_device, search_devices
from server.enrolment import services
from server.errors import ValidationFailed
from server.extensions import db_session
from server.ipads import services as ipads

bp = Blueprint("enrolment", __name__)


@bp.get("/enrolment")
@requires(Permission.DEVICES_ENROL)
def index() -> str:
    session = db_session()
    enrolled = {i.device_id: i for i in services.identities(session, current_user.school_id)}
    page = search_devices(session, current_user.school_id, per_page=500)
    return render_template(
        "enrolment/index.html", devices=page.items, enrolled=enrolled, form=EmptyForm(formdata=None)
    )


@bp.route("/enrolment/<asset_tag>", methods=["GET", "POST"])
@requires(Permission.DEVICES_ENROL)
def code(asset_tag: str) -> str:
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    payload = token = ipad_link = None
    form = EmptyForm()
    settings = current_app.extensions["trolley.settings"]
    if form.validate_on_submit():
        if device.platform.value == "ipados":
            ipad_link = ipads.enrolment_link(session, current_user, device, settings, now=utcnow())
        else:
            token, made = services.issue_enrolment_token(session, current_user, device, settings)
            payload = made.encode()
    elif form.is_submitted():
        raise ValidationFailed("This form has expired. Reload the page and try again.")
    shown = ipad_link.url if ipad_link else payload
    return render_template(
        "enrolment/code.html",
        device=device,
        ipad_link=ipad_link,
        ipad=ipads.ipad_facts(session, device) if device.platform.value == "ipados" else None,
        payload=payload,
        token=token,
        qr=Markup(qr_svg(shown, size="260px")) if shown else None,  # noqa: S704 (our own SVG)
        identity=services.active_identity(session, device),
        form=EmptyForm(formdata=None),
    )
