"""A small stand-in for the server side: an HTTP stub for enrolment, reset confirmation and
check-ins, and
an MQTT peer (made of the `mqtt` library) that signs commands and reads signed acks."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt import client as paho
from paho.mqtt.reasoncodes import ReasonCode

from kiosk_client.agent import close_wakeup_sockets
from mqtt.client import TLSSettings, make_client, publish_and_wait
from mqtt.envelope import (
    decode_public_key,
    encode_public_key,
    key_id,
    open_envelope,
    sign,
)
from mqtt.errors import EnvelopeError
from mqtt.messages import Ack, Report, build_command, build_desired
from mqtt.topics import cmd_topic, desired_topic, parse_device_topic
from provisioning.ca import SchoolCA, issue_device_certificate
from provisioning.keys import certificate_to_pem
from provisioning.payload import EnrolmentPayload

TIMEOUT = 10.0
SERVER_USER = "trolley_server"
SERVER_PASSWORD = "server-secret"


def wait_until(
    predicate: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.02
) -> Any:
    """Poll until `predicate()` is truthy (and return it), or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Identity:
    """A device identity the broker already knows (pre-registered in its password file)."""

    device_id: str
    password: str


class IdentityPool:
    """Hands out each pre-registered identity once per test session."""

    def __init__(self, identities: list[Identity]) -> None:
        self._items = iter(identities)
        self._lock = threading.Lock()

    def take(self) -> Identity:
        with self._lock:
            return next(self._items)


@dataclass
class _Token:
    asset_tag: str
    used: bool = False


