"""Command pages: buttons on the device page, the commands list and the approval queue."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, requires
from server.commands import services
from server.commands.models import CommandStatus
from server.devices.models import Device
from server.devices.services import get_device
from server.enrolment.services import active_identity
from server.errors import TrolleyError, ValidationFailed
from server.extensions import db_session

bp = Blueprint("commands", __name__)

ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "ping": ("ping", {}),
    "report_inventory": ("report_inventory", {}),
    "wipe_photos": ("wipe_photos", {}),
    "lock": ("lock", {}),
    "lost_mode_on": ("lost_mode", {"enabled": True}),
    "lost_mode_off": ("lost_mode", {"enabled": False}),
    "factory_reset": ("factory_reset", {}),
}


@bp.app_context_processor
def _device_channel() -> dict[str, object]:
    def channel(device: Device) -> dict[str, object]:
        session = db_session()
        return {
            "identity": active_identity(session, device),
            "commands": services.list_commands(
                session, device.school_id, device_id=device.id, limit=10
            ),
        }

    return {"device_channel": channel, "command_label": services.label, "command_form": EmptyForm}


ACTION_RULE = "/devices/<asset_tag>/commands/<any(" + ", ".join(ACTIONS) + "):action>"


@bp.post(ACTION_RULE)
@requires(Permission.COMMANDS_SEND)
def send(asset_tag: str, action: str) -> Response:
    EmptyForm().validate_on_submit()
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    command_type, args = ACTIONS[action]
    if command_type == "lost_mode" and args["enabled"]:
        args = {**args, "message": current_user.school.return_message}
    reason = (request.form.get("reason") or "").strip()[:500]
    try:
        (command,) = services.issue(
            session, current_user, [device], command_type, args, reason=reason
        )
    except TrolleyError as exc:
        session.rollback()
        flash(exc.message, "warning")
    else:
        if command.status is CommandStatus.PENDING_APPROVAL:
            flash(f"{services.label(command_type)} needs a second person to approve it.", "info")
        else:
            flash(f"{services.label(command_type)} is on its way to {device.asset_tag}.", "success")
    return redirect(url_for("devices.detail", asset_tag=asset_tag))


@bp.get("/commands")
@requires(Permission.DEVICES_READ)
def index() -> str:
    session = db_session()
    status_arg = request.args.get("status") or None
    try:
        status = CommandStatus(status_arg) if status_arg else None
    except ValueError:
        status = None
    type_arg = request.args.get("type") or None
    return render_template(
        "commands/index.html",
        commands=services.list_commands(
            session,
            current_user.school_id,
            status=status,
            command_type=type_arg if type_arg in services.LABELS else None,
            limit=200,
        ),
        approvals=services.pending_approvals(session, current_user.school_id),
        statuses=list(CommandStatus),
        types=services.LABELS,
        status=status_arg or "",
        type=type_arg or "",
        form=EmptyForm(formdata=None),
    )


def _approve(**which: Any) -> Response:
    EmptyForm().validate_on_submit()
    try:
        approved = services.approve(db_session(), current_user, **which)
    except TrolleyError as exc:
        db_session().rollback()
        flash(exc.message, "warning")
    else:
        flash(f"Approved {len(approved)} command(s); they are on their way.", "success")
    return redirect(url_for("commands.index"))


@bp.post("/commands/<int:command_id>/approve")
@requires(Permission.COMMANDS_APPROVE)
def approve(command_id: int) -> Response:
    return _approve(command_id=command_id)


@bp.post("/commands/batches/<batch_id>/approve")
@requires(Permission.COMMANDS_APPROVE)
def approve_batch(batch_id: str) -> Response:
    return _approve(batch_id=batch_id)


@bp.post("/commands/<int:command_id>/cancel")
@requires(Permission.COMMANDS_SEND)
def cancel(command_id: int) -> Response:
    EmptyForm().validate_on_submit()
    try:
        services.cancel(db_session(), current_user, command_id)
    except ValidationFailed as exc:
        flash(exc.message, "warning")
    except TrolleyError as exc:
        db_session().rollback()
        flash(exc.message, "warning")
    else:
        flash("Cancelled.", "success")
    return redirect(
        request.referrer
        if request.referrer and request.referrer.startswith(request.host_url)
        else url_for("commands.index")
    )
