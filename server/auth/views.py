"""Log-in with a second factor, sign-out, the account page and the people list."""

from __future__ import annotations

import base64
import io
import time
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from server.auth import services
from server.auth.forms import CodeForm, EmptyForm, LoginForm, TokenForm, UserForm
from server.auth.models import Role, User
from server.auth.permissions import Permission, public, requires
from server.crypto import SecretBox
from server.errors import TrolleyError
from server.extensions import db_session

bp = Blueprint("auth", __name__)
PENDING_KEY = "pending_login"
PENDING_SECONDS = 300


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


def _pending_user() -> User | None:
    pending = session.get(PENDING_KEY)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    return services.load_session_user(db_session(), pending["id"])


def _finish(user: User, method: str) -> Response:
    next_url = _safe_next(session.get(PENDING_KEY, {}).get("next"))
    session.pop(PENDING_KEY, None)
    session.clear()
    session.permanent = True
    login_user(user)
    services.complete_login(db_session(), user, address=_address(), method=method)
    return redirect(next_url)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        try:
            user = services.authenticate(
                db_session(),
                email=form.email.data or "",
                password=form.password.data or "",
                address=_address(),
            )
        except TrolleyError as exc:
            error, status = exc.message, exc.status
        else:
            session[PENDING_KEY] = {
                "id": user.get_id(),
                "at": time.time(),
                "next": request.args.get("next"),
            }
            if services.needs_second_factor(user):
                target = "auth.totp" if user.totp_enabled else "auth.totp_setup"
                return redirect(url_for(target))
            return _finish(user, "password")
    elif request.method == "POST":
        error, status = "Enter your e-mail and password.", 400
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/login/code", methods=["GET", "POST"])
@public
def totp() -> Response | tuple[str, int]:
    user = _pending_user()
    if user is None or not user.totp_enabled:
        flash("Your log-in timed out. Please start again.", "warning")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            services.verify_totp(db_session(), user, _box(), form.code.data or "")
        except TrolleyError as exc:
            error, status = exc.message, exc.status
        else:
            return _finish(user, "password+totp")
    elif request.method == "POST":
        error, status = "Enter the 6-digit code from your authenticator app.", 400
    return render_template("auth/totp.html", form=form, error=error), status


def _qr_svg(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


@bp.route("/login/code/setup", methods=["GET", "POST"])
@public
def totp_setup() -> Response | tuple[str, int]:
    user = _pending_user()
    if user is None:
        flash("Your log-in timed out. Please start again.", "warning")
        return redirect(url_for("auth.login"))
    if user.totp_enabled:
        return redirect(url_for("auth.totp"))
    secret = session.get("totp_setup_secret") or services.new_totp_secret()
    session["totp_setup_secret"] = secret
    form = CodeForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            services.enable_totp(db_session(), user, _box(), secret, form.code.data or "")
        except TrolleyError as exc:
            error, status = exc.message, exc.status
        else:
            session.pop("totp_setup_secret", None)
            return _finish(user, "password+totp-setup")
    elif request.method == "POST":
        error, status = "Enter the 6-digit code from your authenticator app.", 400
    uri = services.totp_uri(user, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render_template(
        "auth/totp_setup.html", form=form, error=error, qr=_qr_svg(uri), secret=grouped
    ), status


@bp.post("/logout")
@public
def logout() -> Response:
    EmptyForm().validate_on_submit()  # CSRFProtect already refused a forged request
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@requires(Permission.ACCOUNT_USE)
def account() -> Response | str:
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        dbs = db_session()
        _token, new_token = services.issue_token(dbs, current_user, form.name.data or "")
        dbs.commit()
        form = TokenForm(formdata=None)
    tokens = services.list_tokens(db_session(), current_user)
    return render_template(
        "auth/account.html", form=form, tokens=tokens, new_token=new_token, revoke=EmptyForm()
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@requires(Permission.ACCOUNT_USE)
def revoke_token(token_id: int) -> Response:
    dbs = db_session()
    services.revoke_token(dbs, current_user, token_id)
    dbs.commit()
    flash("The token was revoked; anything using it can no longer sign in.", "info")
    return redirect(url_for("auth.account"))


def _people_page(form: UserForm, error: str | None = None, status: int = 200) -> tuple[str, int]:
    from server.auth.permissions import has_permission

    users = services.school_users(db_session(), current_user.school_id)
    can_manage = has_permission(current_user.role, Permission.USERS_MANAGE)
    page = render_template(
        "auth/people.html", users=users, form=form, can_manage=can_manage, error=error
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
    try:
        user = services.create_user(
            dbs,
            actor=current_user,
            school=current_user.school,
            email=form.email.data or "",
            name=form.name.data or "",
            role=Role(form.role.data),
            password=form.password.data or "",
        )
    except TrolleyError as exc:
        dbs.rollback()
        return _people_page(form, exc.message, exc.status)
    dbs.commit()
    flash(f"{user.name} can now log in as {user.role.label.lower()}.", "success")
    return redirect(url_for("auth.people"))
