"""Loan pages: the scan page, loans, what is still out, lesson times, home loans, damage."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.permissions import Permission, has_permission, requires
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import get_device
from server.extensions import db_session
from server.labels.services import place_url
from server.loans import services
from server.loans.forms import (
    ByHandForm,
    DecisionForm,
    DueForm,
    HomeLoanForm,
    LessonEndForm,
    PeriodsForm,
    QuickForm,
    ResolveForm,
)
from server.loans.models import CONDITION_LABELS, HomeApproval
from server.web import Refusal, refusing

bp = Blueprint("loans", __name__)


def _base_url() -> str:
    return str(current_app.extensions["trolley.settings"].base_url)


def _is_lead() -> bool:
    return has_permission(current_user.role, Permission.REPORTS_READ)


@bp.app_context_processor
def _loan_helpers() -> dict[str, object]:
    """Functions for the home card and the device page; they query only when called."""

    def loans_card() -> services.HomeCard | None:
        if not current_user.is_authenticated:
            return None
        return services.home_card(db_session(), current_user)

    def loan_actions(device: Device) -> dict[str, Any]:
        home = (
            device.home_location
            if device.home_location and device.home_location.is_storage
            else None
        )
        here = (
            device.current_location
            if device.current_location and device.current_location.is_storage
            else None
        )
        loanable = device.status in services.LOANABLE
        return {
            "mine": device.holder_id == current_user.id,
            "holder": device.holder.name if device.holder else None,
            "can_take": loanable and device.holder_id is None and (here or home) is not None,
            "can_take_over": loanable and device.holder_id not in (None, current_user.id),
            "can_return": home is not None
            and device.status is not DeviceStatus.DISPOSED
            and (device.holder_id is not None or device.current_location_id != home.id),
            "home": home.name if home else None,
        }

    def device_loans(device: Device) -> list[dict[str, Any]]:
        rows = []
        for item in services.device_loans(db_session(), device):
            state, words = services.wipe_state(item)
            rows.append({"item": item, "wipe_state": state, "wipe": words})
        return rows

    return {
        "loans_card": loans_card,
        "loan_actions": loan_actions,
        "device_loans": device_loans,
        "loan_form": QuickForm,
        "condition_labels": CONDITION_LABELS,
    }


@bp.get("/scan")
@requires(Permission.LOANS_USE)
def scan() -> str:
    """The trolley page: scan or choose the trolley, then scan devices out or back in."""
    session = db_session()
    trolleys = services.trolley_overview(session, current_user.school_id)
    day = services.school_day(session, current_user.school_id)
    now = utcnow()
    # Nothing is chosen for the teacher: a trolley picked for them filed returns wrongly.
    wanted = request.args.get("trolley", type=int)
    selected = next((t for t in trolleys if t.id == wanted), None)
    return render_template(
        "loans/scan.html",
        trolleys=trolleys,
        label_urls={t.id: place_url(_base_url(), t.id) for t in trolleys},
        selected=selected,
        mode="in" if request.args.get("mode") == "in" else "out",
        default_due=day.local(day.default_due(now)).strftime("%H:%M"),
        lesson=day.current_lesson(now),
        class_labels=services.recent_class_labels(session, current_user),
        conditions=CONDITION_LABELS,
    )


@bp.get("/loans")
@requires(Permission.LOANS_USE)
def index() -> str:
    session = db_session()
    mine = services.list_loans(session, current_user.school_id, teacher_id=current_user.id)
    everyone = (
        services.list_loans(session, current_user.school_id, open_only=True, limit=100)
        if _is_lead()
        else []
    )
    return render_template("loans/index.html", mine=mine, everyone=everyone, now=utcnow())


@bp.get("/loans/<int:loan_id>")
@requires(Permission.LOANS_USE)
def detail(loan_id: int) -> str:
    session = db_session()
    loan = services.get_loan(session, current_user.school_id, loan_id)
    day = services.school_day(session, current_user.school_id)
    form = DueForm(formdata=None, due=day.local(loan.due_at).time())
    earlier = services.earlier_wipes(session, loan)
    return render_template(
        "loans/detail.html",
        loan=loan,
        rows=[(item, *services.wipe_state(item)) for item in loan.items],
        earlier={
            item.id: (earlier[item.device_id], *services.wipe_state(earlier[item.device_id]))
            for item in loan.items
            if item.device_id in earlier
        },
        form=form,
        hand_form=ByHandForm(formdata=None),
        day=day,
        now=utcnow(),
        can_change=loan.teacher_id == current_user.id or _is_lead(),
    )


@bp.post("/loans/items/<int:item_id>/wiped-by-hand")
@requires(Permission.LOANS_USE)
def wiped_by_hand(item_id: int) -> Response:
    """A person checked a device's photos by hand: the step a remote wipe could not confirm."""
    form = ByHandForm()
    back = request.form.get("next", "")
    target = back if back.startswith("/loans") and not back.startswith("//") else "/loans/out"
    if not form.validate_on_submit():
        flash("Say how many photos are left (0 or more) and what you saw.", "warning")
        return redirect(target)
    with refusing(None) as refused:
        item = services.record_wiped_by_hand(
            db_session(),
            current_user,
            item_id,
            photos_left=form.photos_left.data,
            saw=form.saw.data or "",
        )
    if not _flash_refusal(refused):
        flash(
            f"Recorded: {item.device.asset_tag} checked by hand."
            + (
                " Photos are still on it: delete them and record it again."
                if item.wipe_outstanding
                else ""
            ),
            "success",
        )
    return redirect(target)


