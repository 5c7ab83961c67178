"""The HTTPS calls a kiosk makes: enrolment, the factory-reset confirmation, and check-ins.

    POST {server_url}/api/v1/enrol
        {"token", "public_key", "platform", "tls_public_key_pem"?}
        → 201 {"device_id", "asset_tag", "school", "broker_url", "username", "password",
               "ca_pem", "client_certificate_pem", "server_keys": {kid: key}, "server_url"}
    POST {server_url}/api/v1/device-channel/confirm-reset
        an envelope signed by the device key → 200 an envelope signed by a server key
    POST {server_url}/api/v1/device-channel/whereabouts
        an envelope signed by the device key {"ssid"?, "gateway"?} → 200 {"public_address"}

Errors come back as 4xx `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk_client.errors import (
    BadServerResponseError,
    EnrolmentRefusedError,
    ServerUnreachableError,
)
from mqtt.client import BrokerURL
from mqtt.errors import BrokerURLError
from mqtt.topics import is_device_id
from provisioning.payload import is_http_url

if TYPE_CHECKING:
    import requests

__all__ = [
    "CHECK_IN_PATH",
    "CONFIRM_RESET_PATH",
    "ENROL_PATH",
    "EnrolmentResponse",
    "ServerClient",
]

logger = logging.getLogger(__name__)

ENROL_PATH = "/api/v1/enrol"
CONFIRM_RESET_PATH = "/api/v1/device-channel/confirm-reset"
CHECK_IN_PATH = "/api/v1/device-channel/whereabouts"
# Far above any real answer; stops a hostile or broken server from filling memory.
MAX_RESPONSE_BYTES = 1_000_000
_MAX_TEXT = 500


@dataclass(frozen=True)
class EnrolmentResponse:
    """The server's answer to a successful enrolment, checked field by field."""

    device_id: str
    asset_tag: str
    school: str
    broker_url: str
    username: str
    password: str = field(repr=False)
    ca_pem: str | None
    client_certificate_pem: str | None
    server_keys: dict[str, str]
    server_url: str

    @classmethod
    def from_json(cls, data: Any) -> EnrolmentResponse:
        """Validate the 201 body; `BadServerResponseError` names the first bad field."""
        if not isinstance(data, dict):
            raise BadServerResponseError("the enrolment answer is not a JSON object")

        def text(name: str, *, optional: bool = False, limit: int = _MAX_TEXT) -> Any:
            """A required (or optional) bounded string field of the answer."""
            value = data.get(name)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value or len(value) > limit:
                raise BadServerResponseError(f"the enrolment answer has no valid {name!r}")
            return value

        device_id = text("device_id")
        if not is_device_id(device_id):
            raise BadServerResponseError("the enrolment answer's device_id is not a device id")
        broker_url = text("broker_url")
        try:
            parsed = BrokerURL.parse(broker_url)
        except BrokerURLError as exc:
            raise BadServerResponseError(f"the enrolment answer's broker_url: {exc}") from None
        if parsed.username or parsed.password:
            raise BadServerResponseError("the enrolment answer's broker_url carries credentials")
        username = text("username")
        if username != device_id:
            raise BadServerResponseError("the enrolment answer's username is not the device id")
        server_url = text("server_url")
        if not is_http_url(server_url):
            raise BadServerResponseError("the enrolment answer's server_url is not an http(s) URL")
        keys = data.get("server_keys")
        if (
            not isinstance(keys, dict)
            or not keys
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
        ):
            raise BadServerResponseError("the enrolment answer has no valid server_keys")
        return cls(
            device_id=device_id,
            asset_tag=text("asset_tag"),
            school=text("school"),
            broker_url=broker_url,
            username=username,
            password=text("password"),
            ca_pem=text("ca_pem", optional=True, limit=MAX_RESPONSE_BYTES),
            client_certificate_pem=text(
                "client_certificate_pem", optional=True, limit=MAX_RESPONSE_BYTES
            ),
            server_keys=dict(keys),
            server_url=server_url,
        )


