"""Apple's MDM endpoints for iPads (the enrolment profile, check-in, connect) and the device panel.

The iPad authenticates every check-in and connect with its signature (checked in the services);
the enrolment profile with its one-time code. None is a browser form, so none carries CSRF. The
iPads page, where staff upload the school's push credentials, is an ordinary page with CSRF.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response as Redirect

from device_profiles.compilers.apple import MEDIA_TYPE
from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, public, requires
from server.config import Settings
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device
from server.errors import ValidationFailed
from server.extensions import csrf, db_session
from server.ipads import services
from server.ipads.forms import PushForm
from server.ipads.services.credentials import MAX_FILE_BYTES
from server.ipads.services.identity import MAX_BODY
from server.web import refusing

bp = Blueprint("ipads", __name__)


def _box() -> SecretBox:
    box: SecretBox = current_app.extensions["trolley.box"]
    return box


def _settings() -> Settings:
    settings: Settings = current_app.extensions["trolley.settings"]
    return settings


@bp.app_context_processor
def _ipad_panel() -> dict[str, object]:
    def ipad_for(device: Device) -> object:
        return services.ipad_facts(db_session(), device)

    return {"ipad_for": ipad_for}


def _body() -> bytes:
    if (request.content_length or 0) > MAX_BODY:
        from server.errors import ValidationFailed

        raise ValidationFailed("The message is too large.")
    return request.get_data(cache=False)


@bp.get(services.ENROL_PATH + "<token>")
@public
def enrolment_profile(token: str) -> Response:
    """Safari on the iPad downloads its signed enrolment profile with a one-time code."""
    session = db_session(write=True)  # spends the code and records the new identity
    signed = services.enrolment_profile(session, _box(), _settings(), token, now=utcnow())
    response = Response(signed, mimetype=MEDIA_TYPE)
    response.headers["Content-Disposition"] = 'attachment; filename="trolley.mobileconfig"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.put(services.CHECKIN_PATH)
@csrf.exempt
@public
def checkin() -> Response:
    """Authenticate, TokenUpdate and CheckOut, signed by the iPad's identity."""
    services.check_in(
        db_session(),
        _box(),
        _settings(),
        _body(),
        request.headers.get("Mdm-Signature"),
        now=utcnow(),
    )
    return Response(b"", status=200)


@bp.put(services.CONNECT_PATH)
@csrf.exempt
@public
def connect() -> Response:
    """The iPad's answer to the last command (or Idle); the body of the reply is the next one."""
    out = services.connect(
        db_session(), _box(), _body(), request.headers.get("Mdm-Signature"), now=utcnow()
    )
    return Response(out, status=200, mimetype="application/xml" if out else None)


def _upload(field: object, what: str) -> bytes | None:
    if not isinstance(field, FileStorage) or not field.filename:
        return None
    data = field.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValidationFailed(f"That file is too large to be {what}.")
    return bytes(data)


@bp.get("/ipads")
@requires(Permission.APPLE_MANAGE)
def settings_page() -> str:
    """The school's push credentials, their expiry, and how to get them from Apple."""
    session, now = db_session(), utcnow()
    credential = services.push_credential(session, current_user.school_id)
    return render_template(
        "ipads/settings.html",
        credential=credential,
        warning=services.expiry_warning(credential, current_user.school, now),
        form=PushForm(formdata=None),
        empty=EmptyForm(formdata=None),
    )


@bp.post("/ipads/push")
@requires(Permission.APPLE_MANAGE)
def upload_push() -> Redirect:
    """Check and keep the school's push credentials (sealed)."""
    form = PushForm()
    if not form.validate_on_submit():
        flash("The form could not be read; try again.", "warning")
        return redirect(url_for("ipads.settings_page"))
    now = utcnow()
    with refusing() as refused:
        if form.auth.data == "token":
            p8 = _upload(form.p8_file.data, "a .p8 key")
            if p8 is None:
                raise ValidationFailed("Choose the .p8 key file.")
            secret = services.check_token_key(
                p8=p8,
                key_id=form.key_id.data or "",
                team_id=form.team_id.data or "",
                topic=form.topic.data or "",
            )
        else:
            certificate = _upload(form.certificate_file.data, "a push certificate")
            if certificate is None:
                raise ValidationFailed("Choose the push certificate file.")
            secret = services.check_certificate(
                certificate=certificate,
                key=_upload(form.key_file.data, "a private key"),
                password=form.passphrase.data or "",
                school=current_user.school,
                now=now,
            )
        services.save_credential(db_session(), _box(), current_user, secret, now=now)
    if not refused:
        flash("Saved. iPads with commands waiting are now woken through Apple.", "success")
    return redirect(url_for("ipads.settings_page"))


@bp.post("/ipads/push/remove")
@requires(Permission.APPLE_MANAGE)
def remove_push() -> Redirect:
    """Forget the push credentials; iPads then collect commands at their own check-ins."""
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        services.remove_credential(db_session(), current_user)
    if not refused:
        flash("The push credentials are gone; iPads now wait for their own check-ins.", "info")
    return redirect(url_for("ipads.settings_page"))
