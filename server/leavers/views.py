"""Leaver pages: the case, the leaver's own checklist (by account or personal link), the record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.forms import EmptyForm
from server.auth.models import Role
from server.auth.permissions import Permission, public, requires
from server.auth.services import school_users
from server.db import utcnow
from server.errors import Forbidden, NotFound, ValidationFailed
from server.extensions import db_session
from server.leavers import confirmations, services
from server.leavers.forms import (
    AddDeviceForm,
    CredentialsForm,
    EvidenceForm,
    KeepAccountForm,
    MeetingForm,
    OpenCaseForm,
    ScanForm,
)
from server.leavers.models import CaseStatus, LeaverCase, Signer
from server.leavers.pages import HomeCard
from server.schools.services.clock import local, local_today
from server.web import refusing, unconfirmed

bp = Blueprint("leavers", __name__)

PERSONAL_HIDDEN = "Their own device in the staff personal devices register"


def _base_url() -> str:
    return str(current_app.extensions["trolley.settings"].base_url)


@bp.app_context_processor
def _leaver_helpers() -> dict[str, object]:
    """Data for the home card; queried only when the template asks."""

    def leavers_card() -> HomeCard | None:
        if not current_user.is_authenticated:
            return None
        return services.home_card(db_session(), current_user)

    return {
        "leavers_card": leavers_card,
    }


def _act(action: Callable[[], object], done: str, back: str) -> Response:
    """Run one step; a refusal is shown on the page it came from (unknown ids stay 404)."""
    with refusing(None) as refused:
        action()
    if isinstance(refused.error, (NotFound, Forbidden)):
        raise refused.error
    if not refused.error:
        flash(done, "success")
        return redirect(back)
    flash(refused.message, "warning")
    # Each detail's message too, where it has one (some details only name the devices).
    details = refused.error.details
    for issue in details if isinstance(details, list) else []:
        if isinstance(issue, dict) and issue.get("message"):
            flash(str(issue["message"]), "warning")
    return redirect(back)


# --- the manager's list and a new case ----------------------------------------------------


@bp.get("/leavers")
@requires(Permission.LEAVERS_MANAGE)
def index() -> str:
    cases = services.list_cases(db_session(), current_user)
    return render_template(
        "leavers/index.html",
        open_cases=[c for c in cases if c.status is CaseStatus.OPEN],
        closed_cases=[c for c in cases if c.status is CaseStatus.CLOSED],
        today=local_today(current_user.school, utcnow()),
    )


def _people_choices(form: OpenCaseForm) -> None:
    people = school_users(db_session(), current_user.school_id)
    form.leaver_id.choices = [("", "Someone without a Trolley account")] + [
        (str(u.id), f"{u.name} ({u.role.label}){'' if u.active else ' — account closed'}")
        for u in people
    ]
    active = [u for u in people if u.active]
    form.line_manager_id.choices = [("", "Choose…")] + [
        (str(u.id), f"{u.name} ({u.role.label})") for u in active
    ]
    form.technician_id.choices = [("", "Choose…")] + [
        (str(u.id), u.name) for u in active if u.role is Role.TECHNICIAN
    ]


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@bp.route("/leavers/new", methods=["GET", "POST"])
@requires(Permission.LEAVERS_MANAGE)
def new() -> Response | tuple[str, int]:
    form = OpenCaseForm()
    _people_choices(form)
    problem = None
    if form.validate_on_submit():
        assert form.last_day.data is not None
        with refusing(None) as refused:
            opened = services.open_case(
                db_session(),
                current_user,
                leaver_id=_int(form.leaver_id.data),
                leaver_name=form.leaver_name.data or "",
                leaver_email=form.leaver_email.data or "",
                last_day=form.last_day.data,
                line_manager_id=_int(form.line_manager_id.data),
                technician_id=_int(form.technician_id.data),
                asset_tags=(form.asset_tags.data or "").replace(";", ",").split(","),
                base_url=_base_url(),
            )
        if refused.error:
            details = refused.error.details
            for issue in details if isinstance(details, list) else []:
                field = getattr(form, str(issue.get("field") or ""), None)
                if field is not None:
                    field.errors = [*field.errors, issue["message"]]
            page = render_template("leavers/new.html", form=form, problem=refused.message)
            return page, refused.error.status
        if opened.case.status is CaseStatus.CLOSED:
            flash(opened.case.close_note or "The case closed straight away.", "info")
        else:
            flash(f"The case for {opened.case.leaver_name} is open.", "success")
        if opened.link:
            return make_response(
                render_template("leavers/link.html", case=opened.case, link=opened.link)
            )
        return redirect(url_for("leavers.detail", case_id=opened.case.id))
    status = 400 if form.is_submitted() else 200
    if status == 400:
        problem = "Some details are missing or need correcting; see below."
    return render_template("leavers/new.html", form=form, problem=problem), status


# --- one case -----------------------------------------------------------------------------


def _checklist_page(case: LeaverCase, url: Callable[..., str], *, via_link: bool) -> Response:
    state = services.case_state(db_session(), case)
    meeting = MeetingForm(formdata=None)
    meeting.starts_at.data = datetime.combine(case.last_day, time(15, 30))
    response = make_response(
        render_template(
            "leavers/checklist.html",
            case=case,
            state=state,
            url=url,
            via_link=via_link,
            asking_sign=(confirmations.own_sign_off if via_link else confirmations.sign_off)(case),
            credentials=CredentialsForm(formdata=None),
            meeting=meeting,
            form=EmptyForm(),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _urls(prefix: str, **bound: Any) -> Callable[..., str]:
    """The checklist's links: the same page reached by account or by personal link."""

    def url(action: str, **values: Any) -> str:
        return url_for(f"leavers.{prefix}{action}", **bound, **values)

    return url


