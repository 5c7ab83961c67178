"""Disposal pages: batches, adding devices, completing, the printable record (P-DISPOSE-1)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.models import Role
from server.auth.permissions import Permission, has_permission, requires
from server.devices.models import Device
from server.devices.services import get_device
from server.disposals import confirmations, services
from server.disposals.forms import AddDeviceForm, BatchForm, CompleteForm, ErasureForm, ItemForm
from server.disposals.models import DeviceErasure, DisposalStatus, ErasureMethod, WipeMethod
from server.errors import TrolleyError
from server.extensions import db_session
from server.web import refusing, unconfirmed

bp = Blueprint("disposals", __name__)


@bp.app_context_processor
def _disposal_helpers() -> dict[str, object]:
    """Data for the home card and the device panel; queried only when a template asks."""

    def disposal_drafts() -> list[services.BatchSummary]:
        if not current_user.is_authenticated or not has_permission(
            current_user.role, Permission.DEVICES_WRITE
        ):
            return []
        return services.list_batches(
            db_session(), current_user.school_id, status=DisposalStatus.DRAFT
        )

    def disposal_ready_count() -> int:
        if not current_user.is_authenticated:
            return 0
        return len(services.ready_to_dispose(db_session(), current_user.school_id))

    def describe_erasure(erasure: DeviceErasure) -> str:
        """An erasure's line on the reader's school clock."""
        return services.describe_erasure(erasure, current_user.school)

    def device_disposal(device: Device) -> dict[str, Any]:
        session = db_session()
        return {
            "item": services.batch_of(session, device),
            "erasures": services.erasures_of(session, device),
            "refusal": services.refusal(session, device),
            "form": ErasureForm(formdata=None),
        }

    return {
        "disposal_drafts": disposal_drafts,
        "disposal_ready_count": disposal_ready_count,
        "device_disposal": device_disposal,
        "describe_erasure": describe_erasure,
    }


def _apply_errors(form: FlaskForm, exc: TrolleyError) -> str | None:
    """Put each problem beside its field; return the message when no field shows it."""
    shown = False
    for issue in exc.details or []:
        field = getattr(form, issue.get("field") or "", None)
        if field is not None:
            field.errors = [*field.errors, issue["message"]]
            shown = True
    return None if shown else exc.message


@bp.get("/disposals")
@requires(Permission.DEVICES_READ)
def index() -> str:
    session = db_session()
    return render_template(
        "disposals/index.html",
        batches=services.list_batches(session, current_user.school_id),
        ready=services.ready_to_dispose(session, current_user.school_id),
    )


@bp.route("/disposals/new", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def new() -> Response | tuple[str, int]:
    form = BatchForm()
    if form.validate_on_submit():
        batch = services.create_batch(db_session(), current_user, form.values())
        flash(
            f"Disposal {batch.reference} started. Add the devices going to the agency.", "success"
        )
        return redirect(url_for("disposals.detail", batch_id=batch.id))
    status = 400 if form.is_submitted() else 200
    return render_template("disposals/form.html", form=form, batch=None), status


@bp.route("/disposals/<int:batch_id>/edit", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def edit(batch_id: int) -> Response | tuple[str, int]:
    session = db_session()
    batch = services.get_batch(session, current_user.school_id, batch_id)
    if not batch.is_draft:
        flash(
            f"Disposal {batch.reference} is completed; it is a record and cannot change.", "warning"
        )
        return redirect(url_for("disposals.detail", batch_id=batch.id))
    if request.method == "GET":
        form = BatchForm(
            formdata=None,
            obj=batch,
            collection_date=batch.collection_date.strftime("%d/%m/%Y")
            if batch.collection_date
            else "",
        )
    else:
        form = BatchForm()
    if form.validate_on_submit():
        services.update_batch(session, current_user, batch.id, form.values())
        flash("Saved.", "success")
        return redirect(url_for("disposals.detail", batch_id=batch.id))
    status = 400 if form.is_submitted() else 200
    return render_template("disposals/form.html", form=form, batch=batch), status


def _detail_page(
    batch_id: int,
    *,
    add_form: AddDeviceForm | None = None,
    complete_form: CompleteForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    session = db_session()
    batch = services.get_batch(session, current_user.school_id, batch_id)
    return render_template(
        "disposals/detail.html",
        batch=batch,
        problems=services.completion_problems(session, batch) if batch.is_draft else [],
        ready=services.ready_to_dispose(session, current_user.school_id) if batch.is_draft else [],
        add_form=add_form or AddDeviceForm(formdata=None),
        complete_form=complete_form or CompleteForm(formdata=None),
        item_form=ItemForm(formdata=None),
        empty=EmptyForm(formdata=None),
        is_sbm=current_user.role is Role.SBM,
        asking_complete=confirmations.complete(batch)
        if services.can_complete(session, current_user, batch)
        else None,
        error=error,
    ), status


@bp.get("/disposals/<int:batch_id>")
@requires(Permission.DEVICES_READ)
def detail(batch_id: int) -> tuple[str, int]:
    return _detail_page(batch_id)


@bp.post("/disposals/<int:batch_id>/devices")
@requires(Permission.DEVICES_WRITE)
def add_device(batch_id: int) -> Response | tuple[str, int]:
    session = db_session()
    batch = services.get_batch(session, current_user.school_id, batch_id)
    form = AddDeviceForm()
    if not form.validate_on_submit():
        return _detail_page(batch.id, add_form=form, status=400)
    with refusing(None) as refused:
        item = services.add_device(
            session,
            current_user,
            batch.id,
            form.asset_tag.data or "",
            wipe_method=WipeMethod(form.wipe_method.data),
            certificate_line=form.certificate_line.data,
            erasure_evidence=form.erasure_evidence.data,
            erasure_method=ErasureMethod(form.erasure_method.data)
            if form.erasure_method.data
            else None,
        )
    if refused.error:
        error = _apply_errors(form, refused.error)
        return _detail_page(batch.id, add_form=form, error=error, status=refused.error.status)
    flash(f"{item.device.asset_tag} added to {batch.reference}.", "success")
    return redirect(url_for("disposals.detail", batch_id=batch.id))


def _flash_problem(exc: TrolleyError) -> None:
    flash(
        exc.message + "".join(f" {d['message']}" for d in (exc.details or [])),
        "warning",
    )


@bp.post("/disposals/<int:batch_id>/devices/<asset_tag>/edit")
@requires(Permission.DEVICES_WRITE)
def edit_device(batch_id: int, asset_tag: str) -> Response:
    session = db_session()
    form = ItemForm()
    if not form.validate_on_submit():
        services.get_batch(session, current_user.school_id, batch_id)
        flash("Choose a wipe method; a certificate line is up to 64 characters.", "warning")
        return redirect(url_for("disposals.detail", batch_id=batch_id))
    with refusing(None) as refused:
        services.update_device(
            session,
            current_user,
            batch_id,
            asset_tag,
            wipe_method=WipeMethod(form.wipe_method.data),
            certificate_line=form.certificate_line.data or "",
        )
    if refused.error:
        if refused.error.status == 404:
            raise refused.error
        _flash_problem(refused.error)
    else:
        flash(f"{asset_tag} updated.", "success")
    return redirect(url_for("disposals.detail", batch_id=batch_id))


@bp.post("/disposals/<int:batch_id>/devices/<asset_tag>/remove")
@requires(Permission.DEVICES_WRITE)
def remove_device(batch_id: int, asset_tag: str) -> Response:
    session = db_session()
    with refusing(None) as refused:
        services.remove_device(session, current_user, batch_id, asset_tag)
    if refused.error:
        if refused.error.status == 404:
            raise refused.error
        _flash_problem(refused.error)
    else:
        flash(f"{asset_tag} taken out of the batch; it stays in the register.", "success")
    return redirect(url_for("disposals.detail", batch_id=batch_id))


@bp.post("/disposals/<int:batch_id>/complete")
@requires(Permission.DEVICES_WRITE)
def complete(batch_id: int) -> Response | tuple[str, int]:
    session = db_session()
    batch = services.get_batch(session, current_user.school_id, batch_id)
    form = CompleteForm()
    if not form.validate_on_submit():
        return _detail_page(batch.id, complete_form=form, status=400)
    if services.can_complete(session, current_user, batch) and (
        asking := unconfirmed(confirmations.complete(batch))
    ):
        return asking
    with refusing(None) as refused:
        services.complete_batch(session, current_user, batch.id)
    if refused.error:
        if refused.error.status == 403:
            raise refused.error
        _flash_problem(refused.error)
        return redirect(url_for("disposals.detail", batch_id=batch_id))
    flash(
        f"Disposal {batch.reference} completed: its devices are disposed of and have left the "
        "register. Print the disposal record for your files.",
        "success",
    )
    return redirect(url_for("disposals.detail", batch_id=batch_id))


@bp.post("/disposals/<int:batch_id>/discard")
@requires(Permission.DEVICES_WRITE)
def discard(batch_id: int) -> Response:
    session = db_session()
    with refusing(None) as refused:
        tags = services.discard_batch(session, current_user, batch_id)
    if refused.error:
        if refused.error.status == 404:
            raise refused.error
        _flash_problem(refused.error)
        return redirect(url_for("disposals.detail", batch_id=batch_id))
    flash(
        f"Draft discarded. {len(tags)} device{'s' if len(tags) != 1 else ''} stay in the register.",
        "success",
    )
    return redirect(url_for("disposals.index"))


@bp.get("/disposals/<int:batch_id>/record")
@requires(Permission.DEVICES_READ)
def printable(batch_id: int) -> str:
    batch = services.get_batch(db_session(), current_user.school_id, batch_id)
    return render_template("disposals/record.html", batch=batch, school=current_user.school)


@bp.post("/devices/<asset_tag>/erasure")
@requires(Permission.DEVICES_WRITE)
def erasure(asset_tag: str) -> Response:
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    form = ErasureForm()
    if not form.validate_on_submit():
        flash("Choose what was done and describe the evidence.", "warning")
        return redirect(url_for("devices.detail", asset_tag=device.asset_tag))
    with refusing(None) as refused:
        services.record_erasure(
            session, current_user, device, ErasureMethod(form.method.data), form.evidence.data or ""
        )
    if refused.error:
        _flash_problem(refused.error)
    else:
        flash(f"Recorded. {device.asset_tag} can now join a disposal batch.", "success")
    return redirect(url_for("devices.detail", asset_tag=device.asset_tag))
