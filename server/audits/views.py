"""Audit pages: terms and audits, scanning, the report, photo checks and spot checks."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.audits import confirmations, services
from server.audits.forms import (
    ConditionForm,
    NoteForm,
    ScanForm,
    SpotCheckForm,
    SpotResultForm,
    StartForm,
)
from server.audits.models import CONDITION_CHECKS, Audit, AuditItem, PhotoCheckStatus
from server.auth.forms import EmptyForm
from server.auth.models import Role
from server.auth.permissions import Permission, has_permission, requires
from server.chromebooks import services as chromebooks
from server.db import utcnow
from server.devices.models import Device
from server.errors import NotFound
from server.extensions import db_session
from server.loans.forms import ByHandForm
from server.schools.services import terms as school_terms
from server.schools.services.clock import local_today, plural
from server.web import Confirmation, Refusal, refusing, unconfirmed

bp = Blueprint("audits", __name__)


def _can(permission: Permission) -> bool:
    return bool(current_user.is_authenticated and has_permission(current_user.role, permission))


@bp.app_context_processor
def _audit_helpers() -> dict[str, object]:
    """Data for the home card and the device page; queried only when a template asks."""

    def audit_card() -> services.HomeCard | None:
        if not current_user.is_authenticated:
            return None
        return services.home_card(db_session(), current_user.school)

    def audit_history(device: Device) -> list[tuple[Audit, AuditItem]]:
        return services.device_history(db_session(), device)

    return {"audit_card": audit_card, "audit_history": audit_history}


def _refused(refused: Refusal) -> bool:
    """Whether the action was refused, said as a warning (a missing record is a plain 404)."""
    if isinstance(refused.error, NotFound):
        raise refused.error
    if refused:
        flash(refused.message, "warning")
    return bool(refused)


# --- terms and audits --------------------------------------------------------------------------


def _start_form(form: StartForm | None = None) -> StartForm:
    session = db_session()
    form = form or StartForm(formdata=None)
    today = local_today(current_user.school, utcnow())
    terms = school_terms(session, current_user.school_id)
    form.term_id.choices = [(t.id, t.name) for t in terms]
    if form.term_id.data is None:
        current = services.term_on(terms, today)
        form.term_id.data = current.id if current else None
    paths = services.place_paths(session, current_user.school_id)
    form.location_ids.choices = sorted(paths.items(), key=lambda item: item[1].lower())
    return form


def _index_page(form: StartForm | None = None, status: int = 200) -> tuple[str, int]:
    session = db_session()
    today = local_today(current_user.school, utcnow())
    return render_template(
        "audits/index.html",
        terms=services.term_audits(session, current_user.school_id, today),
        audits=services.list_audits(session, current_user.school_id),
        running=services.open_audit(session, current_user.school_id),
        register=services.register_picture(session, current_user.school_id),
        status_order=services.STATUS_ORDER,
        form=_start_form(form) if _can(Permission.AUDITS_RUN) else None,
    ), status


@bp.get("/audits")
@requires(Permission.REPORTS_READ)
def index() -> tuple[str, int]:
    return _index_page()


@bp.post("/audits")
@requires(Permission.AUDITS_RUN)
def start() -> Response | tuple[str, int]:
    form = _start_form(StartForm())
    if not form.validate_on_submit():
        return _index_page(form, 400)
    places = (form.location_ids.data or []) if form.scope.data == "places" else []
    if form.scope.data == "places" and not places:
        form.location_ids.errors = ["Tick at least one place, or audit the whole school."]
        return _index_page(form, 400)
    with refusing(None) as refused:
        audit = services.start_audit(
            db_session(), current_user, term_id=form.term_id.data, location_ids=places
        )
    if _refused(refused):
        return redirect(url_for("audits.index"))
    flash(
        f"The audit has started: {audit.expected_count} devices to find. Anyone on the staff "
        "can help scan from the home page.",
        "success",
    )
    return redirect(url_for("audits.scan_page", audit_id=audit.id))


@bp.get("/audits/<int:audit_id>")
@requires(Permission.REPORTS_READ)
def detail(audit_id: int) -> str:
    session = db_session()
    school_id = current_user.school_id
    got = services.report(session, school_id, audit_id)
    can_run = _can(Permission.AUDITS_RUN)
    return render_template(
        "audits/report.html",
        report=got,
        asking_close=confirmations.sign_off(session, school_id, audit_id)
        if can_run and got.live
        else None,
        asking_follow_ups=confirmations.follow_ups(session, school_id, audit_id)
        if can_run and not got.live
        else None,
        google=chromebooks.audit_flags(session, current_user.school_id, utcnow()),
        close_form=NoteForm(formdata=None),
        countersign_form=NoteForm(formdata=None),
        follow_form=EmptyForm(formdata=None),
        can_run=can_run,
        is_sbm=current_user.role is Role.SBM,
        checks=CONDITION_CHECKS,
    )


@bp.get("/audits/<int:audit_id>/report.csv")
@requires(Permission.REPORTS_READ)
def report_csv(audit_id: int) -> Response:
    session = db_session()
    audit = services.get_audit(session, current_user.school_id, audit_id)
    text = services.report_csv(session, current_user.school_id, audit_id)
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{services.csv_filename(audit)}"'},
    )


# --- scanning ----------------------------------------------------------------------------------


def _scan_page(audit_id: int, form: ScanForm | None = None, status: int = 200) -> tuple[str, int]:
    session = db_session()
    found = services.progress(session, current_user.school_id, audit_id)
    paths = services.place_paths(session, current_user.school_id)
    form = form or ScanForm(formdata=None)
    form.location_id.choices = sorted(paths.items(), key=lambda item: item[1].lower())
    if form.location_id.data is None:
        form.location_id.data = request.args.get("at", type=int)
    last = (request.args.get("last") or "").strip()[:32]
    return render_template(
        "audits/scan.html",
        progress=found,
        audit=found.audit,
        form=form,
        condition_form=ConditionForm(formdata=None),
        last=last,
        can_read=_can(Permission.REPORTS_READ),
    ), status


@bp.get("/audits/<int:audit_id>/scan")
@requires(Permission.LOANS_USE)
def scan_page(audit_id: int) -> tuple[str, int]:
    return _scan_page(audit_id)


@bp.post("/audits/<int:audit_id>/scan")
@requires(Permission.LOANS_USE)
def scan(audit_id: int) -> Response | tuple[str, int]:
    """The scan form without scripts (the page's script sends scans to the API instead)."""
    form = ScanForm()
    paths = services.place_paths(db_session(), current_user.school_id)
    form.location_id.choices = list(paths.items())
    if not form.validate_on_submit():
        return _scan_page(audit_id, form, 400)
    with refusing(None) as refused:
        result = services.scan(
            db_session(),
            current_user,
            audit_id,
            form.code.data or "",
            location_id=form.location_id.data,
            base_url=str(current_app.extensions["trolley.settings"].base_url),
        )
    if _refused(refused):
        return redirect(url_for("audits.scan_page", audit_id=audit_id, at=form.location_id.data))
    flash(result.message, "success" if result.tone == "ok" else "warning")
    last = result.tag if result.outcome != "unknown" else None
    return redirect(
        url_for("audits.scan_page", audit_id=audit_id, at=form.location_id.data, last=last)
    )


@bp.post("/audits/<int:audit_id>/items/<asset_tag>/condition")
@requires(Permission.LOANS_USE)
def condition(audit_id: int, asset_tag: str) -> Response:
    form = ConditionForm()
    if not form.validate_on_submit():
        flash("Keep the note to 500 characters or fewer.", "warning")
        return redirect(url_for("audits.scan_page", audit_id=audit_id, last=asset_tag))
    checks = {key: bool(getattr(form, key).data) for key in CONDITION_CHECKS}
    with refusing(None) as refused:
        item = services.record_condition(
            db_session(), current_user, audit_id, asset_tag, checks, note=form.note.data
        )
    if _refused(refused):
        return redirect(url_for("audits.scan_page", audit_id=audit_id))
    problems = ", ".join(item.problems)
    flash(
        f"{item.device.asset_tag}: damage noted ({problems})."
        if item.damaged
        else f"{item.device.asset_tag}: condition recorded, all fine.",
        "warning" if item.damaged else "success",
    )
    return redirect(url_for("audits.scan_page", audit_id=audit_id))


# --- signing off --------------------------------------------------------------------------------


def _sign(
    audit_id: int, sign: Callable[..., object], done: str, asking: Confirmation | None = None
) -> Response:
    """The sign-off or the countersignature, each with an optional note."""
    form = NoteForm()
    if not form.validate_on_submit():
        flash("Keep the note to 1,000 characters or fewer.", "warning")
        return redirect(url_for("audits.detail", audit_id=audit_id))
    if asking is not None and (page := unconfirmed(asking)):
        return page
    with refusing(None) as refused:
        sign(db_session(), current_user, audit_id, note=form.note.data or "")
    if not _refused(refused):
        flash(done, "success")
    return redirect(url_for("audits.detail", audit_id=audit_id))


@bp.post("/audits/<int:audit_id>/close")
@requires(Permission.AUDITS_RUN)
def close(audit_id: int) -> Response:
    done = "The audit is signed off and locked. Its report is below."
    asking = confirmations.sign_off(db_session(), current_user.school_id, audit_id)
    return _sign(audit_id, services.close_audit, done, asking)


@bp.post("/audits/<int:audit_id>/countersign")
@requires(Permission.REPORTS_READ)
def countersign(audit_id: int) -> Response:
    return _sign(audit_id, services.countersign, "Countersigned. Thank you.")


@bp.post("/audits/<int:audit_id>/follow-ups")
@requires(Permission.AUDITS_RUN)
def follow_ups(audit_id: int) -> Response:
    if not EmptyForm().validate_on_submit():
        flash("This form has expired. Reload the page and try again.", "warning")
        return redirect(url_for("audits.detail", audit_id=audit_id))
    if asking := unconfirmed(
        confirmations.follow_ups(db_session(), current_user.school_id, audit_id)
    ):
        return asking
    with refusing(None) as refused:
        done = services.raise_follow_ups(db_session(), current_user, audit_id)
    if _refused(refused):
        return redirect(url_for("audits.detail", audit_id=audit_id))
    flash(done.message, "success" if not done.skipped else "warning")
    for tag, why in done.skipped:
        flash(f"{tag}: not followed up, because {why}.", "warning")
    return redirect(url_for("audits.detail", audit_id=audit_id))


# --- the half-termly photo check (P-PHOTO-2) ------------------------------------------------------


@bp.get("/photo-checks")
@requires(Permission.REPORTS_READ)
def photo_checks() -> str:
    session = db_session()
    now = utcnow()
    today = local_today(current_user.school, now)
    return render_template(
        "audits/photo_checks.html",
        picture=services.photo_picture(session, current_user.school_id, now=now),
        halves=services.photo_compliance(session, current_user.school_id, today),
        checks=services.list_photo_checks(session, current_user.school_id),
        start_form=EmptyForm(formdata=None) if _can(Permission.AUDITS_RUN) else None,
    )


@bp.post("/photo-checks")
@requires(Permission.AUDITS_RUN)
def start_photo_check() -> Response:
    if not EmptyForm().validate_on_submit():
        flash("This form has expired. Reload the page and try again.", "warning")
        return redirect(url_for("audits.photo_checks"))
    with refusing(None) as refused:
        check = services.start_photo_check(db_session(), current_user)
    if _refused(refused):
        return redirect(url_for("audits.photo_checks"))
    flash(
        f"Photo check started: {check.holding_before} of {check.devices_total} devices hold "
        "photos.",
        "success",
    )
    return redirect(url_for("audits.photo_check", check_id=check.id))


@bp.get("/photo-checks/<int:check_id>")
@requires(Permission.REPORTS_READ)
def photo_check(check_id: int) -> str:
    session = db_session()
    check = services.get_photo_check(session, current_user.school_id, check_id)
    can_run = _can(Permission.AUDITS_RUN)
    return render_template(
        "audits/photo_check.html",
        check=check,
        lines=services.photo_check_lines(session, check),
        can_run=can_run,
        asking_wipe=confirmations.photo_wipe(session, current_user.school_id, check_id)
        if can_run and check.status is PhotoCheckStatus.OPEN
        else None,
        action_form=EmptyForm(formdata=None),
        hand_form=ByHandForm(formdata=None),
        complete_form=NoteForm(formdata=None),
    )


@bp.post("/photo-checks/<int:check_id>/wipe")
@requires(Permission.AUDITS_RUN)
def wipe_photos(check_id: int) -> Response:
    if not EmptyForm().validate_on_submit():
        flash("This form has expired. Reload the page and try again.", "warning")
        return redirect(url_for("audits.photo_check", check_id=check_id))
    asking = None
    with refusing(None) as refused:
        asking = unconfirmed(
            confirmations.photo_wipe(db_session(), current_user.school_id, check_id)
        )
    if asking or _refused(refused):
        return asking or redirect(url_for("audits.photo_check", check_id=check_id))
    with refusing(None) as refused:
        done = services.wipe_photo_check(db_session(), current_user, check_id)
    if _refused(refused):
        return redirect(url_for("audits.photo_check", check_id=check_id))
    flash(done.message, "warning" if done.needs_approval or done.by_hand else "success")
    return redirect(url_for("audits.photo_check", check_id=check_id))


@bp.post("/photo-checks/<int:check_id>/items/<asset_tag>/by-hand")
@requires(Permission.AUDITS_RUN)
def wiped_by_hand(check_id: int, asset_tag: str) -> Response:
    form = ByHandForm()
    if not form.validate_on_submit():
        flash("Say how many photos are left (0 or more) and what you saw.", "warning")
        return redirect(url_for("audits.photo_check", check_id=check_id))
    with refusing(None) as refused:
        services.mark_wiped_by_hand(
            db_session(),
            current_user,
            check_id,
            asset_tag,
            photos_left=form.photos_left.data,
            saw=form.saw.data or "",
        )
    if _refused(refused):
        return redirect(url_for("audits.photo_check", check_id=check_id))
    flash(f"{asset_tag}: your check by hand is recorded.", "success")
    return redirect(url_for("audits.photo_check", check_id=check_id))


@bp.post("/photo-checks/<int:check_id>/remind")
@requires(Permission.AUDITS_RUN)
def remind_photo_check(check_id: int) -> Response:
    """Remind the class teachers of devices still needing a person, without waiting a day."""
    if not EmptyForm().validate_on_submit():
        flash("This form has expired. Reload the page and try again.", "warning")
        return redirect(url_for("audits.photo_check", check_id=check_id))
    with refusing(None) as refused:
        named = services.remind_now(db_session(), current_user, check_id)
    if _refused(refused):
        return redirect(url_for("audits.photo_check", check_id=check_id))
    flash(
        f"Their class teachers were asked to check {plural(named, 'device')}."
        if named
        else "Their class teachers have already been asked.",
        "success",
    )
    return redirect(url_for("audits.photo_check", check_id=check_id))


@bp.post("/photo-checks/<int:check_id>/complete")
@requires(Permission.AUDITS_RUN)
def complete_photo_check(check_id: int) -> Response:
    form = NoteForm()
    if not form.validate_on_submit():
        flash("Keep the note to 1,000 characters or fewer.", "warning")
        return redirect(url_for("audits.photo_check", check_id=check_id))
    with refusing(None) as refused:
        check = services.complete_photo_check(
            db_session(), current_user, check_id, note=form.note.data or ""
        )
    if _refused(refused):
        return redirect(url_for("audits.photo_check", check_id=check_id))
    flash(
        f"Photo check complete: {check.cleared} cleared, {check.still_holding} still holding "
        f"photos, {check.unconfirmed} not confirmed ({check.checked_by_hand} checked by hand). "
        "It is kept as evidence.",
        "success",
    )
    return redirect(url_for("audits.photo_check", check_id=check_id))


# --- random GDPR spot checks (P-PHOTO-3) ----------------------------------------------------------


def _spot_index(form: SpotCheckForm | None = None, status: int = 200) -> tuple[str, int]:
    session = db_session()
    checks = services.list_spot_checks(session, current_user.school_id)
    return render_template(
        "audits/spot_checks.html",
        checks=checks,
        form=(form or SpotCheckForm(formdata=None)) if _can(Permission.SPOTCHECKS_RUN) else None,
    ), status


@bp.get("/spot-checks")
@requires(Permission.REPORTS_READ)
def spot_checks() -> tuple[str, int]:
    return _spot_index()


@bp.post("/spot-checks")
@requires(Permission.SPOTCHECKS_RUN)
def draw_spot_check() -> Response | tuple[str, int]:
    form = SpotCheckForm()
    if not form.validate_on_submit():
        return _spot_index(form, 400)
    with refusing(None) as refused:
        check = services.draw_spot_check(
            db_session(),
            current_user,
            size=form.size.data or 0,
            seed=int(form.seed.data) if form.seed.data else None,
        )
    if _refused(refused):
        return redirect(url_for("audits.spot_checks"))
    drawn = plural(check.sample_size, "device")
    flash(f"{drawn} drawn at random. Check each one below.", "success")
    return redirect(url_for("audits.spot_check", check_id=check.id))


@bp.get("/spot-checks/<int:check_id>")
@requires(Permission.REPORTS_READ)
def spot_check(check_id: int) -> str:
    session = db_session()
    check = services.get_spot_check(session, current_user.school_id, check_id)
    return render_template(
        "audits/spot_check.html",
        check=check,
        items=services.spot_check_items(session, check),
        verified=services.verify_draw(session, check),
        can_run=_can(Permission.SPOTCHECKS_RUN),
        form=SpotResultForm(formdata=None),
    )


@bp.post("/spot-checks/<int:check_id>/items/<asset_tag>")
@requires(Permission.SPOTCHECKS_RUN)
def spot_result(check_id: int, asset_tag: str) -> Response:
    form = SpotResultForm()
    if not form.validate_on_submit():
        flash("Answer both questions: photos found, and other personal data found.", "warning")
        return redirect(url_for("audits.spot_check", check_id=check_id))
    with refusing(None) as refused:
        item = services.record_spot_result(
            db_session(),
            current_user,
            check_id,
            asset_tag,
            photos_found=form.photos_found.data == "yes",
            other_personal_data=form.other_personal_data.data == "yes",
            note=form.note.data or "",
        )
    if _refused(refused):
        return redirect(url_for("audits.spot_check", check_id=check_id))
    told = f" {item.notified_user.name} has been told." if item.notified_user else ""
    flash(
        f"{asset_tag}: result recorded.{told}",
        "warning" if item.finding else "success",
    )
    return redirect(url_for("audits.spot_check", check_id=check_id))