def _account_url(case_id: int) -> Callable[..., str]:
    return _urls("", case_id=case_id)


@bp.get("/leavers/mine")
@requires(Permission.ACCOUNT_USE)
def mine() -> Response | str:
    case = services.my_case(db_session(), current_user)
    if case is None:
        return render_template("leavers/none.html")
    return _checklist_page(case, _account_url(case.id), via_link=False)


@bp.get("/leavers/<int:case_id>")
@requires(Permission.ACCOUNT_USE)
def detail(case_id: int) -> Response | str:
    session = db_session()
    case = services.get_case(session, current_user, case_id)
    parts = services.roles_on(case, current_user)
    if Signer.LEAVER in parts:
        return _checklist_page(case, _account_url(case.id), via_link=False)
    state = services.case_state(session, case)
    manager = services.is_manager(current_user)
    meeting = MeetingForm(formdata=None)
    if case.meeting_starts_at and case.meeting_ends_at:
        meeting.starts_at.data = local(case.meeting_starts_at, case.school).replace(tzinfo=None)
        meeting.minutes.data = int(
            (case.meeting_ends_at - case.meeting_starts_at).total_seconds() // 60
        )
        meeting.place.data = case.meeting_place
    else:
        meeting.starts_at.data = datetime.combine(case.last_day, time(15, 30))
    signed = {part: at for part, _user, at in state.signatures()}
    can_sign = bool(parts) and all(signed[p] is None for p in parts) and state.ready
    return render_template(
        "leavers/detail.html",
        case=case,
        state=state,
        manager=manager,
        technician=current_user.id == case.technician_id,
        receiver=manager or current_user.id == case.technician_id,
        sees_personal=manager,
        personal_hidden=PERSONAL_HIDDEN,
        can_sign=can_sign and case.is_open,
        asking_sign=confirmations.sign_off(case),
        asking_reset={item.id: confirmations.reset(case, item.id) for item in case.items},
        parts=parts,
        form=EmptyForm(),
        evidence=EvidenceForm(formdata=None),
        add=AddDeviceForm(formdata=None),
        meeting=meeting,
    )


@bp.get("/leavers/<int:case_id>/record")
@requires(Permission.ACCOUNT_USE)
def record(case_id: int) -> str:
    session = db_session()
    case = services.get_case(session, current_user, case_id)
    sees_personal = services.is_manager(current_user) or current_user.id == case.leaver_id
    return render_template(
        "leavers/record.html",
        case=case,
        state=services.case_state(session, case),
        sees_personal=sees_personal,
        personal_hidden=PERSONAL_HIDDEN,
        printed=utcnow(),
    )


def _back(case_id: int) -> str:
    return url_for("leavers.detail", case_id=case_id)


def _credential_values(form: CredentialsForm) -> dict[str, Any]:
    """What the leaver typed; nothing at all from a form that did not validate."""
    valid = form.validate_on_submit()
    return {
        "passcode": (form.passcode.data or "") if valid else "",
        "account_email": (form.account_email.data or "") if valid else "",
        "account_password": (form.account_password.data or "") if valid else "",
    }


@bp.post("/leavers/<int:case_id>/items/<int:item_id>/credentials")
@requires(Permission.ACCOUNT_USE)
def credentials(case_id: int, item_id: int) -> Response:
    values = _credential_values(CredentialsForm())
    return _act(
        lambda: services.hand_over_credentials(
            db_session(),
            current_app.extensions["trolley.box"],
            current_user,
            case_id,
            item_id,
            **values,
        ),
        "Thank you. Kept safely: only the technician can read it, and every read is recorded.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/items/<int:item_id>/meeting")