@dataclass
class FakeServer:
    """The HTTP endpoints a kiosk calls, answering exactly as the contract says."""

    pool: IdentityPool
    broker_port: int
    school: str = "Oakfield Primary"
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tokens: dict[str, _Token] = field(default_factory=dict)
    device_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    # device_id -> "confirm" | "decline" | "error" | "forged" | "other_cmd"
    reset_mode: dict[str, str] = field(default_factory=dict)
    reset_requests: list[dict[str, Any]] = field(default_factory=list)
    enrolments: list[dict[str, Any]] = field(default_factory=list)
    # Verified check-ins, with the address each came from (what the real server records).
    check_ins: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    # A school CA: codes then pin it, answers carry it and issue client certificates.
    ca: SchoolCA | None = None
    broker_scheme: str = "mqtt"
    # What the answer claims is the CA (to test a mismatch with the code's fingerprint).
    ca_pem_override: str | None = None
    # Called with each valid enrolment's asset tag before it is answered (to hold one back).
    before_enrol: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.kid = key_id(self.signing_key.public_key())
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def payload(self, asset_tag: str = "OAK-0001") -> str:
        """A fresh enrolment code for this server."""
        token = secrets.token_urlsafe(32)
        self.tokens[token] = _Token(asset_tag)
        return EnrolmentPayload(
            server_url=self.url,
            token=token,
            school_slug="oakfield",
            asset_tag=asset_tag,
            ca_fingerprint=self.ca.fingerprint if self.ca is not None else None,
        ).encode()

    # --- endpoints ----------------------------------------------------------------------------

    def _enrol(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            return 400, _error("invalid", "token missing")
        token = self.tokens.get(body["token"])
        if token is None:
            return 400, _error("invalid_token", "unknown enrolment token")
        if token.used:
            return 410, _error("token_used", "this enrolment token was already used")
        try:
            public_key = decode_public_key(body.get("public_key"))
        except EnvelopeError:
            return 400, _error("invalid", "public_key is not an Ed25519 key")
        if body.get("platform") not in ("simulated", "linux"):
            return 400, _error("invalid", "unknown platform")
        if self.before_enrol is not None:
            self.before_enrol(token.asset_tag)
        token.used = True
        identity = self.pool.take()
        self.device_keys[identity.device_id] = public_key
        self.enrolments.append(body)
        ca_pem = client_pem = None
        if self.ca is not None:
            ca_pem = self.ca_pem_override or self.ca.cert_pem().decode()
            tls_pem = body.get("tls_public_key_pem")
            if isinstance(tls_pem, str):
                tls_key = serialization.load_pem_public_key(tls_pem.encode())
                assert isinstance(tls_key, ec.EllipticCurvePublicKey)
                certificate = issue_device_certificate(
                    self.ca, identity.device_id, tls_key, now=datetime.now(UTC)
                )
                client_pem = certificate_to_pem(certificate).decode()
        port = self.broker_port
        return 201, {
            "device_id": identity.device_id,
            "asset_tag": token.asset_tag,
            "school": self.school,
            "broker_url": f"{self.broker_scheme}://127.0.0.1:{port}",
            "username": identity.device_id,
            "password": identity.password,
            "ca_pem": ca_pem,
            "client_certificate_pem": client_pem,
            "server_keys": {self.kid: encode_public_key(self.signing_key.public_key())},
            "server_url": self.url,
        }

    def _confirm_reset(self, raw: bytes) -> tuple[int, Any]:
        try:
            unverified = json.loads(raw)["body"]
            device_id = unverified["device_id"]
            device_key = self.device_keys[device_id]
            body = open_envelope(
                raw, {key_id(device_key): device_key}, device_id=device_id, now=int(time.time())
            )
        except (KeyError, TypeError, ValueError, EnvelopeError) as exc:
            return 400, _error("invalid", str(exc))
        self.reset_requests.append(body)
        mode = self.reset_mode.get(device_id, "decline")
        if mode == "error":
            return 503, _error("unavailable", "try later")
        now = int(time.time())
        answer = {
            "v": 1,
            "kid": self.kid,
            "device_id": device_id,
            "cmd_id": body["cmd_id"] if mode != "other_cmd" else "another-command",
            "confirm": mode in ("confirm", "forged", "other_cmd"),
            "iat": now,
            "exp": now + 60,
        }
        if mode == "forged":
            forger = Ed25519PrivateKey.generate()
            answer["kid"] = key_id(forger.public_key())
            return 200, sign(answer, forger)
        return 200, sign(answer, self.signing_key)

    def _check_in(self, raw: bytes, address: str) -> tuple[int, Any]:
        try:
            device_id = json.loads(raw)["body"]["device_id"]
            device_key = self.device_keys[device_id]
            body = open_envelope(
                raw, {key_id(device_key): device_key}, device_id=device_id, now=int(time.time())
            )
        except (KeyError, TypeError, ValueError, EnvelopeError) as exc:
            return 401, _error("unauthorised", str(exc))
        self.check_ins.append((body, address))
        return 200, {"public_address": address}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path == "/api/v1/enrol":
                    try:
                        status, answer = server._enrol(json.loads(raw))
                    except ValueError:
                        status, answer = 400, _error("invalid", "not JSON")
                elif self.path == "/api/v1/device-channel/confirm-reset":
                    status, answer = server._confirm_reset(raw)
                elif self.path == "/api/v1/device-channel/whereabouts":
                    status, answer = server._check_in(raw, self.client_address[0])
                else:
                    status, answer = 404, _error("not_found", self.path)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": {}}}


class ServerPeer:
    """The server's MQTT side: signs and publishes commands, collects verified acks and reports."""

    def __init__(
        self,
        port: int,
        server: FakeServer,
        client_id: str | None = None,
        tls: TLSSettings | None = None,
    ) -> None:
        self.server = server
        self.port = port
        self._lock = threading.Condition()
        self.acks: list[Ack] = []
        self.reports: list[Report] = []
        self.status: dict[str, list[bytes]] = {}
        self.bad: list[tuple[str, str]] = []
        self.next_seq: dict[str, int] = {}
        self._connected = threading.Event()
        self.client = make_client(
            client_id or f"srv-{secrets.token_hex(4)}",
            username=SERVER_USER,
            password=SERVER_PASSWORD,
            clean_session=True,
            max_inflight=0,
            tls=tls,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT):
            raise AssertionError("server peer could not connect")

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            return
        client.subscribe(
            [(f"trolley/v1/dev/+/{kind}", 1) for kind in ("ack", "reported", "status")]
        )

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, rcs: Any, props: Any
    ) -> None:
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            device_id, kind = parse_device_topic(message.topic)
        except Exception:
            return
        payload = bytes(message.payload)
        with self._lock:
            if kind.value == "status":
                self.status.setdefault(device_id, []).append(payload)
            else:
                key = self.server.device_keys.get(device_id)
                try:
                    if key is None:
                        raise EnvelopeError("unknown device")
                    body = open_envelope(
                        payload, {key_id(key): key}, device_id=device_id, now=int(time.time())
                    )
                    if kind.value == "ack":
                        self.acks.append(Ack.from_body(body))
                    else:
                        self.reports.append(Report.from_body(body))
                except Exception as exc:
                    self.bad.append((message.topic, str(exc)))
            self._lock.notify_all()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        close_wakeup_sockets(self.client)

    # --- sending ------------------------------------------------------------------------------

    def command_envelope(
        self,
        device_id: str,
        command_type: str,
        args: Mapping[str, Any] | None = None,
        *,
        seq: int | None = None,
        iat: int | None = None,
        exp: int | None = None,
        key: Ed25519PrivateKey | None = None,
        cmd_id: str | None = None,
    ) -> tuple[str, bytes]:
        """(cmd_id, signed envelope) for a command."""
        if seq is None:
            seq = self.next_seq.get(device_id, 1)
            self.next_seq[device_id] = seq + 1
        signing_key = key or self.server.signing_key
        now = int(time.time()) if iat is None else iat
        command = build_command(
            command_type,
            device_id=device_id,
            kid=key_id(signing_key.public_key()),
            seq=seq,
            now=now,
            args=args,
            exp=exp,
            cmd_id=cmd_id,
        )
        return command.cmd_id, sign(command.to_body(), signing_key)

    def send(
        self,
        device_id: str,
        command_type: str,
        args: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """Sign and publish a command; return its cmd_id."""
        cmd_id, envelope = self.command_envelope(device_id, command_type, args, **options)
        self.publish_raw(device_id, envelope)
        return cmd_id

    def publish_raw(self, device_id: str, payload: bytes, *, topic: str | None = None) -> None:
        publish_and_wait(self.client, topic or cmd_topic(device_id), payload, timeout=TIMEOUT)

    def send_to_all(self, device_ids: list[str], command_type: str) -> list[str]:
        """A fan-out: publish one command per device without waiting between them."""
        sent = [self.command_envelope(device_id, command_type) for device_id in device_ids]
        infos = [
            self.client.publish(cmd_topic(device_id), envelope, qos=1)
            for device_id, (_, envelope) in zip(device_ids, sent, strict=True)
        ]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
        return [cmd_id for cmd_id, _ in sent]

    def send_desired(self, device_id: str, document: Mapping[str, Any], version: int) -> None:
        desired = build_desired(
            document,
            device_id=device_id,
            kid=self.server.kid,
            version=version,
            now=int(time.time()),
        )
        publish_and_wait(
            self.client,
            desired_topic(device_id),
            sign(desired.to_body(), self.server.signing_key),
            retain=True,
            timeout=TIMEOUT,
        )

    # --- waiting ------------------------------------------------------------------------------

    def acks_for(self, cmd_id: str) -> list[Ack]:
        with self._lock:
            return [ack for ack in self.acks if ack.cmd_id == cmd_id]

    def wait_ack(self, cmd_id: str, state: str, timeout: float = TIMEOUT) -> Ack:
        """The first ack of `cmd_id` in `state` (fails on a different final state)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for ack in self.acks:
                    if ack.cmd_id == cmd_id and ack.state.value == state:
                        return ack
                final = [
                    a
                    for a in self.acks
                    if a.cmd_id == cmd_id and a.state.value in ("done", "failed", "rejected")
                ]
                if final and state in ("done", "failed", "rejected"):
                    raise AssertionError(
                        f"{cmd_id}: expected {state}, got {final[0].state.value}: "
                        f"{final[0].detail} {dict(final[0].result)}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {state} ack for {cmd_id} within {timeout}s")
                self._lock.wait(left)

    def wait_report(
        self,
        device_id: str,
        predicate: Callable[[Report], bool] = lambda r: True,
        timeout: float = TIMEOUT,
    ) -> Report:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for report in reversed(self.reports):
                    if report.device_id == device_id and predicate(report):
                        return report
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching report from {device_id} within {timeout}s")
                self._lock.wait(left)

    def wait_status(self, device_id: str, value: bytes, timeout: float = TIMEOUT) -> None:
        def seen() -> bool:
            with self._lock:
                return self.status.get(device_id, [b""])[-1] == value

        wait_until(seen, timeout)

    def round_trip(self, device_id: str) -> None:
        """Ping and wait for done: every message sent before it has been handled."""
        self.wait_ack(self.send(device_id, "ping"), "done")


def identities(count: int, prefix: str = "kdev") -> Iterator[Identity]:
    for number in range(1, count + 1):
        yield Identity(f"{prefix}-{number:04d}", secrets.token_urlsafe(16))
