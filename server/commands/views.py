"""Command pages: buttons on the device page, the commands list and the approval queue."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, requires
from server.auth.services import check_stepped_up
from server.commands import confirmations, services
from server.commands.models import CommandStatus, FreezeState
from server.db import utcnow
from server.devices.models import Device
from server.devices.services import get_device
from server.enrolment.services import active_identity
from server.errors import Forbidden, TrolleyError, ValidationFailed
from server.extensions import db_session
from server.web import Confirmation, current_login, refusing, unconfirmed

log = logging.getLogger(__name__)
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
            "reachable": services.can_reach(session, device),
            "commands": services.list_commands(
                session, device.school_id, device_id=device.id, limit=10
            ),
        }

    def asking(device: Device, action: str) -> Confirmation | None:
        return confirmations.send(device, action) if confirmations.asks(action) else None

    def fleet_freeze() -> Any:
        if not current_user.is_authenticated:
            return None
        try:
            return services.current_freeze(db_session(), current_user.school_id)
        except SQLAlchemyError:
            # The banner is on every page, error pages included: it must never break one.
            log.warning("could not read the school's freeze", exc_info=True)
            return None

    return {
        "device_channel": channel,
        "command_label": services.label,
        "command_form": EmptyForm,
        "command_asking": asking,
        "fleet_freeze": fleet_freeze,
    }


ACTION_RULE = "/devices/<asset_tag>/commands/<any(" + ", ".join(ACTIONS) + "):action>"


@bp.post(ACTION_RULE)
@requires(Permission.COMMANDS_SEND)
def send(asset_tag: str, action: str) -> Response:
    EmptyForm().validate_on_submit()
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    if confirmations.asks(action) and (asking := unconfirmed(confirmations.send(device, action))):
        return asking
    command_type, args = ACTIONS[action]
    if command_type == "lost_mode" and args["enabled"]:
        args = {**args, "message": current_user.school.return_message}
    reason = (request.form.get("reason") or "").strip()[:500]
    with refusing() as refused:
        (command,) = services.issue(
            session, current_user, [device], command_type, args, reason=reason
        )
    if not refused:
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
    listed = services.list_commands(
        session,
        current_user.school_id,
        status=status,
        command_type=type_arg if type_arg in services.LABELS else None,
        limit=200,
    )
    approvals = services.pending_approvals(session, current_user.school_id)
    proved = bool(approvals) and _proved_recently()
    return render_template(
        "commands/index.html",
        commands=listed,
        approvals=approvals,
        # Before a fresh proof that it is them, Approve goes to that proof first (the server
        # sends it there), so the question is asked once, after it, not twice.
        asking_approval={
            a.key: confirmations.approval_of(a) if proved else None for a in approvals
        },
        asking_reject={c.id: confirmations.rejection_of(c) for c in listed},
        statuses=list(CommandStatus),
        types=services.LABELS,
        status=status_arg or "",
        type=type_arg or "",
        form=EmptyForm(formdata=None),
    )


def _proved_recently() -> bool:
    """Whether the person proved it is them recently enough to approve without stepping up."""
    login = current_login()
    try:
        check_stepped_up(login.stepped_up_at if login else None, utcnow())
    except Forbidden:
        return False
    return True


def _approve(key: str, **which: Any) -> Response:
    EmptyForm().validate_on_submit()
    login = current_login()
    stepped_up_at = login.stepped_up_at if login else None
    with refusing() as stale:
        # Prove it is you first, so the question about consequences is asked once, not twice.
        check_stepped_up(stepped_up_at, utcnow())
    if stale.error:
        return redirect(url_for("auth.step_up", next=url_for("commands.index")))
    if asking := unconfirmed(confirmations.approve(db_session(), current_user.school_id, key)):
        return asking
    with refusing() as refused:
        approved = services.approve(
            db_session(),
            current_user,
            stepped_up_at=stepped_up_at,
            **which,
        )
    if refused.error and refused.error.code == "step_up_required":
        return redirect(url_for("auth.step_up", next=url_for("commands.index")))
    if not refused:
        flash(f"Approved {len(approved)} command(s); they are on their way.", "success")
    return redirect(url_for("commands.index"))


@bp.post("/commands/<int:command_id>/approve")
@requires(Permission.COMMANDS_APPROVE)
def approve(command_id: int) -> Response:
    return _approve(str(command_id), command_id=command_id)


@bp.post("/commands/batches/<batch_id>/approve")
@requires(Permission.COMMANDS_APPROVE)
def approve_batch(batch_id: str) -> Response:
    return _approve(batch_id, batch_id=batch_id)


@bp.post("/commands/<int:command_id>/cancel")
@requires(Permission.COMMANDS_SEND)
def cancel(command_id: int) -> Response:
    EmptyForm().validate_on_submit()
    rejecting = confirmations.reject(db_session(), current_user.school_id, command_id)
    if rejecting and (asking := unconfirmed(rejecting)):
        return asking
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


@bp.get("/commands/freeze")
@requires(Permission.DEVICES_READ)
def freeze_page() -> str:
    session = db_session()
    return render_template(
        "commands/freeze.html",
        freeze=services.current_freeze(session, current_user.school_id),
        history=services.freeze_history(session, current_user.school_id),
        asking_freeze=confirmations.freeze(session, current_user.school_id),
        asking_lift=confirmations.lift(session, current_user),
        form=EmptyForm(formdata=None),
    )


@bp.post("/commands/freeze")
@requires(Permission.COMMANDS_FREEZE)
def freeze() -> Response:
    EmptyForm().validate_on_submit()
    if asking := unconfirmed(confirmations.freeze(db_session(), current_user.school_id)):
        return asking
    reason = (request.form.get("reason") or "").strip()[:500]
    with refusing() as refused:
        found = services.freeze(db_session(), current_user, reason=reason)
    if not refused:
        if found.state is FreezeState.FROZEN:
            flash("Destructive commands are frozen for the school.", "success")
        else:
            flash("Asked: a second administrator, or the headteacher, must confirm.", "info")
    return redirect(url_for("commands.freeze_page"))


@bp.post("/commands/freeze/lift")
@requires(Permission.COMMANDS_FREEZE)
def lift_freeze() -> Response:
    EmptyForm().validate_on_submit()
    lifting = confirmations.lift(db_session(), current_user)
    if lifting and (asking := unconfirmed(lifting)):
        return asking
    with refusing() as refused:
        found = services.lift_freeze(db_session(), current_user)
    if not refused:
        if found.state is FreezeState.LIFTED:
            flash("The freeze is lifted.", "success")
        else:
            flash("Asked: the freeze stays until a second person confirms.", "info")
    return redirect(url_for("commands.freeze_page"))
