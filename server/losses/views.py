"""Loss pages: report a loss, the case page, the printable incident record, the breach log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, has_permission, requires
from server.db import utcnow
from server.devices.models import Device
from server.extensions import db_session
from server.losses import confirmations, services
from server.losses.forms import (
    LOCAL_FORMAT,
    AssessmentForm,
    AwarenessForm,
    CloseForm,
    DecisionForm,
    DismissForm,
    IcoForm,
    ReportForm,
    ResetForm,
    SettingsForm,
)
from server.losses.models import LossKind, LossReport, Outcome, RiskLevel
from server.schools.services import from_local, local
from server.web import Confirmation, Refusal, refusing, unconfirmed

bp = Blueprint("losses", __name__)


def _manager() -> bool:
    return bool(
        current_user.is_authenticated
        and has_permission(current_user.role, Permission.LOSSES_MANAGE)
    )


@bp.app_context_processor
def _loss_helpers() -> dict[str, object]:
    """Data for the home card and the device page; queried only when a template asks."""

    def losses_open() -> list[tuple[LossReport, services.Clock]]:
        if not _manager():
            return []
        return services.open_losses(db_session(), current_user.school_id)

    def losses_mine() -> list[tuple[LossReport, services.Clock]]:
        if not current_user.is_authenticated:
            return []
        mine = services.list_losses(db_session(), current_user, open_only=True, limit=10)
        return [(loss, services.clock(loss)) for loss in mine]

    def losses_per_term() -> list[tuple[str, int]]:
        if not current_user.is_authenticated:
            return []
        terms = services.term_log(db_session(), current_user.school_id)
        return [(t.name, len(t.entries)) for t in terms[:3]]

    def losses_possible() -> int:
        if not _manager():
            return 0
        return services.open_offer_count(db_session(), current_user.school_id)

    def loss_for_device(device: Device) -> LossReport | None:
        return services.open_loss_for(db_session(), device)

    return {
        "losses_open": losses_open,
        "losses_mine": losses_mine,
        "losses_per_term": losses_per_term,
        "losses_possible": losses_possible,
        "loss_for_device": loss_for_device,
    }


def _local_input(moment: datetime) -> datetime:
    """A stored time as a naive local time, for a date-and-time box."""
    return local(moment, current_user.school).replace(tzinfo=None)


@bp.get("/losses")
@requires(Permission.LOSSES_REPORT)
def index() -> str:
    session = db_session()
    losses = services.list_losses(session, current_user)
    manager = _manager()
    return render_template(
        "losses/index.html",
        rows=[(loss, services.clock(loss)) for loss in losses],
        manager=manager,
        possible=services.possible_losses(session, current_user.school_id) if manager else [],
        plain=EmptyForm(formdata=None),
        dismiss=DismissForm(formdata=None),
    )


@bp.post("/losses/possible/<int:offer_id>/report")
@requires(Permission.LOSSES_MANAGE)
def report_possible(offer_id: int) -> Response:
    """P-LOSS-1: the one action that reports an offered device lost."""
    if not EmptyForm().validate_on_submit():
        flash("This form has expired. Reload the page and try again.", "warning")
        return redirect(url_for("losses.index", _anchor="possible"))
    with refusing() as refused:
        loss = services.report_possible_loss(db_session(), current_user, offer_id)
    if refused:
        return redirect(url_for("losses.index", _anchor="possible"))
    flash(f"{loss.device.asset_tag} is reported lost; lost mode is on its way.", "success")
    return redirect(url_for("losses.detail", loss_id=loss.id))


@bp.post("/losses/possible/<int:offer_id>/dismiss")
@requires(Permission.LOSSES_MANAGE)
def dismiss_possible(offer_id: int) -> Response:
    form = DismissForm()
    if not form.validate_on_submit():
        flash("Say why the device is not lost.", "warning")
        return redirect(url_for("losses.index", _anchor="possible"))
    with refusing() as refused:
        offer = services.dismiss_possible_loss(
            db_session(), current_user, offer_id, note=form.note.data or ""
        )
    if not refused:
        flash(f"{offer.device.asset_tag} is recorded as not lost.", "success")
    return redirect(url_for("losses.index", _anchor="possible"))


@bp.route("/losses/new", methods=["GET", "POST"])
@requires(Permission.LOSSES_REPORT)
def new() -> Response | tuple[str, int]:
    form = ReportForm()
    if request.method == "GET":
        form.asset_tag.data = (request.args.get("asset_tag") or "").strip()[:32]
        form.last_seen_at.data = _local_input(utcnow()).replace(second=0, microsecond=0)
    problem = None
    if form.validate_on_submit():
        with refusing(None) as refused:
            loss = services.report_loss(
                db_session(),
                current_user,
                asset_tag=form.asset_tag.data or "",
                kind=LossKind(form.kind.data),
                last_seen_at=from_local(form.last_seen_at.data, current_user.school),
                last_seen_where=form.last_seen_where.data or "",
                circumstances=form.circumstances.data or "",
                police_reference=form.police_reference.data,
            )
        if refused:
            status = _show_errors(form, refused)
            return render_template("losses/new.html", form=form, problem=refused.message), status
        flash(
            f"Thank you. {loss.device.asset_tag} is reported {loss.kind.value} and the "
            "headteacher has been told.",
            "success",
        )
        return redirect(url_for("losses.detail", loss_id=loss.id))
    status = 400 if form.is_submitted() else 200
    if status == 400:
        problem = "Some details are missing or need correcting; see below."
    return render_template("losses/new.html", form=form, problem=problem), status


def _show_errors(form: FlaskForm, refused: Refusal) -> int:
    """Show each refused field's message beside its box; the refusal's HTTP status."""
    assert refused.error is not None
    details = refused.error.details if isinstance(refused.error.details, list) else []
    for issue in details:
        field = getattr(form, issue.get("field") or "", None)
        if field is not None:
            field.errors = [*field.errors, issue["message"]]
    return refused.error.status


def _forms(loss: LossReport, found: services.Case, bound: dict[str, FlaskForm]) -> dict[str, Any]:
    """Every form on the case page, prefilled; `bound` holds the one just submitted."""
    forms: dict[str, FlaskForm] = {
        "assessment": AssessmentForm(
            formdata=None,
            personal_data=loss.personal_data or services.suggested_personal_data(found.facts),
            risk=loss.risk.value if loss.risk else None,
            risk_notes=loss.risk_notes or "",
        ),
        "awareness": AwarenessForm(formdata=None, aware_at=_local_input(loss.aware_at)),
        "decision": DecisionForm(
            formdata=None,
            decision=loss.decision.value if loss.decision else None,
            justification=loss.justification or "",
        ),
        "ico": IcoForm(formdata=None),
        "close": CloseForm(formdata=None, reference=loss.police_reference or ""),
        "reset": ResetForm(formdata=None),
        "plain": EmptyForm(formdata=None),
    }
    forms.update(bound)
    return forms


def _detail_page(
    loss: LossReport,
    *,
    status: int = 200,
    problem: str | None = None,
    bound: dict[str, FlaskForm] | None = None,
) -> tuple[str, int]:
    found = services.case(db_session(), loss)
    return (
        render_template(
            "losses/detail.html",
            case=found,
            loss=loss,
            manager=_manager(),
            forms=_forms(loss, found, bound or {}),
            asking={
                "lost_mode": confirmations.lost_mode(loss),
                "factory_reset": confirmations.factory_reset(loss),
                "wipe_photos": confirmations.wipe_photos(loss),
            },
            problem=problem,
            max_local=_local_input(found.clock.now).strftime(LOCAL_FORMAT),
        ),
        status,
    )


@bp.get("/losses/<int:loss_id>")
@requires(Permission.LOSSES_REPORT)
def detail(loss_id: int) -> tuple[str, int]:
    return _detail_page(services.get_loss(db_session(), current_user, loss_id))


def _step(
    loss_id: int,
    name: str,
    form: FlaskForm,
    apply: Callable[[LossReport], str],
    asking: Callable[[LossReport], Confirmation] | None = None,
) -> Response | tuple[str, int]:
    """Run one of the headteacher's steps; a refusal shows on the case page, nothing half-done."""
    loss = services.get_loss(db_session(), current_user, loss_id)
    if not form.validate_on_submit():
        first = next((e for errors in form.errors.values() for e in errors), None)
        return _detail_page(
            loss,
            status=400,
            problem=str(first or "Some details are missing; see below."),
            bound={name: form},
        )
    if asking is not None and (page := unconfirmed(asking(loss))):
        return page
    with refusing(None) as refused:
        message = apply(loss)
    if refused:
        status = _show_errors(form, refused)
        return _detail_page(loss, status=status, problem=refused.message, bound={name: form})
    flash(message, "success")
    return redirect(url_for("losses.detail", loss_id=loss.id))


