"""Log-in with a second factor, sign-out, the account page, the people list and the school's
security settings."""

from __future__ import annotations

import base64
import io
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg
from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from server.auth import confirmations, services
from server.auth.forms import (
    CodeForm,
    EmptyForm,
    LoginForm,
    ReasonForm,
    RoleForm,
    SecurityForm,
    TokenForm,
    UserForm,
)
from server.auth.models import Role, TokenScope, User
from server.auth.permissions import Permission, has_permission, public, requires
from server.crypto import SecretBox
from server.errors import RateLimited, TrolleyError, ValidationFailed
from server.extensions import db_session
from server.web import SESSION_KEY, clock, current_login, refusing, unconfirmed

bp = Blueprint("auth", __name__)
PENDING_KEY = "pending_login"
SETUP_SECRET_KEY = "totp_setup_secret"


def _box() -> SecretBox:
    box: SecretBox = current_app.extensions["trolley.box"]
    return box


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a log-in link must never bounce people to another site."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("dashboard.home")


def _address() -> str:
    return (request.remote_addr or "unknown")[:64]


def _pending(name: str) -> str | None:
    value = (session.get(PENDING_KEY) or {}).get(name)
    return value if isinstance(value, str) else None


def _pending_key() -> str | None:
    return _pending("key")


def _pending_user() -> User | None:
    try:
        return services.pending_user(db_session(), _pending_key(), now=clock())
    except TrolleyError:
        session.pop(PENDING_KEY, None)
        return None


def _start_again(message: str = services.TIMED_OUT) -> Response:
    session.pop(PENDING_KEY, None)
    flash(message, "warning")
    return redirect(url_for("auth.login"))


def _signed_in(user: User, key: str, next_path: str | None) -> Response:
    """The browser keeps the new session's key; anything it held before the log-in is gone."""
    return redirect(_keep_session(user, key, next_path))


def _keep_session(user: User, key: str, next_path: str | None) -> str:
    next_url = _safe_next(next_path)
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = key
    login_user(user)
    return next_url


def _relying_party() -> services.RelyingParty:
    settings = current_app.extensions["trolley.settings"]
    return services.RelyingParty(settings.passkey_rp_id, settings.passkey_origin)


def _json_refused(exc: TrolleyError) -> tuple[Response, int]:
    return jsonify({"error": {"code": exc.code, "message": exc.message}}), exc.status


def _options(response: str) -> Response:
    return current_app.response_class(response, mimetype="application/json")


def _credential() -> dict[str, object]:
    """The browser's passkey answer from a JSON body {"credential": {...}, "name": ...}."""
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(credential, dict):
        raise ValidationFailed(services.passkeys.NOT_ACCEPTED)
    return credential


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        dbs = db_session()
        try:
            user = services.authenticate(
                dbs,
                email=form.email.data or "",
                password=form.password.data or "",
                address=_address(),
                now=clock(),
            )
        except TrolleyError as exc:
            error, status = exc.message, exc.status
        else:
            session.clear()
            if not services.needs_second_factor(user):
                key = services.start_session(dbs, user, address=_address(), now=clock())
                return _signed_in(user, key, request.args.get("next"))
            try:
                key = services.open_pending_login(dbs, user, address=_address(), now=clock())
            except TrolleyError as exc:
                error, status = exc.message, exc.status
            else:
                session[PENDING_KEY] = {"key": key, "next": request.args.get("next")}
                target = "auth.totp" if user.has_second_factor else "auth.totp_setup"
                return redirect(url_for(target))
    elif request.method == "POST":
        error, status = "Enter your e-mail and password.", 400
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/login/code", methods=["GET", "POST"])
@public
def totp() -> Response | tuple[str, int]:
    user = _pending_user()
    if user is None or not user.has_second_factor:
        return _start_again()
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit() and user.totp_enabled:
        try:
            user, key = services.verify_login_code(
                db_session(), _box(), _pending_key(), form.code.data or "", now=clock()
            )
        except RateLimited as exc:
            return _start_again(exc.message)
        except TrolleyError as exc:
            error, status = exc.message, exc.status
        else:
            return _signed_in(user, key, _pending("next"))
    elif request.method == "POST":
        error, status = "Enter the 6-digit code from your authenticator app.", 400
    page = render_template("auth/totp.html", form=form, error=error, person=user)
    return page, status


