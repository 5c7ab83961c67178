"""Register pages: search, one device, add and edit, status, moves, and the label URL."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.permissions import Permission, requires
from server.devices import services
from server.devices.forms import DecisionForm, DeviceForm, MoveForm, StatusForm
from server.devices.labels import event_label
from server.devices.models import ChangeRequestStatus, DeviceStatus, Platform
from server.devices.schemas import DeviceQuery
from server.devices.services.parsing import format_pounds
from server.errors import NotFound, TrolleyError, ValidationFailed
from server.extensions import db_session
from server.schools import services as places
from server.web import refusing

bp = Blueprint("devices", __name__)


@bp.app_context_processor
def _register_helpers() -> dict[str, object]:
    """For the home card: a function, so the count is only taken when the card shows."""

    def register_moves_waiting() -> int:
        return services.moves_waiting(db_session(), current_user.school_id)

    return {"register_moves_waiting": register_moves_waiting}


@bp.app_template_filter("event_kind")
def event_kind(kind: str) -> str:
    """`{{ e.kind|event_kind }}`: a timeline entry's kind in words."""
    return event_label(kind)


@bp.app_template_filter("pounds")
def _pounds(pence: int | None) -> str:
    """Money on every page as '£1,329.00'."""
    return format_pounds(pence)


def _query() -> DeviceQuery:
    """The register's filters from the address bar; anything unreadable is simply ignored."""
    clean = {k: v for k, v in request.args.items() if v and k in DeviceQuery.model_fields}
    try:
        return DeviceQuery.model_validate(clean)
    except ValueError:
        return DeviceQuery()


@bp.get("/devices")
@requires(Permission.DEVICES_READ)
def index() -> str:
    query = _query()
    page = services.search_devices(db_session(), current_user.school_id, **query.model_dump())
    storage = places.locations(db_session(), current_user.school_id)
    return render_template(
        "devices/index.html",
        page=page,
        query=query,
        statuses=list(DeviceStatus),
        platforms=list(Platform),
        locations=storage,
        args=request.args,
    )


@bp.get("/devices/<asset_tag>")
@requires(Permission.DEVICES_READ)
def detail(asset_tag: str) -> str:
    session = db_session()
    device = services.get_device(session, current_user.school_id, asset_tag)
    return render_template(
        "devices/detail.html",
        device=device,
        events=services.timeline(session, device),
        pending_move=services.pending_move(session, device),
        protection=services.protection_of(session, device),
        network=services.network_of(session, device),
        status_form=StatusForm(formdata=None, status=device.status.value),
        # Disposal has its own page (a batch with the agency and erasure evidence).
        next_statuses=sorted(
            s.value for s in services.TRANSITIONS[device.status] if s is not DeviceStatus.DISPOSED
        ),
    )


@bp.get("/d/<asset_tag>")
@requires(Permission.DEVICES_READ)
def label(asset_tag: str) -> Response:
    """The URL printed in a label's QR code (no personal data): straight to the device."""
    return redirect(url_for("devices.detail", asset_tag=asset_tag))


def _location_choices(form_field: object, blank: str) -> None:
    options = [("", blank)] + [
        (str(loc.id), places.location_path(loc))
        for loc in places.locations(db_session(), current_user.school_id)
    ]
    form_field.choices = options  # type: ignore[attr-defined]


def _form_page(
    form: DeviceForm, device: object, warnings: list[dict[str, str]], status: int = 200
) -> tuple[str, int]:
    return render_template("devices/form.html", form=form, device=device, warnings=warnings), status


def _show_errors(form: DeviceForm, exc: TrolleyError) -> None:
    names = {"purchase_cost_pence": "cost"}
    for issue in exc.details or []:
        field = getattr(form, names.get(issue["field"], issue["field"]), None)
        if field is not None:
            field.errors = [*field.errors, issue["message"]]


