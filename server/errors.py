"""One error hierarchy for the server, translated to one shape for people and for the API."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class TrolleyError(Exception):
    """A rule said no; `message` is written for a member of school staff."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class ValidationFailed(TrolleyError):
    status = 400
    code = "invalid"


class Unauthorised(TrolleyError):
    status = 401
    code = "unauthorised"


class Forbidden(TrolleyError):
    status = 403
    code = "forbidden"


class NotFound(TrolleyError):
    status = 404
    code = "not_found"


class Conflict(TrolleyError):
    status = 409
    code = "conflict"


class Gone(TrolleyError):
    status = 410
    code = "gone"


class RateLimited(TrolleyError):
    status = 429
    code = "too_many_attempts"


HTTP_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorised", "Please log in first."),
    403: ("forbidden", "Your role does not allow this."),
    404: ("not_found", "We could not find that page or record."),
    405: ("method_not_allowed", "That action is not available here."),
    410: ("gone", "That is no longer available."),
    413: ("too_large", "That upload is too large."),
    415: ("unsupported_media_type", "Send JSON with Content-Type: application/json."),
    429: ("too_many_attempts", "Too many attempts; please wait and try again."),
    500: ("internal_error", "Something went wrong on our side. It has been logged."),
}


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
        response, status = error_response(
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
        return error_response(500, code, message)
