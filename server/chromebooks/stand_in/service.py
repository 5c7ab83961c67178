"""A local Google: the Directory and Chrome Policy APIs from their published discovery documents.

Every request is checked against the same discovery documents the client library is built from:
the method and path, path and query parameters (types, enums, patterns, limits), the bearer token
and its scopes, and the JSON body against the method's request schema (unknown fields, types,
enum values, required fields). What Google would reject is recorded in `violations`: a test
fails on any, the demo logs them. The service keeps state (devices, commands, org-unit
policies) so sync, commands and resolve behave like Google's, with paging, 429s and commands that
stay PENDING until the device checks in.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import threading
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt as google_jwt

from server.chromebooks.services.google import DIRECTORY_SCOPE, POLICY_SCOPE
from server.chromebooks.stand_in.catalogue import (
    CUSTOMER,
    SCHEMAS,
    check_policy_value,
    schema_resource,
)
from server.chromebooks.stand_in.checks import (
    check_params,
    check_value,
    discovery_doc,
    error,
    match,
    routes_of,
)

# google-auth's JWT helpers carry no annotations.
jwt: Any = google_jwt
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google checks that assertions name its own token endpoint, wherever they are posted.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


@functools.cache
def _private_key_pem() -> str:
    """One RSA key per process: making one takes a moment, and a stand-in needs no more."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- state ---------------------------------------------------------------------------------


@dataclass
class StandInCommand:
    command_id: str
    device_id: str
    type: str
    issued_at: datetime
    state: str = "PENDING"
    result: dict[str, Any] | None = None
    gets: int = 0


@dataclass
class Account:
    """A service account with domain-wide delegation for some scopes."""

    client_email: str
    client_id: str
    public_pem: bytes
    granted: set[str]


@dataclass
class Fault:
    status: int
    match: str
    message: str
    retry_after: int | None