@requires(Permission.ACCOUNT_USE)
def choose_meeting(case_id: int, item_id: int) -> Response:
    return _act(
        lambda: services.choose_meeting(db_session(), current_user, case_id, item_id),
        "Noted: this device will be reset at a meeting on the last day.",
        _back(case_id),
    )


def _meeting_values(form: MeetingForm) -> dict[str, Any]:
    if not form.validate_on_submit() or form.starts_at.data is None:
        messages = [e for errors in form.errors.values() for e in errors]
        raise ValidationFailed(" ".join(str(m) for m in messages) or "Check the meeting details.")
    return {
        "starts_at": form.starts_at.data,
        "minutes": form.minutes.data or 30,
        "place": form.place.data or "",
    }


@bp.post("/leavers/<int:case_id>/meeting")
@requires(Permission.ACCOUNT_USE)
def book_meeting(case_id: int) -> Response:
    form = MeetingForm()
    return _act(
        lambda: services.book_meeting(db_session(), current_user, case_id, **_meeting_values(form)),
        "The meeting is booked; everyone has an invitation.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/meeting/cancel")
@requires(Permission.ACCOUNT_USE)
def cancel_meeting(case_id: int) -> Response:
    EmptyForm().validate_on_submit()
    return _act(
        lambda: services.cancel_meeting(db_session(), current_user, case_id),
        "The meeting is cancelled; everyone has a cancellation for their calendar.",
        _back(case_id),
    )


def _ics(text: str) -> Response:
    response = make_response(text)
    response.mimetype = "text/calendar"
    response.headers["Content-Disposition"] = 'attachment; filename="reset-meeting.ics"'
    return response


@bp.get("/leavers/<int:case_id>/meeting.ics")
@requires(Permission.ACCOUNT_USE)
def invitation(case_id: int) -> Response:
    _case, text = services.meeting_invitation(db_session(), current_user, case_id)
    return _ics(text)


@bp.route("/leavers/<int:case_id>/return", methods=["GET", "POST"])
@requires(Permission.ACCOUNT_USE)
def scan_in(case_id: int) -> Response | str:
    session = db_session()
    case = services.get_case(session, current_user, case_id)
    services.require_receiver(current_user, case)
    form = ScanForm()
    back = url_for("leavers.scan_in", case_id=case_id)
    if request.method == "POST":
        if not form.validate_on_submit():
            flash("Scan a label or type an asset tag.", "warning")
            return redirect(back)
        code = form.code.data or ""
        return _act(
            lambda: services.return_device(
                session, current_user, case_id, code, base_url=_base_url()
            ),
            f"{code.strip().rsplit('/', 1)[-1]} is back. Thank you.",
            back,
        )
    return render_template(
        "leavers/return.html",
        case=case,
        state=services.case_state(session, case),
        form=ScanForm(formdata=None),
    )


@bp.post("/leavers/<int:case_id>/items/<int:item_id>/reset")
@requires(Permission.COMMANDS_SEND)
def reset(case_id: int, item_id: int) -> Response:
    EmptyForm().validate_on_submit()
    asking = confirmations.reset(services.get_case(db_session(), current_user, case_id), item_id)
    if asking and (page := unconfirmed(asking)):
        return page
    return _act(
        lambda: services.send_reset(db_session(), current_user, case_id, item_id),
        "Factory reset asked for. A second person (another technician or the headteacher) "
        "approves it on the Commands page; the device confirms when it is done.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/items/<int:item_id>/evidence")
@requires(Permission.DEVICES_ENROL)
def evidence(case_id: int, item_id: int) -> Response:
    form = EvidenceForm()
    form.validate_on_submit()
    return _act(
        lambda: services.confirm_reset(
            db_session(), current_user, case_id, item_id, form.evidence.data or ""
        ),
        "Reset confirmed. The device's escrowed PINs have been destroyed.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/items/<int:item_id>/remove")
@requires(Permission.LEAVERS_MANAGE)
def remove_personal(case_id: int, item_id: int) -> Response:
    EmptyForm().validate_on_submit()
    return _act(
        lambda: services.remove_personal_device(db_session(), current_user, case_id, item_id),
        "Removed from the staff personal devices register.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/devices")
@requires(Permission.LEAVERS_MANAGE)
def add_device(case_id: int) -> Response:
    form = AddDeviceForm()
    form.validate_on_submit()
    return _act(
        lambda: services.add_device(db_session(), current_user, case_id, form.asset_tag.data or ""),
        "Added to the case.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/refresh")
@requires(Permission.LEAVERS_MANAGE)
def refresh(case_id: int) -> Response:
    EmptyForm().validate_on_submit()
    return _act(
        lambda: services.refresh(db_session(), current_user, case_id),
        "Looked again at the register, the loans and the staff personal devices register.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/link")
