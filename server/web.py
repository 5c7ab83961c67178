"""Wiring the web layer: blueprints, errors, the session user, security headers, refusals and
confirmations."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask import (
    Flask,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from server.auth.permissions import Permission, declared_permission, has_permission
from server.db import utcnow
from server.domains import NAMES, import_part
from server.errors import HTTP_MESSAGES, TrolleyError
from server.extensions import csrf, db_session, login_manager
from server.schools.models import School
from server.schools.services.clock import FALLBACK_ZONE, when
from server.schools.services.clock import day as clock_day

if TYPE_CHECKING:
    from server.auth.models import LoginSession

log = logging.getLogger(__name__)
# The browser's cookie keeps this session key; the server keeps only its hash.
SESSION_KEY = "login_key"


class _TemplateCode(BytecodeCache):
    """Compiled templates, kept for the life of the process: each app built in it (a test run
    builds hundreds) loads them instead of parsing and compiling every template again. Jinja
    checks each one against its source, so an edited template is compiled afresh."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if (code := self._code.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CODE = _TemplateCode()

# Pages include each domain's optional partials (home cards, device panels) in this order.
DOMAINS = sorted(NAMES)


def register_blueprints(app: Flask) -> None:
    """Every domain's views.py `bp`, and its api.py routes on the shared API blueprint."""
    from server.openapi import build_api_blueprint

    import_part("api")
    for views in import_part("views"):
        app.register_blueprint(views.bp)
    api = build_api_blueprint()
    csrf.exempt(api)  # cookie-authenticated API writes are CSRF-checked in server.openapi
    app.register_blueprint(api)


def clock() -> datetime:
    """Now, from the app's clock (tests put their own in `app.extensions["trolley.clock"]`)."""
    now: datetime = current_app.extensions["trolley.clock"]()
    return now


def current_login() -> LoginSession | None:
    """The signed-in browser session behind this request, if any."""
    current_user._get_current_object()
    login: LoginSession | None = g.get("login_session")
    return login


def install_security(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    app.extensions.setdefault("trolley.clock", utcnow)

    @login_manager.user_loader
    def _load(user_id: str) -> object:
        from server.auth.services import resume_session

        resumed = resume_session(db_session(), user_id, session.get(SESSION_KEY), now=clock())
        g.login_session = resumed.login
        if resumed.timed_out:
            flash(
                f"You were signed out after {resumed.idle_minutes} minutes without activity.",
                "info",
            )
        return resumed.login.user if resumed.login else None

    @app.before_request
    def _resume_session() -> None:
        # Load (or time out) the session before any view runs: resuming it may commit, which
        # must never happen half-way through a view's own changes.
        if request.endpoint != "static":
            current_user._get_current_object()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            "script-src 'self'; media-src 'self' blob:; frame-ancestors 'none'",
        )
        if request.path.startswith("/api/") or current_user.is_authenticated:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def _template_helpers() -> dict[str, object]:
        def can(permission: str) -> bool:
            return bool(
                current_user.is_authenticated
                and has_permission(current_user.role, Permission(permission))
            )

        return {"can": can, "settings": app.extensions["trolley.settings"], "domains": DOMAINS}

    app.add_template_filter(when_filter, "when")
    app.add_template_global(confirm_first, "confirm_first")
    app.add_template_filter(day_filter, "day")

    # Fail fast: a route without a declared permission never ships.
    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        and declared_permission(app.view_functions[rule.endpoint]) is None
    ]
    if undeclared:
        raise RuntimeError(f"routes without a declared permission: {', '.join(sorted(undeclared))}")


# --- times in pages ------------------------------------------------------------------------


def _school(school: School | None) -> School:
    """The school whose clock a page shows: the one given, the reader's, or UK time."""
    if school is not None:
        return school
    if current_user.is_authenticated:
        mine: School = current_user.school
        return mine
    return School(timezone=FALLBACK_ZONE)


def when_filter(moment: datetime | None, school: School | None = None, missing: str = "—") -> str:
    """`{{ at|when }}`: '14:05 on Tue 3 Mar 2026' on the school's clock, in every page."""
    return when(moment, _school(school), missing=missing)


def day_filter(
    day: date | datetime | None, school: School | None = None, long: bool = False
) -> str:
    """`{{ d|day }}`: 'Tue 3 March 2026'; a time is first put on the school's calendar."""
    return clock_day(day, _school(school), long=long)