@dataclass
class GoogleStandIn:
    """Google's Directory and Chrome Policy APIs, and its token endpoint, on 127.0.0.1."""

    port: int
    customer_id: str = CUSTOMER
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: dict[str, StandInCommand] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    # Administrators of the domain and the admin privileges their role gives them.
    admins: dict[str, set[str]] = field(default_factory=dict)
    org_units: dict[str, str] = field(default_factory=dict)  # id -> path
    policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any], Any]] = field(default_factory=list)
    # Devices that do not check in: their commands stay PENDING.
    asleep: set[str] = field(default_factory=set)
    failing_commands: dict[str, str] = field(default_factory=dict)  # device id -> error message
    polls_to_execute: int = 2
    _faults: deque[Fault] = field(default_factory=deque)
    _tokens: dict[str, tuple[str, str, set[str]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7_000_000_001))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.docs = {
            "directory": discovery_doc("admin", "directory_v1"),
            "policy": discovery_doc("chromepolicy", "v1"),
        }
        self.routes = [route for doc in self.docs.values() for route in routes_of(doc)]

    # -- running ----------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Start answering (again) on the same port."""
        fake = self

        class Handler(_Handler):
            google = fake

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop answering: connections are refused, as when Google cannot be reached."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None

    # -- setting up the domain --------------------------------------------------------------

    def service_account(
        self, *, granted: set[str] | None = None, email: str | None = None
    ) -> dict[str, Any]:
        """A new service-account key (the JSON Google hands out) with delegation for `granted`."""
        number = len(self.accounts)
        info = {
            "type": "service_account",
            "project_id": "school-project",
            "private_key_id": uuid.uuid4().hex,
            "private_key": _private_key_pem(),
            "client_email": email or f"trolley-{number}@school-project.iam.gserviceaccount.com",
            "client_id": str(100_000_000_000_000_000_000 + number),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
        self.register_key(info, granted=granted)
        return info

    def register_key(self, info: dict[str, Any], *, granted: set[str] | None = None) -> None:
        """Trust an existing key, as the domain's delegation for its client ID would."""
        private = serialization.load_pem_private_key(info["private_key"].encode(), None)
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.accounts[info["client_email"]] = Account(
            info["client_email"],
            info["client_id"],
            public,
            set(granted or {DIRECTORY_SCOPE, POLICY_SCOPE}),
        )

    def admin(self, email: str, *privileges: str) -> str:
        """An administrator of the domain; privileges from {'devices', 'policy'}."""
        self.admins[email] = set(privileges or ("devices", "policy"))
        return email

    def org_unit(self, path: str) -> str:
        unit = f"03ph8a2z{len(self.org_units):04d}x"
        self.org_units[unit] = path
        self.policies.setdefault(unit, {})
        return unit

    def add_device(self, serial: str, **facts: Any) -> dict[str, Any]:
        """A Chromebook enrolled in the domain (Google's own enrolment)."""
        device_id = facts.pop("deviceId", f"{uuid.uuid4()}")
        now = datetime.now(UTC)
        device = {
            "kind": "admin#directory#chromeosdevice",
            "etag": f'"{uuid.uuid4().hex}"',
            "deviceId": device_id,
            "serialNumber": serial,
            "status": "ACTIVE",
            "model": "Lenovo 300e Chromebook Gen 3",
            "osVersion": "126.0.6478.132",
            "platformVersion": "15886.44.0 (Official Build) stable-channel",
            "lastSync": _rfc3339(now - timedelta(minutes=20)),
            "orgUnitPath": "/Pupils",
            "orgUnitId": "03ph8a2z0000x",
            "autoUpdateExpiration": str(int(datetime(2031, 6, 1, tzinfo=UTC).timestamp() * 1000)),
            "lastKnownNetwork": [{"ipAddress": "10.20.0.31", "wanIpAddress": "81.2.69.160"}],
            "recentUsers": [
                {"type": "USER_TYPE_MANAGED", "email": "pupil.one@school.example"},
                {"type": "USER_TYPE_MANAGED", "email": "pupil.two@school.example"},
            ],
            **facts,
        }
        self.devices[device_id] = device
        return device

    def fail(
        self, status: int, *, times: int = 1, match: str = "", message: str = "", after: int = 1
    ) -> None:
        """Answer the next `times` API calls whose path contains `match` with `status`."""
        text = message or {
            429: "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute'.",
            500: "Internal error encountered.",
            503: "The service is currently unavailable.",
        }.get(status, "Error")
        for _ in range(times):
            self._faults.append(Fault(status, match, text, after if status == 429 else None))

    def issued(self, command_type: str | None = None) -> list[StandInCommand]:
        return [c for c in self.commands.values() if command_type in (None, c.type)]

    def check_in(self, device_id: str) -> None:
        """The device comes online: its pending commands are delivered next time they are read."""
        self.asleep.discard(device_id)

    # -- handling ---------------------------------------------------------------------------

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != JWT_GRANT or "assertion" not in form:
            self.violation(f"token request with grant_type {form.get('grant_type')!r}")
            return 400, {"error": "unsupported_grant_type"}
        assertion = form["assertion"]
        unverified = jwt.decode(assertion, verify=False)
        account = self.accounts.get(str(unverified.get("iss")))
        if account is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        try:
            claims = jwt.decode(assertion, certs=account.public_pem, audience=GOOGLE_TOKEN_AUDIENCE)
        except ValueError as exc:
            self.violation(f"token assertion rejected: {exc}")
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        scopes = set(str(claims.get("scope", "")).split())
        subject = str(claims.get("sub", ""))
        if subject not in self.admins:
            return 400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
        if not scopes or not scopes <= account.granted:
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using "
                "this method, or client not authorized for any of the scopes requested.",
            }
        token = f"ya29.{uuid.uuid4().hex}"
        self._tokens[token] = (account.client_email, subject, scopes)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def handle(
        self, verb: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, dict[str, Any]]:
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path.lstrip("/")
        if path == "token" and verb == "POST":
            form = dict(urllib.parse.parse_qsl(raw_body.decode()))
            return self.token(form)
        found = match(self.routes, verb, path)
        if found is None:
            self.violation(f"{verb} /{path}: no such method in Google's discovery documents")
            return 404, error(404, "Not Found", "NOT_FOUND")
        route, params = found
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        problems = check_params(route, params, query)
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                problems.append("the body is not JSON")
        if "request" in route.spec:
            if body is None:
                problems.append("no request body")
            else:
                problems += check_value(
                    body, route.spec["request"], route.doc, "body", route.method_id
                )
        elif body is not None:
            problems.append("a body where the method takes none")
        if problems:
            for problem in problems:
                self.violation(f"{route.name}: {problem}")
            return 400, error(400, "; ".join(problems), "INVALID_ARGUMENT")
        auth = headers.get("authorization", "")
        grant = self._tokens.get(auth.removeprefix("Bearer ").strip())
        if grant is None:
            return 401, error(
                401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
            )
        _email, subject, scopes = grant
        if not scopes & set(route.spec.get("scopes", [])):
            return 403, error(
                403, "Request had insufficient authentication scopes.", "PERMISSION_DENIED"
            )
        with self._lock:
            for fault in list(self._faults):
                if fault.match in path:
                    self._faults.remove(fault)
                    extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                    return fault.status, {
                        **error(fault.status, fault.message, ""),
                        "_headers": extra,
                    }
            flat = {k: v[0] for k, v in query.items()}
            self.calls.append((route.name, {**params, **flat}, body))
            return self._dispatch(route.name, params, flat, body, subject)

    def _dispatch(
        self, method_id: str, params: dict[str, str], query: dict[str, str], body: Any, admin: str
    ) -> tuple[int, dict[str, Any]]:
        privileges = self.admins.get(admin, set())
        if method_id.startswith("directory."):
            if "devices" not in privileges:
                return 403, error(403, "Not Authorized to access this resource/api", "")
            if params.get("customerId") not in (self.customer_id, "my_customer"):
                return 403, error(403, "Not Authorized to access this resource/api", "")
        else:
            if "policy" not in privileges:
                return 403, error(403, "The caller does not have permission", "PERMISSION_DENIED")
            customer = params.get("customer") or params.get("parent") or params.get("name", "")
            if not customer.startswith(f"customers/{self.customer_id}") and not customer.startswith(
                "customers/my_customer"
            ):
                return 403, error(403, "The caller does not have permission", "PERMISSION_DENIED")
        handler = getattr(self, "_" + method_id.replace(".", "_"), None)
        if handler is None:
            return 501, error(501, f"{method_id} is not simulated", "UNIMPLEMENTED")
        result: tuple[int, dict[str, Any]] = handler(params, query, body)
        return result

    # Directory API ---------------------------------------------------------------------------

    def _device_view(self, device: dict[str, Any], projection: str) -> dict[str, Any]:
        if projection == "FULL":
            return dict(device)
        basic = ("kind", "etag", "deviceId", "serialNumber", "status", "orgUnitPath", "model")
        return {k: device[k] for k in basic if k in device}

    def _directory_chromeosdevices_list(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        size = int(query.get("maxResults", "100"))
        if size > 300:
            self.violation("chromeosdevices.list: maxResults above 300")
            return 400, error(400, "Invalid value for maxResults", "INVALID_ARGUMENT")
        if query.get("includeChildOrgunits") and not query.get("orgUnitPath"):
            self.violation("chromeosdevices.list: includeChildOrgunits without orgUnitPath")
        if query.get("sortOrder") and not query.get("orderBy"):
            self.violation("chromeosdevices.list: sortOrder without orderBy")
        ordered = sorted(self.devices.values(), key=lambda d: d["serialNumber"])
        start = int(query.get("pageToken") or 0)
        page = ordered[start : start + size]
        answer: dict[str, Any] = {
            "kind": "admin#directory#chromeosdevices",
            "etag": f'"{uuid.uuid4().hex}"',
            "chromeosdevices": [
                self._device_view(d, query.get("projection", "BASIC")) for d in page
            ],
        }
        if start + size < len(ordered):
            answer["nextPageToken"] = str(start + size)
        return 200, answer

    def _directory_chromeosdevices_get(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        device = self.devices.get(params["deviceId"])
        if device is None:
            return 404, error(404, "Resource Not Found: deviceId", "")
        return 200, self._device_view(device, query.get("projection", "BASIC"))

    def _directory_customer_devices_chromeos_issueCommand(
        self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        device = self.devices.get(params["deviceId"])
        kind = body.get("commandType")
        if kind in (None, "COMMAND_TYPE_UNSPECIFIED"):
            self.violation("issueCommand without a commandType")
            return 400, error(400, "Invalid command type", "INVALID_ARGUMENT")
        if "payload" in body and kind not in ("SET_VOLUME", "DEVICE_START_CRD_SESSION"):
            self.violation(f"issueCommand: a payload for {kind}, which takes none")
        if device is None:
            return 404, error(404, "Resource Not Found: deviceId", "NOT_FOUND")
        if device["status"] != "ACTIVE":
            return 400, error(400, "Device is not active.", "FAILED_PRECONDITION")
        command = StandInCommand(str(next(self._ids)), device["deviceId"], kind, datetime.now(UTC))
        self.commands[command.command_id] = command
        return 200, {"commandId": command.command_id}

    def _directory_customer_devices_chromeos_commands_get(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        command = self.commands.get(params["commandId"])
        if command is None or command.device_id != params["deviceId"]:
            return 404, error(404, "Resource Not Found: commandId", "NOT_FOUND")
        if command.device_id not in self.asleep and command.state not in (
            "EXECUTED_BY_CLIENT",
            "EXPIRED",
            "CANCELLED",
        ):
            command.gets += 1
            if command.gets >= self.polls_to_execute:
                self._execute(command)
            elif command.gets >= 1:
                command.state = "ACKED_BY_CLIENT"
        answer: dict[str, Any] = {
            "commandId": command.command_id,
            "type": command.type,
            "issueTime": _rfc3339(command.issued_at),
            "commandExpireTime": _rfc3339(command.issued_at + timedelta(days=5)),
            "state": command.state,
        }
        if command.result is not None:
            answer["commandResult"] = command.result
        return 200, answer

    def _execute(self, command: StandInCommand) -> None:
        device = self.devices[command.device_id]
        now = _rfc3339(datetime.now(UTC))
        command.state = "EXECUTED_BY_CLIENT"
        failure = self.failing_commands.get(command.device_id)
        if failure:
            command.result = {"result": "FAILURE", "executeTime": now, "errorMessage": failure}
            return
        command.result = {"result": "SUCCESS", "executeTime": now}
        if command.type in ("WIPE_USERS", "REMOTE_POWERWASH"):
            device["recentUsers"] = []
        device["lastSync"] = now

    def _directory_customer_devices_chromeos_batchChangeStatus(
        self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        action = body.get("changeChromeOsDeviceStatusAction")
        ids = body.get("deviceIds") or []
        if not ids or len(ids) > 50:
            self.violation(f"batchChangeStatus with {len(ids)} devices (1 to 50 allowed)")
        if (
            body.get("deprovisionReason")
            and action != "CHANGE_CHROME_OS_DEVICE_STATUS_ACTION_DEPROVISION"
        ):
            self.violation("batchChangeStatus: deprovisionReason without a deprovision")
        wanted = {
            "CHANGE_CHROME_OS_DEVICE_STATUS_ACTION_DISABLE": ("ACTIVE", "DISABLED"),
            "CHANGE_CHROME_OS_DEVICE_STATUS_ACTION_REENABLE": ("DISABLED", "ACTIVE"),
        }.get(str(action))
        if wanted is None:
            self.violation(f"batchChangeStatus with action {action}")
            return 400, error(400, "Invalid action", "INVALID_ARGUMENT")
        results = []
        for device_id in ids:
            device = self.devices.get(device_id)
            if device is None:
                results.append(
                    {"deviceId": device_id, "error": {"code": 5, "message": "Device not found."}}
                )
            elif device["status"] != wanted[0]:
                results.append(
                    {
                        "deviceId": device_id,
                        "error": {"code": 9, "message": "Illegal device state transition."},
                    }
                )
            else:
                device["status"] = wanted[1]
                results.append({"deviceId": device_id, "response": {}})
        return 200, {"changeChromeOsDeviceStatusResults": results}

    # Chrome Policy API -----------------------------------------------------------------------

    def _chromepolicy_customers_policySchemas_list(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        size = int(query.get("pageSize", "100"))
        if size > 1000:
            self.violation("policySchemas.list: pageSize above 1000")
        wanted = query.get("filter", "")
        names = sorted(SCHEMAS)
        if wanted:
            found = re.fullmatch(r'name\s*=\s*"?([\w.*]+)"?', wanted) or re.fullmatch(
                r"([\w.*]+)", wanted
            )
            if found is None:
                self.violation(f"policySchemas.list: a filter Google cannot parse: {wanted}")
                return 400, error(400, "Invalid filter", "INVALID_ARGUMENT")
            pattern = re.escape(found.group(1)).replace(r"\*", ".*")
            names = [n for n in names if re.fullmatch(pattern, n)]
        start = int(query.get("pageToken") or 0)
        answer: dict[str, Any] = {
            "policySchemas": [schema_resource(n) for n in names[start : start + size]]
        }
        if start + size < len(names):
            answer["nextPageToken"] = str(start + size)
        return 200, answer

    def _chromepolicy_customers_policySchemas_get(
        self, params: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        name = params["name"].rsplit("/", 1)[-1]
        if name not in SCHEMAS:
            return 404, error(404, f"Policy schema {name} not found.", "NOT_FOUND")
        return 200, schema_resource(name)

    def _org_unit_of(self, key: Any, where: str) -> str | None:
        target = str((key or {}).get("targetResource", ""))
        unit = target.removeprefix("orgunits/")
        if not target.startswith("orgunits/") or unit not in self.org_units:
            self.violation(f"{where}: targetResource {target!r} is not a known org unit")
            return None
        return unit

    def _chromepolicy_customers_policies_orgunits_batchModify(
        self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        requests = body.get("requests") or []
        roots = {".".join(r["policyValue"]["policySchema"].split(".")[:2]) for r in requests}
        if len(roots) > 1:
            self.violation(f"batchModify mixes root namespaces: {sorted(roots)}")
            return 400, error(400, "All schemas must share a root namespace.", "INVALID_ARGUMENT")
        seen: set[tuple[str, str]] = set()
        changes = []
        for request in requests:
            unit = self._org_unit_of(request.get("policyTargetKey"), "batchModify")
            value = request.get("policyValue") or {}
            name = value.get("policySchema", "")
            if unit is None:
                return 400, error(400, "Invalid target resource.", "INVALID_ARGUMENT")
            if (unit, name) in seen:
                self.violation(f"batchModify names {name} twice for one org unit")
            seen.add((unit, name))
            if name not in SCHEMAS:
                self.violation(f"batchModify: unknown policy schema {name}")
                return 400, error(400, f"Policy schema {name} does not exist.", "INVALID_ARGUMENT")
            fields = value.get("value") or {}
            mask = [m for m in str(request.get("updateMask", "")).split(",") if m]
            problems = check_policy_value(name, fields, mask)
            if problems:
                for problem in problems:
                    self.violation(f"batchModify {name}: {problem}")
                return 400, error(400, "; ".join(problems), "INVALID_ARGUMENT")
            changes.append((unit, name, {m: fields[m] for m in mask}))
        for unit, name, fields in changes:
            self.policies[unit].setdefault(name, {}).update(fields)
        return 200, {}

    def _chromepolicy_customers_policies_resolve(
        self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        wanted = body.get("policySchemaFilter", "")
        namespace, _, leaf = wanted.rpartition(".")
        if not namespace or "*" in namespace or not leaf:
            self.violation(f"resolve: policySchemaFilter {wanted!r} is not allowed")
            return 400, error(400, "Invalid policy schema filter.", "INVALID_ARGUMENT")
        unit = self._org_unit_of(body.get("policyTargetKey"), "resolve")
        if unit is None:
            return 400, error(400, "Invalid target resource.", "INVALID_ARGUMENT")
        pattern = re.escape(wanted).replace(r"\*", "[^.]*")
        resolved = [
            {
                "targetKey": {"targetResource": f"orgunits/{unit}"},
                "sourceKey": {"targetResource": f"orgunits/{unit}"},
                "value": {"policySchema": name, "value": dict(value)},
            }
            for name, value in sorted(self.policies[unit].items())
            if re.fullmatch(pattern, name)
        ]
        return 200, {"resolvedPolicies": resolved}


class _Handler(BaseHTTPRequestHandler):
    google: GoogleStandIn
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this each answer waits ~40 ms for
    # the client's delayed acknowledgement.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload = self.google.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a fake that crashes must fail the test, not hang it
            self.google.violation(f"the fake failed on {self.command} {self.path}: {exc!r}")
            status, payload = 500, error(500, "fake failure", "INTERNAL")
        extra = payload.pop("_headers", {})
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


# --- validation against the discovery documents ---------------------------------------------