@bp.post("/loans/<int:loan_id>/due")
@requires(Permission.LOANS_USE)
def change_due(loan_id: int) -> Response:
    session = db_session()
    loan = services.get_loan(session, current_user.school_id, loan_id)
    form = DueForm()
    if not form.validate_on_submit():
        flash("Choose the time the devices are due back.", "warning")
        return redirect(url_for("loans.detail", loan_id=loan.id))
    with refusing() as refused:
        due = services.due_today_at(session, current_user.school_id, form.due.data)
        services.change_due(session, current_user, loan.id, due)
    if not refused:
        flash("Due time changed.", "success")
    return redirect(url_for("loans.detail", loan_id=loan.id))


@bp.get("/loans/out")
@requires(Permission.LOANS_USE)
def still_out() -> str:
    """End-of-session reconciliation: everything not back, overdue and overnight first."""
    session = db_session()
    now = utcnow()
    out = services.devices_out(session, current_user.school_id, now=now)
    lead = _is_lead()
    return render_template(
        "loans/out.html",
        out=out,
        now=now,
        day=services.school_day(session, current_user.school_id),
        wipes=services.wipes_to_check(session, current_user.school_id) if lead else [],
        wipe_state=services.wipe_state,
        hand_form=ByHandForm(formdata=None),
        lead=lead,
    )


@bp.post("/devices/<asset_tag>/take-out")
@requires(Permission.LOANS_USE)
def take_out_device(asset_tag: str) -> Response:
    """One tap on the device page (a phone's camera opened the label's URL)."""
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    form = QuickForm()
    if form.validate_on_submit():
        with refusing() as refused:
            result = services.quick_take_out(
                session, current_user, device, transfer=bool(form.transfer.data)
            )
        if not refused:
            _flash_result(result)
    return redirect(url_for("devices.detail", asset_tag=device.asset_tag))


@bp.post("/devices/<asset_tag>/return")
@requires(Permission.LOANS_USE)
def return_device(asset_tag: str) -> Response:
    session = db_session()
    device = get_device(session, current_user.school_id, asset_tag)
    if EmptyForm().validate_on_submit():
        with refusing() as refused:
            result = services.quick_return(session, current_user, device)
        if not refused:
            _flash_result(result)
    return redirect(url_for("devices.detail", asset_tag=device.asset_tag))


def _flash_result(result: services.ScanResult) -> None:
    flash(result.message + (f" {result.counts.text}." if result.counts else ""), "success")
    for warning in result.warnings:
        flash(warning, "warning")


def _flash_refusal(refused: Refusal) -> bool:
    """Flash a refusal as a warning, except a report that does not exist: that is a 404 page."""
    if refused.error is None:
        return False
    if refused.error.status == 404:
        raise refused.error
    flash(refused.message, "warning")
    return True


@bp.route("/loans/periods", methods=["GET", "POST"])
@requires(Permission.LOCATIONS_WRITE)
def periods() -> Response | tuple[str, int]:
    """Lesson times: a loan is due at the end of the current lesson."""
    session = db_session()
    day = services.school_day(session, current_user.school_id)
    if request.method == "GET":
        form = PeriodsForm(
            formdata=None,
            day_ends=day.day_ends,
            history_months=services.history_months(session, current_user.school_id),
            periods=[
                {
                    "name": p.name,
                    "starts": p.starts,
                    "ends": p.ends,
                    "weekday": "" if p.weekday is None else str(p.weekday),
                }
                for p in day.periods
            ],
        )
        return _periods_page(form, day, [], 200)
    form = PeriodsForm()
    errors: list[str] = []
    if form.validate_on_submit():
        rows = [
            services.Period(
                name=(row.form.name.data or "").strip(),
                starts=row.form.starts.data,
                ends=row.form.ends.data,
                weekday=int(row.form.weekday.data) if row.form.weekday.data else None,
            )
            for row in form.periods
            if row.form.name.data or row.form.starts.data or row.form.ends.data
        ]
        incomplete = [p.name or "A lesson" for p in rows if p.starts is None or p.ends is None]
        if incomplete:
            errors = [f"{name} needs a start and an end time." for name in incomplete]
        else:
            with refusing(None) as refused:
                services.save_school_day(session, current_user, rows, form.day_ends.data)
                months = form.history_months.data
                if months and months != services.history_months(session, current_user.school_id):
                    services.set_history_months(session, current_user, months)
            if refused:
                errors = refused.messages
            else:
                flash("Lesson times saved.", "success")
                return redirect(url_for("loans.periods"))
    elif form.history_months.errors:
        low, high = services.HISTORY_MONTHS_RANGE
        errors = [f"Keep loan history for {low} to {high} months."]
    else:
        errors = ["Check the times: use hours and minutes, such as 09:00."]
    return _periods_page(form, day, errors, 400)