@bp.post("/losses/<int:loss_id>/assessment")
@requires(Permission.LOSSES_MANAGE)
def assessment(loss_id: int) -> Response | tuple[str, int]:
    form = AssessmentForm()

    def apply(loss: LossReport) -> str:
        services.assess(
            db_session(),
            current_user,
            loss,
            personal_data=form.personal_data.data or "",
            risk=RiskLevel(form.risk.data),
            risk_notes=form.risk_notes.data or "",
        )
        return "Breach assessment saved."

    return _step(loss_id, "assessment", form, apply)


@bp.post("/losses/<int:loss_id>/awareness")
@requires(Permission.LOSSES_MANAGE)
def awareness(loss_id: int) -> Response | tuple[str, int]:
    form = AwarenessForm()

    def apply(loss: LossReport) -> str:
        services.change_awareness(
            db_session(),
            current_user,
            loss,
            from_local(form.aware_at.data, current_user.school),
            form.reason.data or "",
        )
        return "The time of awareness has changed; the 72 hours run from it."

    return _step(loss_id, "awareness", form, apply)


@bp.post("/losses/<int:loss_id>/decision")
@requires(Permission.LOSSES_MANAGE)
def decision(loss_id: int) -> Response | tuple[str, int]:
    form = DecisionForm()

    def apply(loss: LossReport) -> str:
        services.decide(
            db_session(),
            current_user,
            loss,
            report_to_ico=form.decision.data == "report",
            justification=form.justification.data or "",
            ico_reference=form.ico_reference.data,
        )
        return "Decision recorded in the breach log."

    return _step(loss_id, "decision", form, apply)


