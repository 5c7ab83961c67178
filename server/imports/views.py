"""Pages for the SBM: upload a spreadsheet, check it, import it; download the register."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse
from wtforms.fields.choices import SelectChoice

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, requires
from server.errors import ValidationFailed
from server.extensions import db_session
from server.imports import services
from server.imports.forms import MappingForm, UploadForm
from server.imports.models import ImportUpload
from server.schools import services as places
from server.schools.models import ALLOWED_PARENTS, LocationKind
from server.web import refusing

bp = Blueprint("imports", __name__)
SHOWN_CHANGES = 500


def _upload_page(form: UploadForm, error: str | None, status: int) -> tuple[str, int]:
    return render_template(
        "imports/upload.html", form=form, error=error, columns=services.COLUMNS
    ), status


@bp.get("/imports")
@requires(Permission.DEVICES_WRITE)
def upload() -> tuple[str, int]:
    return _upload_page(UploadForm(formdata=None), None, 200)


@bp.post("/imports")
@requires(Permission.DEVICES_WRITE)
def receive() -> BaseResponse | tuple[str, int]:
    form = UploadForm()
    if not form.validate_on_submit():
        return _upload_page(form, None, 400)
    # The request itself is capped (MAX_CONTENT_LENGTH); the service says if it is too big.
    data = form.file.data.read()
    try:
        kept = services.start_upload(
            db_session(), current_user, filename=form.file.data.filename or "", data=data
        )
    except ValidationFailed as exc:
        db_session().rollback()
        return _upload_page(form, exc.message, 400)
    return redirect(url_for("imports.check", upload_id=kept.id))


def _preview_page(upload: ImportUpload, form: MappingForm | None, status: int) -> tuple[str, int]:
    session = db_session()
    plan = services.preview_upload(session, current_user, upload)
    parents = [
        p
        for p in places.locations(session, current_user.school_id)
        if p.kind in ALLOWED_PARENTS[LocationKind.ROOM]
    ]
    if form is None:
        form = MappingForm(
            formdata=None,
            data={
                "columns": [m or "" for m in plan.mapping],
                "create_locations": upload.create_locations,
                "parent": str(upload.location_parent_id or ""),
                "header_row": plan.header_row,
                "retag": list(upload.retag or []),
            },
        )
    form.parent.choices = [SelectChoice("", "Where Trolley suggests")] + [
        SelectChoice(str(p.id), places.location_path(p)) for p in parents
    ]
    changes = [r for r in plan.rows if r.action != "unchanged"]
    return render_template(
        "imports/preview.html",
        upload=upload,
        plan=plan,
        form=form,
        commit_form=EmptyForm(formdata=None),
        upload_form=UploadForm(formdata=None),
        letters=[services.column_letter(i) for i in range(len(plan.headings))],
        changes=changes[:SHOWN_CHANGES],
        more_changes=max(0, len(changes) - SHOWN_CHANGES),
        headings={c.key: c.heading for c in services.COLUMNS},
    ), status


@bp.get("/imports/<upload_id>")
@requires(Permission.DEVICES_WRITE)
def check(upload_id: str) -> tuple[str, int]:
    upload = services.get_upload(db_session(), current_user, upload_id)
    return _preview_page(upload, None, 200)


@bp.post("/imports/<upload_id>")
@requires(Permission.DEVICES_WRITE)
def choose(upload_id: str) -> BaseResponse | tuple[str, int]:
    session = db_session()
    upload = services.get_upload(session, current_user, upload_id)
    form = MappingForm()
    if not form.validate_on_submit():
        return _preview_page(upload, form, 400)
    parent = form.parent.data or ""
    with refusing() as refused:
        services.choose_options(
            session,
            current_user,
            upload,
            mapping=[value or None for value in form.columns.data] or None,
            create_locations=form.create_locations.data,
            location_parent_id=int(parent) if parent.isdigit() else None,
            header_row=form.header_row.data,
            retag=form.retag.data or [],
        )
    if refused.error is not None:
        return _preview_page(upload, form, refused.error.status)
    return redirect(url_for("imports.check", upload_id=upload.id))


@bp.post("/imports/<upload_id>/commit")
@requires(Permission.DEVICES_WRITE)
def commit(upload_id: str) -> BaseResponse | tuple[str, int]:
    session = db_session()
    upload = services.get_upload(session, current_user, upload_id)
    if not EmptyForm().validate_on_submit():
        raise ValidationFailed("This form has expired. Reload the page and try again.")
    try:
        _plan, result = services.commit_upload(session, current_user, upload)
    except ValidationFailed:
        # Something changed since the preview: show the file's problems as they are now.
        session.rollback()
        flash("Nothing was imported: the file has problems. They are listed below.", "warning")
        return _preview_page(upload, None, 400)
    places_note = (
        f" Added to Places: {', '.join(result.places_created)}." if result.places_created else ""
    )
    flash(
        f"Imported {upload.filename}: {result.created} new, {result.updated} updated, "
        f"{result.unchanged} unchanged.{places_note}",
        "success",
    )
    return redirect(url_for("devices.index"))


@bp.get("/devices/export")
@requires(Permission.DEVICES_READ)
def export() -> Response:
    """The register as a download, in the same columns the import reads (P-REG-1)."""
    fmt = request.args.get("format", "csv")
    if fmt not in services.MEDIA_TYPES:
        raise ValidationFailed("Choose CSV or Excel (format=csv or format=xlsx).")
    exported = services.export_register(db_session(), current_user.school_id, fmt)
    name = services.export_filename(current_user.school.slug, fmt)
    return Response(
        exported.content,
        mimetype=exported.media_type.split(";")[0],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