@requires(Permission.LEAVERS_MANAGE)
def new_link(case_id: int) -> Response | str:
    EmptyForm().validate_on_submit()
    with refusing(None) as refused:
        case, link = services.issue_link(db_session(), current_user, case_id, base_url=_base_url())
    if isinstance(refused.error, (NotFound, Forbidden)):
        raise refused.error
    if refused:
        flash(refused.message, "warning")
        return redirect(_back(case_id))
    return render_template("leavers/link.html", case=case, link=link)


@bp.post("/leavers/<int:case_id>/sign")
@requires(Permission.ACCOUNT_USE)
def sign(case_id: int) -> Response:
    EmptyForm().validate_on_submit()
    case = services.get_case(db_session(), current_user, case_id)
    if asking := unconfirmed(confirmations.sign_off(case)):
        return asking
    return _act(
        lambda: services.sign(db_session(), current_user, case_id),
        "Thank you: your sign-off is recorded.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/close")
@requires(Permission.LEAVERS_MANAGE)
def close(case_id: int) -> Response:
    EmptyForm().validate_on_submit()
    return _act(
        lambda: services.close_case(db_session(), current_user, case_id),
        "The case is closed.",
        _back(case_id),
    )


@bp.post("/leavers/<int:case_id>/keep-account")
@requires(Permission.LEAVERS_MANAGE)
def keep_account(case_id: int) -> Response:
    """The headteacher records why the leaver's log-in stays after their last day."""
    form = KeepAccountForm()
    if not form.validate_on_submit():
        flash("Say why they keep their Trolley log-in.", "warning")
        return redirect(_back(case_id))
    return _act(
        lambda: services.keep_account(db_session(), current_user, case_id, form.reason.data or ""),
        "Recorded: their Trolley log-in stays on after their last day.",
        _back(case_id),
    )


# --- the personal link (no log-in: one case only, CSRF still applies) -------------------


def _link_access(token: str) -> services.LinkAccess | None:
    try:
        return services.case_for_link(db_session(), token)
    except NotFound:
        return None


def _expired() -> Response:
    flash(
        "That link is not valid or has expired. Log in if you have an account, or ask the "
        "school business manager for a new link.",
        "warning",
    )
    return redirect(url_for("auth.login"))


def _link_url(token: str) -> Callable[..., str]:
    return _urls("link_", token=token)


@bp.get("/leavers/link/<token>")
@public
def link_detail(token: str) -> Response:
    access = _link_access(token)
    if access is None:
        return _expired()
    return _checklist_page(access.case, _link_url(token), via_link=True)


def _link_act(token: str, step: Callable[[services.LinkAccess], object], done: str) -> Response:
    access = _link_access(token)
    if access is None:
        return _expired()
    return _act(lambda: step(access), done, url_for("leavers.link_detail", token=token))


@bp.post("/leavers/link/<token>/items/<int:item_id>/credentials")
@public
def link_credentials(token: str, item_id: int) -> Response:
    values = _credential_values(CredentialsForm())
    return _link_act(
        token,
        lambda access: services.hand_over_credentials(
            db_session(),
            current_app.extensions["trolley.box"],
            access,
            access.case.id,
            item_id,
            **values,
        ),
        "Thank you. Kept safely: only the technician can read it, and every read is recorded.",
    )


@bp.post("/leavers/link/<token>/items/<int:item_id>/meeting")
@public
def link_choose_meeting(token: str, item_id: int) -> Response:
    EmptyForm().validate_on_submit()
    return _link_act(
        token,
        lambda access: services.choose_meeting(db_session(), access, access.case.id, item_id),
        "Noted: this device will be reset at a meeting on your last day.",
    )


@bp.post("/leavers/link/<token>/meeting")
@public
def link_book_meeting(token: str) -> Response:
    form = MeetingForm()
    return _link_act(
        token,
        lambda access: services.book_meeting(
            db_session(), access, access.case.id, **_meeting_values(form)
        ),
        "The meeting is booked; your line manager and the technician have an invitation.",
    )


@bp.get("/leavers/link/<token>/meeting.ics")
@public
def link_invitation(token: str) -> Response:
    access = _link_access(token)
    if access is None:
        return _expired()
    _case, text = services.meeting_invitation(db_session(), access, access.case.id)
    return _ics(text)


@bp.post("/leavers/link/<token>/sign")
@public
def link_sign(token: str) -> Response:
    EmptyForm().validate_on_submit()
    access = _link_access(token)
    if access is not None and (asking := unconfirmed(confirmations.own_sign_off(access.case))):
        return asking
    return _link_act(
        token,
        lambda access: services.sign(db_session(), access, access.case.id),
        "Thank you: your sign-off is recorded.",
    )