@bp.route("/devices/new", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def new() -> Response | tuple[str, int]:
    form = DeviceForm()
    _location_choices(form.home_location_id, "Not decided yet")
    if form.validate_on_submit():
        values = form.values()
        values["home_location_id"] = (
            int(form.home_location_id.data) if form.home_location_id.data else None
        )
        values["home_slot"] = form.home_slot.data
        try:
            device, check = services.create_device(
                db_session(), current_user, services.DeviceFields(**values)
            )
        except ValidationFailed as exc:
            db_session().rollback()
            _show_errors(form, exc)
            return _form_page(form, None, [], 400)
        for warning in check.warnings:
            flash(warning["message"], "warning")
        flash(f"{device.asset_tag} is in the register.", "success")
        return redirect(url_for("devices.detail", asset_tag=device.asset_tag))
    return _form_page(form, None, [], 400 if request.method == "POST" else 200)


@bp.route("/devices/<asset_tag>/edit", methods=["GET", "POST"])
@requires(Permission.DEVICES_WRITE)
def edit(asset_tag: str) -> Response | tuple[str, int]:
    session = db_session()
    device = services.get_device(session, current_user.school_id, asset_tag)
    if request.method == "GET":
        form = DeviceForm(
            formdata=None,
            obj=device,
            platform=device.platform.value,
            purchase_date=device.purchase_date.strftime("%d/%m/%Y") if device.purchase_date else "",
            warranty_until=device.warranty_until.strftime("%d/%m/%Y")
            if device.warranty_until
            else "",
            cost=format_pounds(device.purchase_cost_pence)
            if device.purchase_cost_pence is not None
            else "",
        )
    else:
        form = DeviceForm()
    # Where it lives changes only through a move the SBM sees (P-REG-2), never on this form.
    del form.home_location_id
    del form.home_slot
    if form.validate_on_submit():
        try:
            device, check = services.update_device(session, current_user, device, form.values())
        except ValidationFailed as exc:
            session.rollback()
            _show_errors(form, exc)
            return _form_page(form, device, [], 400)
        for warning in check.warnings:
            flash(warning["message"], "warning")
        flash("Saved.", "success")
        return redirect(url_for("devices.detail", asset_tag=device.asset_tag))
    return _form_page(form, device, [], 400 if request.method == "POST" else 200)


@bp.post("/devices/<asset_tag>/status")
@requires(Permission.DEVICES_WRITE)
def status(asset_tag: str) -> Response:
    session = db_session()
    device = services.get_device(session, current_user.school_id, asset_tag)
    form = StatusForm()
    if not form.validate_on_submit():
        raise ValidationFailed("Choose the new status and say why.")
    with refusing() as refused:
        services.change_status(
            session, current_user, device, DeviceStatus(form.status.data), form.reason.data or ""
        )
    if not refused:
        flash(f"{device.asset_tag} is now {device.status.label.lower()}.", "success")
    return redirect(url_for("devices.detail", asset_tag=device.asset_tag))


@bp.route("/devices/<asset_tag>/move", methods=["GET", "POST"])
@requires(Permission.LOANS_USE)
def move(asset_tag: str) -> Response | tuple[str, int]:
    session = db_session()
    device = services.get_device(session, current_user.school_id, asset_tag)
    form = MoveForm()
    _location_choices(form.location_id, "Choose…")
    error = None
    if form.validate_on_submit():
        with refusing(None) as refused:
            move_request = services.request_home_change(
                session,
                current_user,
                device,
                int(form.location_id.data),
                form.slot.data,
                form.reason.data or "",
            )
        if refused.error:
            details = refused.error.details or []
            error = refused.message + "".join(f" {d['message']}" for d in details)
        else:
            if move_request.status is ChangeRequestStatus.APPROVED:
                flash(
                    f"{device.asset_tag} now lives in {move_request.to_location.name}.", "success"
                )
            else:
                flash("Sent to the school business manager for approval.", "success")
            return redirect(url_for("devices.detail", asset_tag=device.asset_tag))
    status_code = 400 if request.method == "POST" else 200
    return render_template("devices/move.html", form=form, device=device, error=error), status_code


@bp.get("/devices/moves")
@requires(Permission.DEVICES_READ)
def moves() -> str:
    session = db_session()
    return render_template(
        "devices/moves.html",
        pending=services.move_requests(
            session, current_user.school_id, status=ChangeRequestStatus.PENDING
        ),
        history=[
            r
            for r in services.move_requests(session, current_user.school_id)
            if r.status is not ChangeRequestStatus.PENDING
        ][:100],
        decision=DecisionForm(formdata=None),
    )


@bp.post("/devices/moves/<int:request_id>/<any(approve, decline):verdict>")
@requires(Permission.LOCATIONS_APPROVE)
def decide(request_id: int, verdict: str) -> Response:
    form = DecisionForm()
    form.validate_on_submit()
    try:
        decided = services.decide_home_change(
            db_session(),
            current_user,
            request_id,
            approve=verdict == "approve",
            reason=form.reason.data or "",
        )
    except NotFound:
        raise
    except TrolleyError as exc:
        db_session().rollback()
        flash(exc.message + "".join(f" {d['message']}" for d in (exc.details or [])), "warning")
    else:
        flash(f"Move of {decided.device.asset_tag} {decided.status.value}.", "success")
    return redirect(url_for("devices.moves"))