@bp.post("/login/passkey/options")
@public
def login_passkey_options() -> Response | tuple[Response, int]:
    try:
        options = services.login_options(
            db_session(), _pending_key(), _relying_party(), now=clock()
        )
    except TrolleyError as exc:
        return _json_refused(exc)
    return _options(options)


@bp.post("/login/passkey")
@public
def login_passkey() -> Response | tuple[Response, int]:
    """The second step with a passkey: the browser is told where to go next."""
    try:
        user, key = services.finish_login_with_passkey(
            db_session(), _pending_key(), _relying_party(), _credential(), now=clock()
        )
    except RateLimited as exc:
        session.pop(PENDING_KEY, None)
        return _json_refused(exc)
    except TrolleyError as exc:
        return _json_refused(exc)
    return jsonify({"next": _keep_session(user, key, _pending("next"))})


def _qr_svg(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _setup_page(user: User, form: CodeForm, error: str | None, status: int) -> tuple[str, int]:
    secret = session[SETUP_SECRET_KEY]
    uri = services.totp_uri(user, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    page = render_template(
        "auth/totp_setup.html", form=form, error=error, qr=_qr_svg(uri), secret=grouped
    )
    return page, status


@bp.route("/login/code/setup", methods=["GET", "POST"])
@public
def totp_setup() -> Response | tuple[str, int]:
    user = _pending_user()
    if user is None:
        return _start_again()
    if user.has_second_factor:
        return redirect(url_for("auth.totp"))
    secret = session.get(SETUP_SECRET_KEY) or services.new_totp_secret()
    session[SETUP_SECRET_KEY] = secret
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            user, key = services.finish_login_with_new_totp(
                db_session(), _box(), _pending_key(), secret, form.code.data or "", now=clock()
            )
        except TrolleyError as exc:
            error, status = exc.message, exc.status
        else:
            return _signed_in(user, key, _pending("next"))
    elif request.method == "POST":
        error, status = "Enter the 6-digit code from your authenticator app.", 400
    return _setup_page(user, form, error, status)


@bp.post("/logout")
@public
def logout() -> Response:
    EmptyForm().validate_on_submit()  # CSRFProtect already refused a forged request
    services.end_session(db_session(), session.get(SESSION_KEY), now=clock())
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


def _token_form() -> TokenForm:
    form = TokenForm()
    if form.days.data is None:
        form.days.data = services.security(db_session(), current_user.school_id).token_days
    return form


@bp.route("/account", methods=["GET", "POST"])
@requires(Permission.ACCOUNT_USE)
def account() -> Response | str:
    form = _token_form()
    new_token = None
    if form.validate_on_submit():
        with refusing() as refused:
            _token, new_token = services.make_token(
                db_session(),
                current_login(),
                form.name.data or "",
                scope=TokenScope(form.scope.data),
                days=form.days.data,
            )
            db_session().commit()
        if not refused:
            form = TokenForm(formdata=None)
    tokens = services.list_tokens(db_session(), current_user)
    return render_template(
        "auth/account.html",
        form=form,
        tokens=tokens,
        new_token=new_token,
        revoke=EmptyForm(),
        login=current_login(),
        passkeys=current_user.passkeys,
    )


@bp.post("/account/passkeys/options")
@requires(Permission.ACCOUNT_USE)
def passkey_options() -> Response | tuple[Response, int]:
    try:
        options = services.registration_options(db_session(), current_login(), _relying_party())
    except TrolleyError as exc:
        return _json_refused(exc)
    return _options(options)


@bp.post("/account/passkeys")
@requires(Permission.ACCOUNT_USE)
def add_passkey() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    name = body.get("name") if isinstance(body, dict) else None
    try:
        passkey = services.add_passkey(
            db_session(),
            current_login(),
            _relying_party(),
            _credential(),
            name if isinstance(name, str) else "",
            now=clock(),
        )
    except TrolleyError as exc:
        db_session().rollback()
        return _json_refused(exc)
    flash(
        f"Passkey \u201c{passkey.name}\u201d added: you can use it at your next log-in.", "success"
    )
    return jsonify({"next": url_for("auth.account")})


@bp.post("/account/passkeys/<int:passkey_id>/remove")
@requires(Permission.ACCOUNT_USE)
def remove_passkey(passkey_id: int) -> Response:
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        services.remove_passkey(db_session(), current_user, passkey_id)
    if not refused:
        flash("The passkey was removed; it can no longer be used to log in.", "info")
    return redirect(url_for("auth.account"))


@bp.route("/account/step-up", methods=["GET", "POST"])
@requires(Permission.ACCOUNT_USE)
def step_up() -> Response | tuple[str, int]:
    """A fresh passkey or code before approving something destructive."""
    form = CodeForm()
    error, status = None, 200
    next_url = _safe_next(request.args.get("next"))
    if form.validate_on_submit():
        with refusing(None) as refused:
            services.step_up_with_code(
                db_session(), _box(), current_login(), form.code.data or "", now=clock()
            )
        if not refused:
            flash("Confirmed. You can approve for the next few minutes.", "success")
            return redirect(next_url)
        error, status = refused.message, refused.error.status if refused.error else 400
    elif request.method == "POST":
        error, status = "Enter the 6-digit code from your authenticator app.", 400
    page = render_template("auth/step_up.html", form=form, error=error, next_url=next_url)
    return page, status


@bp.post("/account/step-up/options")
@requires(Permission.ACCOUNT_USE)
def step_up_options() -> Response | tuple[Response, int]:
    try:
        options = services.step_up_options(db_session(), current_login(), _relying_party())
    except TrolleyError as exc:
        return _json_refused(exc)
    return _options(options)


@bp.post("/account/step-up/passkey")
@requires(Permission.ACCOUNT_USE)
def step_up_passkey() -> Response | tuple[Response, int]:
    try:
        services.step_up_with_passkey(
            db_session(), current_login(), _relying_party(), _credential(), now=clock()
        )
    except TrolleyError as exc:
        return _json_refused(exc)
    flash("Confirmed. You can approve for the next few minutes.", "success")
    return jsonify({"next": _safe_next(request.args.get("next"))})


@bp.post("/account/tokens/<int:token_id>/revoke")
@requires(Permission.ACCOUNT_USE)
def revoke_token(token_id: int) -> Response:
    dbs = db_session()
    services.revoke_token(dbs, current_user, token_id)
    dbs.commit()
    flash("The token was revoked; anything using it can no longer sign in.", "info")
    return redirect(url_for("auth.account"))


@bp.route("/account/two-step", methods=["GET", "POST"])
@requires(Permission.ACCOUNT_USE)
def two_step() -> Response | tuple[str, int]:
    """Anyone may add a second factor; from then on every log-in asks for a code."""
    if current_user.totp_enabled:
        flash("Codes from an app are already on for your account.", "info")
        return redirect(url_for("auth.account"))
    session.setdefault(SETUP_SECRET_KEY, services.new_totp_secret())
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit():
        with refusing(None) as refused:
            services.enable_totp(
                db_session(), current_user, _box(), session[SETUP_SECRET_KEY], form.code.data or ""
            )
        if not refused:
            session.pop(SETUP_SECRET_KEY, None)
            flash(
                "Two-step verification is on. Log out and in again with a code to make API tokens.",
                "success",
            )
            return redirect(url_for("auth.account"))
        error, status = refused.message, refused.error.status if refused.error else 400
    elif request.method == "POST":
        error, status = "Enter the 6-digit code from your authenticator app.", 400
    return _setup_page(current_user, form, error, status)


# --- people ------------------------------------------------------------------------------------


def _people_page(form: UserForm, error: str | None = None, status: int = 200) -> tuple[str, int]:
    dbs = db_session()
    can_manage = has_permission(current_user.role, Permission.USERS_MANAGE)
    users = services.school_users(dbs, current_user.school_id)
    page = render_template(
        "auth/people.html",
        users=users,
        asking={u.id: confirmations.deactivate(u) for u in users if u.active},
        changes=services.waiting_role_changes(dbs, current_user.school_id) if can_manage else [],
        form=form,
        reason=ReasonForm(formdata=None),
        role_form=RoleForm(formdata=None),
        decide=EmptyForm(formdata=None),
        can_manage=can_manage,
        error=error,
    )
    return page, status


@bp.get("/people")
@requires(Permission.USERS_READ)
def people() -> tuple[str, int]:
    return _people_page(UserForm(formdata=None))


@bp.post("/people")
@requires(Permission.USERS_MANAGE)
def add_person() -> Response | tuple[str, int]:
    form = UserForm()
    if not form.validate_on_submit():
        return _people_page(form, "Please correct the highlighted fields.", 400)
    dbs = db_session()
    with refusing(None) as refused:
        user = services.create_user(
            dbs,
            actor=current_user,
            school=current_user.school,
            email=form.email.data or "",
            name=form.name.data or "",
            role=Role(form.role.data),
            password=form.password.data or "",
        )
    if refused.error:
        return _people_page(form, refused.message, refused.error.status)
    dbs.commit()
    flash(f"{user.name} can now log in as {user.role.label.lower()}.", "success")
    return redirect(url_for("auth.people"))


def _reasoned(user_id: int, turn_on: bool) -> Response | tuple[str, int]:
    form = ReasonForm()
    if not form.validate_on_submit():
        return _people_page(UserForm(formdata=None), "Say why, for the activity trail.", 400)
    dbs = db_session()
    if not turn_on:
        person = services.get_person(dbs, current_user.school_id, user_id)
        if person.active and (asking := unconfirmed(confirmations.deactivate(person))):
            return asking
    with refusing() as refused:
        person = services.get_person(dbs, current_user.school_id, user_id)
        change = services.reactivate if turn_on else services.deactivate
        change(dbs, current_user, person, form.reason.data or "")
    if not refused:
        flash(f"{person.name} is turned {'back on' if turn_on else 'off'}.", "success")
    return redirect(url_for("auth.people"))


@bp.post("/people/<int:user_id>/deactivate")
@requires(Permission.USERS_MANAGE)
def deactivate(user_id: int) -> Response | tuple[str, int]:
    return _reasoned(user_id, turn_on=False)


@bp.post("/people/<int:user_id>/reactivate")
@requires(Permission.USERS_MANAGE)
def reactivate(user_id: int) -> Response | tuple[str, int]:
    return _reasoned(user_id, turn_on=True)


@bp.post("/people/<int:user_id>/role")
@requires(Permission.USERS_MANAGE)
def change_role(user_id: int) -> Response | tuple[str, int]:
    form = RoleForm()
    if not form.validate_on_submit():
        return _people_page(UserForm(formdata=None), "Choose a role.", 400)
    dbs = db_session()
    with refusing() as refused:
        person = services.get_person(dbs, current_user.school_id, user_id)
        waiting = services.change_role(dbs, current_user, person, Role(form.role.data))
    if not refused:
        if waiting is not None:
            flash("Asked: a second administrator must confirm this new role.", "info")
        else:
            flash(f"{person.name} is now {person.role.label.lower()}.", "success")
    return redirect(url_for("auth.people"))


@bp.post("/people/role-changes/<int:change_id>/<any(confirm, decline):decision>")
@requires(Permission.USERS_MANAGE)
def decide_role_change(change_id: int, decision: str) -> Response:
    EmptyForm().validate_on_submit()
    with refusing() as refused:
        if decision == "confirm":
            person = services.confirm_role_change(db_session(), current_user, change_id)
            done = f"{person.name} is now {person.role.label.lower()}."
        else:
            services.decline_role_change(db_session(), current_user, change_id)
            done = "The role change was declined."
    if not refused:
        flash(done, "success")
    return redirect(url_for("auth.people"))


# --- the school's security settings ------------------------------------------------------------


@bp.route("/school/security", methods=["GET", "POST"])
@requires(Permission.SCHOOL_MANAGE)
def security() -> Response | tuple[str, int]:
    dbs = db_session()
    current = services.security(dbs, current_user.school_id)
    form = SecurityForm(data={"idle_minutes": current.idle_minutes})
    status = 200
    if form.validate_on_submit():
        with refusing() as refused:
            services.set_security(
                dbs, current_user, current_user.school_id, idle_minutes=form.idle_minutes.data
            )
        if not refused:
            flash("Security settings saved.", "success")
            return redirect(url_for("auth.security"))
        status = 400
    elif request.method == "POST":
        status = 400
    page = render_template("auth/security.html", form=form, current=current)
    return page, status
