"""One error hierarchy for the server, translated to one shape for people and for the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TrolleyError(Exception):
    """A rule said no; `message` is written for a member of school staff."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        code: str | None = None,
        aftermath: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        # What must outlive the refusal (the headteacher's alert): whoever rolls the refused
        # work back runs it on the session afterwards and commits.
        self.aftermath = aftermath
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