@bp.post("/losses/<int:loss_id>/ico-report")
@requires(Permission.LOSSES_MANAGE)
def ico_report(loss_id: int) -> Response | tuple[str, int]:
    form = IcoForm()

    def apply(loss: LossReport) -> str:
        services.record_ico_report(db_session(), current_user, loss, form.reference.data or "")
        return "ICO reference recorded; the clock has stopped."

    return _step(loss_id, "ico", form, apply)


@bp.post("/losses/<int:loss_id>/lost-mode")
@requires(Permission.LOSSES_MANAGE)
def lost_mode(loss_id: int) -> Response | tuple[str, int]:
    def apply(loss: LossReport) -> str:
        services.retry_lost_mode(db_session(), current_user, loss)
        return "Lost mode is on its way to the device."

    return _step(loss_id, "plain", EmptyForm(), apply, confirmations.lost_mode)


@bp.post("/losses/<int:loss_id>/factory-reset")
@requires(Permission.LOSSES_MANAGE)
def factory_reset(loss_id: int) -> Response | tuple[str, int]:
    form = ResetForm()

    def apply(loss: LossReport) -> str:
        services.request_factory_reset(db_session(), current_user, loss, form.reason.data or "")
        return "Factory reset asked for. A second person (a technician) must approve it."

    return _step(loss_id, "reset", form, apply, confirmations.factory_reset)


@bp.post("/losses/<int:loss_id>/wipe-photos")
@requires(Permission.LOSSES_MANAGE)
def wipe_photos(loss_id: int) -> Response | tuple[str, int]:
    def apply(loss: LossReport) -> str:
        services.wipe_photos(db_session(), current_user, loss)
        return "Photo wipe is on its way to the device."

    return _step(loss_id, "plain", EmptyForm(), apply, confirmations.wipe_photos)


@bp.post("/losses/<int:loss_id>/close")
@requires(Permission.LOSSES_MANAGE)
def close(loss_id: int) -> Response | tuple[str, int]:
    form = CloseForm()

    def apply(loss: LossReport) -> str:
        outcome = Outcome(form.outcome.data)
        services.close(
            db_session(),
            current_user,
            loss,
            outcome,
            reference=form.reference.data,
            note=form.note.data,
        )
        return f"Case closed: {outcome.label.lower()}. It stays in the breach log."

    return _step(loss_id, "close", form, apply)


@bp.get("/losses/<int:loss_id>/record")
@requires(Permission.LOSSES_MANAGE)
def record(loss_id: int) -> str:
    session = db_session()
    found = services.case(session, services.get_loss(session, current_user, loss_id))
    return render_template(
        "losses/record.html",
        case=found,
        loss=found.loss,
        steps=services.incident_record(session, found),
    )


@bp.get("/losses/log")
@requires(Permission.REPORTS_READ)
def log() -> str:
    return render_template(
        "losses/log.html", terms=services.term_log(db_session(), current_user.school_id)
    )


@bp.route("/losses/settings", methods=["GET", "POST"])
@requires(Permission.LOSSES_MANAGE)
def settings() -> Response | tuple[str, int]:
    session = db_session()
    if request.method == "GET":
        form = SettingsForm(
            formdata=None, dpo_email=services.dpo_email(session, current_user.school_id) or ""
        )
    else:
        form = SettingsForm()
    problem = None
    if form.validate_on_submit():
        with refusing(None) as refused:
            services.update_settings(session, current_user, dpo_email=form.dpo_email.data)
        if not refused:
            flash("Saved.", "success")
            return redirect(url_for("losses.settings"))
        problem = refused.message
    status = 400 if form.is_submitted() else 200
    return render_template("losses/settings.html", form=form, problem=problem), status