def _periods_page(
    form: PeriodsForm, day: services.SchoolDay, errors: list[str], status: int
) -> tuple[str, int]:
    session = db_session()
    lesson_end = LessonEndForm(
        formdata=None,
        wipe_at_lesson_end=services.wipes_at_lesson_end(session, current_user.school_id),
    )
    return render_template(
        "loans/periods.html", form=form, day=day, errors=errors, lesson_end=lesson_end
    ), status


@bp.post("/loans/periods/lesson-end")
@requires(Permission.LOCATIONS_WRITE)
def lesson_end() -> Response:
    """P-PHOTO-1: whether devices still out wipe their photos at each lesson's end."""
    form = LessonEndForm()
    if form.validate_on_submit():
        enabled = bool(form.wipe_at_lesson_end.data)
        session = db_session()
        if enabled != services.wipes_at_lesson_end(session, current_user.school_id):
            services.set_lesson_end_wipe(session, current_user, enabled=enabled)
        flash(
            "Devices still out are asked to wipe their photos at the end of each lesson."
            if enabled
            else "Devices still out keep their photos until they are returned.",
            "success",
        )
    return redirect(url_for("loans.periods"))


@bp.route("/loans/home", methods=["GET", "POST"])
@requires(Permission.LOANS_USE)
def home() -> Response | tuple[str, int]:
    """Home loans: ask for one; the SBM or headteacher approves or declines."""
    session = db_session()
    form = HomeLoanForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            with refusing(None) as refused:
                services.request_home_loan(
                    session,
                    current_user,
                    asset_tags=form.tags(),
                    return_by=form.return_by.data,
                    reason=form.reason.data or "",
                    base_url=_base_url(),
                )
            if refused.error is not None:
                # The refusal first, then each code it names (when it names any).
                problems = refused.messages if refused.error.details else []
                form.asset_tags.errors = [refused.message, *problems]
                status = 400
            else:
                flash(
                    "Asked. The school business manager and headteacher have been told.", "success"
                )
                return redirect(url_for("loans.home"))
        else:
            status = 400
    approver = current_user.role in services.APPROVERS
    loans = services.home_loans(session, current_user, everyone=approver or _is_lead())
    day = services.school_day(session, current_user.school_id)
    return render_template(
        "loans/home.html",
        form=form,
        loans=loans,
        approver=approver,
        decision=DecisionForm(formdata=None),
        requested=HomeApproval.REQUESTED,
        day=day,
        now=utcnow(),
    ), status


@bp.post("/loans/home/<int:loan_id>/decide")
@requires(Permission.LOANS_USE)
def decide(loan_id: int) -> Response:
    session = db_session()
    loan = services.get_home_loan(session, current_user.school_id, loan_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        flash("Choose approve or decline.", "warning")
        return redirect(url_for("loans.home"))
    with refusing() as refused:
        services.decide_home_loan(
            session,
            current_user,
            loan.id,
            approve=form.decision.data == "approve",
            note=form.note.data or "",
        )
    if not refused:
        flash(
            "Approved: the devices are signed out."
            if form.decision.data == "approve"
            else "Declined.",
            "success",
        )
    return redirect(url_for("loans.home"))


@bp.get("/loans/damage")
@requires(Permission.LOANS_USE)
def damage() -> str:
    return render_template(
        "loans/damage.html",
        reports=services.damage_reports(db_session(), current_user.school_id),
        form=EmptyForm(formdata=None),
        resolve=ResolveForm(formdata=None),
        can_resolve=_is_lead() or has_permission(current_user.role, Permission.DEVICES_WRITE),
    )


@bp.post("/loans/damage/<int:report_id>/repair")
@requires(Permission.LOANS_USE)
def repair(report_id: int) -> Response:
    session = db_session()
    if EmptyForm().validate_on_submit():
        with refusing(None) as refused:
            report = services.put_in_repair(session, current_user, report_id)
        if not _flash_refusal(refused):
            flash(f"{report.device.asset_tag} is in repair and will not go out.", "success")
    return redirect(url_for("loans.damage"))


@bp.post("/loans/damage/<int:report_id>/resolve")
@requires(Permission.LOANS_USE)
def resolve(report_id: int) -> Response:
    session = db_session()
    form = ResolveForm()
    if form.validate_on_submit():
        with refusing(None) as refused:
            services.resolve_damage(session, current_user, report_id, form.note.data or "")
        if not _flash_refusal(refused):
            flash("Closed.", "success")
    else:
        flash("Say what was done.", "warning")
    return redirect(url_for("loans.damage"))
