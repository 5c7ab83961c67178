"""The label page: choose devices and places, download a PDF or open a print view."""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse
from wtforms.fields.choices import SelectChoice

from server.auth.permissions import Permission, requires
from server.errors import ValidationFailed
from server.extensions import db_session
from server.labels import services
from server.labels.forms import LabelForm
from server.schools import services as places

bp = Blueprint("labels", __name__)


def _form() -> LabelForm:
    form = LabelForm(request.args)
    everywhere = places.locations(db_session(), current_user.school_id)
    options = sorted(((p.id, places.location_path(p)) for p in everywhere), key=lambda o: o[1])
    form.home.choices = [SelectChoice("", "Nowhere: just the tags above")] + [
        SelectChoice(str(pid), path) for pid, path in options
    ]
    form.places.choices = [SelectChoice(pid, path) for pid, path in options]
    return form


@bp.get("/labels")
@requires(Permission.DEVICES_READ)
def index() -> str:
    return render_template(
        "labels/index.html",
        form=_form(),
        base_url=current_app.extensions["trolley.settings"].base_url,
    )


def _print_view_headers(page: bytes) -> dict[str, str]:
    """Let the print view's own stylesheet (and nothing else inline) apply."""
    match = re.search(rb"<style>(.*?)</style>", page, re.S)
    style = match.group(1) if match else b""
    digest = base64.b64encode(hashlib.sha256(style).digest()).decode("ascii")
    return {
        "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{digest}'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    }


@bp.get("/labels/sheet")
@requires(Permission.DEVICES_READ)
def sheet() -> Response:
    """The chosen labels as a PDF download, or as an HTML page ready to print."""
    form = _form()
    if not form.validate():
        problems = [f"{form[name].label.text}: {errors[0]}" for name, errors in form.errors.items()]
        raise ValidationFailed("Some choices need correcting. " + " ".join(problems))
    home = form.home.data or ""
    chosen = services.choose_labels(
        db_session(),
        current_user.school_id,
        current_app.extensions["trolley.settings"].base_url,
        services.Selection(
            asset_tags=services.parse_tags(form.tags.data or ""),
            home_location_id=int(home) if home.isdigit() else None,
            location_ids=form.places.data or [],
            every_device=bool(form.every.data),
        ),
    )
    fmt = "html" if request.args.get("format") == "html" else "pdf"
    rendered = services.render_labels(
        chosen, layout=form.layout.data or "L7160", fmt=fmt, start_position=form.start.data or 1
    )
    content = rendered.parts[0]
    if fmt == "html":
        return Response(content, mimetype="text/html", headers=_print_view_headers(content))
    name = f"labels-{form.layout.data or 'L7160'}.pdf"
    return Response(
        content,
        mimetype=rendered.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/l/<int:location_id>")
@requires(Permission.LOCATIONS_READ)
def place(location_id: int) -> BaseResponse:
    """The URL on a place's label: that place's page, with what lives there and what is in."""
    found = services.place_for_label(db_session(), current_user.school_id, location_id)
    return redirect(url_for("schools.location", location_id=found.id))
