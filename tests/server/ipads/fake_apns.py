"""A local stand-in for Apple's push service (APNs): HTTP/2 over TLS on 127.0.0.1.

It checks every request as Apple documents an MDM push ("Sending notification requests to APNs"
and the MDM protocol's push): POST to /3/device/<token>, `apns-push-type: mdm`, `apns-topic` the
credential's topic, `apns-priority: 10`, a body of exactly {"mdm": PushMagic}, and either a client
certificate whose subject UID is the topic or an ES256 provider token signed by the team's key.
Anything else is answered 400/403 with Apple's reason and kept in `problems`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def _name(common: str, uid: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if uid:
        parts.append(x509.NameAttribute(NameOID.USER_ID, uid))
    return x509.Name(parts)


def issue(
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    common: str,
    *,
    uid: str | None = None,
    ca: bool = False,
    days: int = 365,
    start: datetime | None = None,
    san: str | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate for tests: a CA, a server's, or an MDM push certificate (UID = topic)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = start or datetime.now(UTC) - timedelta(days=1)
    subject = _name(common, uid)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san))]),
            critical=False,
        )
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Push:
    """One push as received."""

    token: str
    headers: dict[str, str]
    body: bytes
    client_topic: str | None


@dataclass
class FakeApns:
    """Validates and answers MDM pushes; `answers[token]` picks the status for a device."""

    folder: Path
    topic: str
    apple: tuple[x509.Certificate, rsa.RSAPrivateKey]  # the CA that "issues" push certificates
    team_id: str | None = None
    key_id: str | None = None
    token_key: ec.EllipticCurvePublicKey | None = None
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def start(self) -> FakeApns:
        ca = issue(None, "Test APNs CA", ca=True)
        server = issue(ca, "api.push.apple.test", san="127.0.0.1")
        self.ca_path = self.folder / "apns-ca.pem"
        self.ca_path.write_bytes(pem(ca[0]))
        (self.folder / "apns-server.pem").write_bytes(pem(server[0]) + key_pem(server[1]))
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(self.folder / "apns-server.pem")
        self._tls.set_alpn_protocols(["h2"])
        self._tls.verify_mode = ssl.CERT_OPTIONAL
        self._tls.load_verify_locations(cadata=pem(self.apple[0]).decode())
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # so stop() is noticed without a connection arriving
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        try:
            conn = self._tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.problems.append(f"TLS handshake failed: {exc}")
            raw.close()
            return
        if conn.selected_alpn_protocol() != "h2":
            self.problems.append("the client did not negotiate HTTP/2")
            conn.close()
            return
        peer = conn.getpeercert(binary_form=True)
        client_topic = None
        if peer:
            uids = x509.load_der_x509_certificate(peer).subject.get_attributes_for_oid(
                NameOID.USER_ID
            )
            client_topic = str(uids[0].value) if uids else ""
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        conn.sendall(h2c.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        conn.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                data = conn.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            for event in h2c.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = {
                        (k.decode() if isinstance(k, bytes) else k): (
                            v.decode() if isinstance(v, bytes) else v
                        )
                        for k, v in event.headers or []
                    }
                    streams[event.stream_id] = (headers, bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data or b"")
                    h2c.acknowledge_received_data(len(event.data or b""), event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = streams.pop(event.stream_id)
                    status, payload = self._answer(headers, bytes(body), client_topic)
                    out = [(":status", str(status)), ("apns-id", str(uuid.uuid4()).upper())]
                    if payload:
                        out.append(("content-type", "application/json"))
                    h2c.send_headers(event.stream_id, out, end_stream=not payload)
                    if payload:
                        h2c.send_data(event.stream_id, payload, end_stream=True)
            conn.sendall(h2c.data_to_send())
        conn.close()

    def _refuse(self, status: int, reason: str, why: str) -> tuple[int, bytes]:
        self.problems.append(why)
        return status, json.dumps({"reason": reason}).encode()

    def _answer(
        self, headers: dict[str, str], body: bytes, client_topic: str | None
    ) -> tuple[int, bytes]:
        if headers.get(":method") != "POST":
            return self._refuse(405, "MethodNotAllowed", f"method {headers.get(':method')}")
        path = headers.get(":path", "")
        token = path.removeprefix("/3/device/")
        if not path.startswith("/3/device/") or not _TOKEN.match(token):
            return self._refuse(404, "BadPath", f"path {path}")
        if headers.get("apns-push-type") != "mdm":
            return self._refuse(
                400, "InvalidPushType", f"push type {headers.get('apns-push-type')}"
            )
        if headers.get("apns-topic") != self.topic:
            return self._refuse(400, "BadTopic", f"topic {headers.get('apns-topic')}")
        if headers.get("apns-priority") != "10":
            return self._refuse(400, "BadPriority", f"priority {headers.get('apns-priority')}")
        reason, why = self._auth_problem(headers.get("authorization"), client_topic)
        if reason:
            return self._refuse(403, reason, why)
        try:
            sent = json.loads(body)
        except ValueError:
            return self._refuse(400, "PayloadEmpty", "body is not JSON")
        if not isinstance(sent, dict) or set(sent) != {"mdm"} or not isinstance(sent["mdm"], str):
            return self._refuse(400, "BadPayload", f"body {body!r}")
        self.pushes.append(Push(token, headers, body, client_topic))
        status, reason = self.answers.get(token, (200, ""))
        if status == 200:
            return 200, b""
        answer: dict[str, Any] = {"reason": reason}
        if status == 410:
            answer["timestamp"] = int(time.time() * 1000)
        return status, json.dumps(answer).encode()

    def _auth_problem(self, authorization: str | None, client_topic: str | None) -> tuple[str, str]:
        if self.token_key is None:
            if client_topic is None:
                return "MissingProviderToken", "no client certificate and no provider token"
            if client_topic != self.topic:
                return "BadCertificate", f"client certificate is for {client_topic}"
            return "", ""
        if not authorization or not authorization.startswith("bearer "):
            return "MissingProviderToken", "no bearer token"
        try:
            header_b64, claims_b64, signature_b64 = authorization.removeprefix("bearer ").split(".")
            header = json.loads(_unb64(header_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(signature_b64)
        except ValueError:
            return "InvalidProviderToken", "the token is not a JWT"
        if header != {"alg": "ES256", "kid": self.key_id}:
            return "InvalidProviderToken", f"JWT header {header}"
        if set(claims) != {"iss", "iat"} or claims["iss"] != self.team_id:
            return "InvalidProviderToken", f"JWT claims {claims}"
        if not isinstance(claims["iat"], int) or not 0 <= time.time() - claims["iat"] < 3600:
            return "ExpiredProviderToken", f"JWT issued at {claims['iat']}"
        if len(signature) != 64:
            return "InvalidProviderToken", "ES256 signature is not 64 bytes"
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self.token_key.verify(
                der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return "InvalidProviderToken", "JWT signature does not verify"
        return "", ""


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