# --- errors ------------------------------------------------------------------------------


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(
    status: int, code: str, message: str, details: Any = None
) -> tuple[Response | str, int]:
    if wants_json():
        body = {"error": {"code": code, "message": message, "details": details}}
        return jsonify(body), status
    return render_template("error.html", status=status, message=message, details=details), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TrolleyError)
    def _domain(exc: TrolleyError) -> tuple[Response | str, int]:
        roll_back(exc)
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[Response | str, int]:
        return error_response(
            400,
            "csrf_failed",
            "This form has expired or did not come from Trolley. Reload the page and try again.",
        )

    from sqlalchemy.exc import DataError

    @app.errorhandler(OverflowError)
    @app.errorhandler(DataError)
    def _too_big(exc: Exception) -> tuple[Response | str, int]:
        # A number larger than the database can hold came from outside: the request is wrong.
        return error_response(400, "invalid", "A number in the request is far too large.")

    from sqlalchemy.exc import DBAPIError

    from server.db import is_contention

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError) -> tuple[Response | str, int]:
        if not is_contention(exc):
            return _unexpected(exc)
        # Two people changed the same records at the same instant and ours lost: nothing was
        # saved, and the same request sent again will succeed.
        log.warning("database contention on %s %s: %s", request.method, request.path, exc.orig)
        response, status = _after_failure(
            503, "busy", "Someone else was changing the same records just then. Try again."
        )
        if isinstance(response, Response):
            response.headers["Retry-After"] = "1"
        return response, status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response | str, int]:
        status = exc.code or 500
        code, message = HTTP_MESSAGES.get(status, ("http_error", exc.name))
        return error_response(status, code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response | str, int]:
        # Never show an internal exception's text to a user.
        log.exception("unhandled error on %s %s", request.method, request.path)
        code, message = HTTP_MESSAGES[500]
        return _after_failure(500, code, message)


def _after_failure(status: int, code: str, message: str) -> tuple[Response | str, int]:
    """The error page after a failure that may have left the request's transaction unusable:
    roll it back first, since drawing the page (school, navigation) reads the database."""
    try:
        db_session().rollback()
    except Exception:  # a broken connection: the page below must still be drawn
        log.warning("could not roll back after a failed request", exc_info=True)
    try:
        return error_response(status, code, message)
    except Exception:
        log.exception("could not draw the error page for %s %s", request.method, request.path)
        return Response(message, status=status, mimetype="text/plain"), status


# --- refusals in views --------------------------------------------------------------------


@dataclass
class Refusal:
    """What a refused service call said; false while nothing was refused."""

    error: TrolleyError | None = None

    def __bool__(self) -> bool:
        return self.error is not None

    @property
    def message(self) -> str:
        return self.error.message if self.error else ""

    @property
    def messages(self) -> list[str]:
        """Each detail's message, or the one message when there are no details."""
        if self.error is None:
            return []
        details = self.error.details if isinstance(self.error.details, list) else []
        return [d["message"] for d in details if isinstance(d, dict)] or [self.error.message]


def roll_back(exc: TrolleyError) -> None:
    """Undo a refused request's work, keeping what must outlive it (the head's alert)."""
    session = db_session()
    session.rollback()
    if exc.aftermath is not None:
        exc.aftermath(session)
        session.commit()


@contextmanager
def refusing(category: str | None = "warning") -> Iterator[Refusal]:
    """Run service calls whose refusal rolls the session back and is flashed (unless `category`
    is None), so the view goes on to show the page instead of an error."""
    refusal = Refusal()
    try:
        yield refusal
    except TrolleyError as exc:
        roll_back(exc)
        refusal.error = exc
        if category is not None:
            flash(exc.message, category)


# --- confirming irreversible and bulk actions ----------------------------------------------------

# The field a confirmed form carries; the header that marks a page as a question, not a result.
CONFIRMED_FIELD = "confirmed"
CONFIRM_HEADER = "X-Trolley-Confirm"


@dataclass(frozen=True)
class Confirmation:
    """What a person is about to do and what follows from it, asked before it is done."""

    question: str  # carries the key figure, e.g. "Sign off the audit at 28 % found?"
    consequences: tuple[str, ...]
    button: str  # the action's own words, e.g. "Sign off at 28 % found"

    def token(self, path: str) -> str:
        """Ties a yes to these words on this address: a changed figure asks again."""
        text = "\n".join((path, self.question, self.button))
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def confirm_first(confirmation: Confirmation | None, action: str) -> Markup:
    """`<form action="{{ url }}" {{ confirm_first(c, url) }}>`: the question, consequences,
    button and token the server asks with, for the page's script to ask before the one post;
    nothing when the action asks nothing."""
    if confirmation is None:
        return Markup("")
    path = action.split("?", 1)[0]
    # The server checks the token against its own path, which leaves out any mount prefix.
    if request.script_root and path.startswith(request.script_root):
        path = path[len(request.script_root) :]
    fields = {
        "token": confirmation.token(path),
        "question": confirmation.question,
        "consequences": json.dumps(list(confirmation.consequences)),
        "button": confirmation.button,
    }
    return Markup("data-confirm ") + Markup(" ").join(
        Markup('data-confirm-{}="{}"').format(name, value) for name, value in fields.items()
    )


def unconfirmed(confirmation: Confirmation, *, back: str | None = None) -> Response | None:
    """None when the posted form confirms exactly this; otherwise the page that asks, which
    posts the same fields again with the confirmation (so it works without scripts)."""
    token = confirmation.token(request.path)
    if request.form.get(CONFIRMED_FIELD) == token:
        return None
    fields = [
        (name, value)
        for name, values in request.form.lists()
        if name not in ("csrf_token", CONFIRMED_FIELD)
        for value in values
    ]
    referrer = request.referrer
    cancel = back or (
        referrer
        if referrer and referrer.startswith(request.host_url)
        else url_for("dashboard.home")
    )
    page = render_template(
        "confirm.html",
        confirmation=confirmation,
        token=token,
        fields=fields,
        action=request.path,
        cancel=cancel,
    )
    response = make_response(page, 200)
    response.headers[CONFIRM_HEADER] = "ask"
    return response
