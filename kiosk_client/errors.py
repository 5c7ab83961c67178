"""The single exception hierarchy of the kiosk client; each error maps to one CLI exit code."""

from __future__ import annotations

from typing import ClassVar


class KioskError(Exception):
    """Base class: every error this package raises on purpose."""

    exit_code: ClassVar[int] = 1


class UsageError(KioskError):
    """A command-line argument (for example the enrolment code) is unusable."""

    exit_code = 2


class EnrolmentRefusedError(KioskError):
    """The server refused the enrolment (bad or used token), or its answer cannot be trusted."""

    exit_code = 3

    def __init__(self, message: str, *, code: str = "refused", status: int | None = None) -> None:
        """Keep the server's error code and HTTP status."""
        super().__init__(message)
        self.code = code
        self.status = status


class ServerUnreachableError(KioskError):
    """The server could not be reached, timed out, or answered with a server error."""

    exit_code = 4


class BadServerResponseError(ServerUnreachableError):
    """The server answered, but not with what the contract promises."""


class ConfigError(KioskError):
    """The data directory's configuration, keys or state are missing or invalid."""

    exit_code = 5


class NotEnrolledError(ConfigError):
    """The data directory holds no enrolment (never enrolled, or factory reset since)."""


class AlreadyEnrolledError(KioskError):
    """The data directory already holds an enrolment; enrolling again needs `--force`."""

    exit_code = 6


class AdapterError(KioskError):
    """The platform adapter could not do what was asked; the text says what and why."""

    exit_code = 7


class CommandFailedError(KioskError):
    """A command handler failed in an expected way; `result` goes into the `failed` ack."""

    def __init__(self, detail: str, result: dict[str, object] | None = None) -> None:
        """Keep the detail and the result for the ack."""
        super().__init__(detail)
        self.detail = detail
        self.result = dict(result or {})


class ResetNotConfirmedError(CommandFailedError):
    """The server did not confirm a factory reset over HTTPS, so nothing is erased."""
