"""Reaching Google: services built from the published discovery documents, errors in plain words."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from server.errors import TrolleyError, ValidationFailed

log = logging.getLogger(__name__)

DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.device.chromeos"
POLICY_SCOPE = "https://www.googleapis.com/auth/chrome.management.policy"
SCOPES = (DIRECTORY_SCOPE, POLICY_SCOPE)
SCOPE_NAMES = {
    DIRECTORY_SCOPE: "ChromeOS devices (directory)",
    POLICY_SCOPE: "Chrome policy",
}
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# google-auth's constructors and refresh carry no annotations.
Credentials: Any = service_account.Credentials
TIMEOUT = 20.0


class GoogleError(TrolleyError):
    """Google refused a call or could not be reached; the message is Google's, in our words."""

    status = 502
    code = "google_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        http_status: int | None = None,
        retry_after: timedelta | None = None,
        maybe_delivered: bool = False,
        google_words: str = "",
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.http_status = http_status
        self.retry_after = retry_after
        # The request may have reached Google before the connection failed.
        self.maybe_delivered = maybe_delivered
        self.google_words = google_words or message


@dataclass(frozen=True)
class ServiceKey:
    """A service-account key as Google issues it (JSON), checked before it is sealed."""

    info: dict[str, Any]

    @property
    def client_email(self) -> str:
        return str(self.info["client_email"])

    @property
    def key_id(self) -> str:
        return str(self.info["private_key_id"])

    @classmethod
    def parse(cls, text: str) -> ServiceKey:
        """Read an uploaded key file, or say exactly what is wrong with it."""
        try:
            info = json.loads(text)
        except ValueError:
            raise ValidationFailed(
                "That file is not a Google service-account key: it is not JSON. Download the key "
                "again from the Google Cloud console (Service accounts › Keys › Add key › JSON)."
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValidationFailed(
                "That JSON file is not a service-account key (its type should be "
                "'service_account'). Download a JSON key for the service account."
            )
        missing = [
            name
            for name in ("client_email", "client_id", "private_key", "private_key_id")
            if not isinstance(info.get(name), str) or not info.get(name)
        ]
        if missing:
            raise ValidationFailed(
                f"The key file is incomplete: it has no {', '.join(missing)}. Download it again."
            )
        try:
            Credentials.from_service_account_info(info)
        except (ValueError, GoogleAuthError):
            raise ValidationFailed(
                "The key file's private key cannot be read. Download a new key and try again."
            ) from None
        return cls(info)


@dataclass
class Clients:
    """The two Google services one school's link can call, acting as its named administrator."""

    directory: Any
    policy: Any

    def close(self) -> None:
        """Close the connections (the HTTP library would otherwise leave them open)."""
        self.directory.close()
        self.policy.close()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GoogleApi:
    """Where Google is: its own endpoints, or (`root`) one address standing in for all of them."""

    root: str | None = None
    timeout: float = TIMEOUT
    extra_headers: dict[str, str] = field(default_factory=dict)

    def credentials(self, key: ServiceKey, admin_email: str, scopes: Iterable[str] = SCOPES) -> Any:
        """Domain-wide delegation: the service account acts as the school's administrator."""
        credentials = Credentials.from_service_account_info(
            key.info, scopes=list(scopes), subject=admin_email
        )
        # The token address is ours to choose, never the uploaded file's.
        token_uri = f"{self.root.rstrip('/')}/token" if self.root else GOOGLE_TOKEN_URI
        return credentials.with_token_uri(token_uri)

    def _http(self, credentials: Any) -> Any:
        return google_auth_httplib2.AuthorizedHttp(
            credentials, http=httplib2.Http(timeout=self.timeout)
        )

    def _build(self, name: str, version: str, credentials: Any) -> Any:
        options = {"api_endpoint": f"{self.root.rstrip('/')}/"} if self.root else None
        return build(
            name,
            version,
            http=self._http(credentials),
            static_discovery=True,
            cache_discovery=False,
            client_options=options,
        )

    def connect(self, key: ServiceKey, admin_email: str, scopes: Iterable[str] = SCOPES) -> Clients:
        """Services for the Directory API and the Chrome Policy API from Google's own documents."""
        credentials = self.credentials(key, admin_email, scopes)
        return Clients(
            directory=self._build("admin", "directory_v1", credentials),
            policy=self._build("chromepolicy", "v1", credentials),
        )

    def token_problem(self, key: ServiceKey, admin_email: str, scope: str) -> str | None:
        """Why Google will not let the key act for `admin_email` with `scope`, or None."""
        credentials = self.credentials(key, admin_email, [scope])
        http = httplib2.Http(timeout=self.timeout)
        try:
            credentials.refresh(google_auth_httplib2.Request(http))
        except Exception as exc:
            return translate(exc).message
        finally:
            http.close()
        return None


def _google_message(exc: HttpError) -> str:
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
        message = body["error"]["message"]
        return str(message)
    except (ValueError, KeyError, TypeError):
        return str(exc.reason or exc.resp.reason or "")


def _retry_after(exc: HttpError) -> timedelta | None:
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    if value and str(value).isdigit():
        return timedelta(seconds=min(int(value), 3600))
    return None


def translate(exc: BaseException) -> GoogleError:
    """What went wrong talking to Google, as a GoogleError whose message staff can act on."""
    if isinstance(exc, GoogleError):
        return exc
    if isinstance(exc, HttpError):
        status = exc.resp.status
        words = _google_message(exc)
        if status == 429:
            return GoogleError(
                f"Google asked Trolley to slow down (quota): {words}",
                retryable=True,
                http_status=status,
                retry_after=_retry_after(exc),
                google_words=words,
            )
        if status >= 500:
            return GoogleError(
                f"Google had a problem of its own ({status}): {words}",
                retryable=True,
                http_status=status,
                retry_after=_retry_after(exc),
                google_words=words,
            )
        if status in (401, 403):
            return GoogleError(
                f"Google refused: {words}. Check that the administrator Trolley acts as has the "
                "ChromeOS device and Chrome policy admin privileges.",
                retryable=False,
                http_status=status,
                google_words=words,
            )
        return GoogleError(
            f"Google refused the request: {words}",
            retryable=False,
            http_status=status,
            google_words=words,
        )
    if isinstance(exc, RefreshError):
        words = str(exc.args[0]) if exc.args else str(exc)
        if "unauthorized_client" in words:
            return GoogleError(
                "Google would not let the service account act for the school: in the Google "
                "Admin console, domain-wide delegation for its client ID does not grant the "
                f"scopes Trolley needs ({words}).",
                retryable=False,
                google_words=words,
            )
        if "invalid_grant" in words:
            return GoogleError(
                "Google refused the administrator or the key: check the administrator's e-mail "
                f"address and that the key has not been deleted ({words}).",
                retryable=False,
                google_words=words,
            )
        return GoogleError(f"Google refused to sign Trolley in: {words}", retryable=False)
    if isinstance(exc, TimeoutError | socket.timeout):
        return GoogleError("Google did not answer in time.", retryable=True, maybe_delivered=True)
    if isinstance(exc, TransportError | httplib2.HttpLib2Error | OSError):
        return GoogleError(f"Google could not be reached ({type(exc).__name__}).", retryable=True)
    raise exc


def call(request: Any) -> dict[str, Any]:
    """Run one prepared request; every failure comes back as a GoogleError."""
    try:
        result = request.execute(num_retries=0)
    except Exception as exc:
        raise translate(exc) from exc
    return result if isinstance(result, dict) else {}