def _error_text(response: requests.Response) -> tuple[str, str]:
    """(code, message) from the server's error shape, or generic ones."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "error")[:100]
        message = str(error.get("message") or "")[:_MAX_TEXT]
        return code, message
    return f"http_{response.status_code}", (response.reason or "")[:_MAX_TEXT]


class ServerClient:
    """HTTPS calls to the Trolley server (`requests`, bounded time and size)."""

    def __init__(
        self,
        server_url: str,
        *,
        timeout: float = 10.0,
        ca_file: Path | None = None,
        session: requests.Session | None = None,
    ) -> None:
        """Talk to `server_url`; `ca_file` replaces the system CAs for its certificate."""
        self.server_url = server_url.rstrip("/")
        self.timeout = timeout
        self.verify: bool | str = str(ca_file) if ca_file is not None else True
        # No session of our own: the fleet simulator shares one client between many devices,
        # and a `requests.Session` is neither small nor thread-safe.
        self.session = session

    def _post(
        self, path: str, *, json_body: Any = None, data: bytes | None = None
    ) -> requests.Response:
        """POST and return the response; `ServerUnreachableError` for transport failures."""
        # Imported here: a running kiosk calls the server only for a reset or a check-in.
        import requests

        url = self.server_url + path
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            poster = self.session.post if self.session is not None else requests.post
            response = poster(
                url,
                json=json_body,
                data=data,
                headers=headers,
                timeout=self.timeout,
                verify=self.verify,
                # A redirected POST turns into a GET; the contract has no redirects.
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise ServerUnreachableError(f"TLS to {self.server_url} failed: {exc}") from exc
        except requests.RequestException as exc:
            raise ServerUnreachableError(f"cannot reach {self.server_url}: {exc}") from exc
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise BadServerResponseError(f"{path}: the answer is larger than {MAX_RESPONSE_BYTES}")
        if response.status_code >= 500:
            code, message = _error_text(response)
            raise ServerUnreachableError(
                f"{path}: server error {response.status_code} ({code}) {message}".rstrip()
            )
        if 300 <= response.status_code < 400:
            raise BadServerResponseError(f"{path}: unexpected redirect {response.status_code}")
        return response

    def enrol(
        self,
        *,
        token: str,
        public_key: str,
        platform: str,
        tls_public_key_pem: str | None = None,
    ) -> EnrolmentResponse:
        """Present the one-time token and the device key; return the checked answer."""
        body: dict[str, Any] = {"token": token, "public_key": public_key, "platform": platform}
        if tls_public_key_pem is not None:
            body["tls_public_key_pem"] = tls_public_key_pem
        response = self._post(ENROL_PATH, json_body=body)
        if response.status_code != 201:
            code, message = _error_text(response)
            raise EnrolmentRefusedError(
                f"the server refused the enrolment ({response.status_code} {code}): {message}",
                code=code,
                status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError:
            raise BadServerResponseError("the enrolment answer is not JSON") from None
        return EnrolmentResponse.from_json(data)

    def confirm_reset(self, envelope: bytes) -> bytes:
        """Send the signed confirmation request; return the raw (signed) answer of a 200."""
        response = self._post(CONFIRM_RESET_PATH, data=envelope)
        if response.status_code != 200:
            code, message = _error_text(response)
            raise BadServerResponseError(
                f"the server answered {response.status_code} ({code}) {message}".rstrip()
            )
        return bytes(response.content)

    def check_in(self, envelope: bytes) -> str:
        """Send a signed check-in; return the public address the server saw."""
        response = self._post(CHECK_IN_PATH, data=envelope)
        if response.status_code != 200:
            code, message = _error_text(response)
            raise BadServerResponseError(
                f"the server answered {response.status_code} ({code}) {message}".rstrip()
            )
        try:
            address = response.json().get("public_address")
        except (ValueError, AttributeError):
            address = None
        if not isinstance(address, str):
            raise BadServerResponseError("the check-in answer has no public_address")
        return address[:45]
