"""A simulated iPad that speaks Apple's MDM protocol to Trolley, as Apple's schema defines it.

It installs the enrolment profile (reading its PKCS#12 and keeping the key), signs every message
with a detached CMS signature, polls, and answers each command with the response Apple defines,
keeping its own state. Everything it is sent is checked against the transcribed schema: a command
Apple would refuse raises `NotAsApple`. The tests, the benchmark and the demo's iPads all run it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import plistlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from device_profiles import lint_mobileconfig
from server.ipads.services.schema import (
    CHECKIN,
    RESPONSES,
    SHARED_IPAD_ONLY,
    SUPERVISED_ONLY,
    command_problems,
    problems,
    response_problems,
)

log = logging.getLogger(__name__)


class NotAsApple(Exception):
    """Trolley sent something an iPad would refuse (or the simulator was asked to)."""


def _require(ok: object, why: object) -> None:
    if not ok:
        raise NotAsApple(str(why))


class Reply(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def data(self) -> bytes: ...


class Transport(Protocol):
    """How the iPad reaches Trolley: Flask's test client, or `OverHttp` to a running server."""

    def get(self, path: str) -> Any: ...

    def put(self, path: str, *, data: bytes, headers: dict[str, str]) -> Any: ...


@dataclass(frozen=True)
class Answer:
    status_code: int
    data: bytes


class OverHttp:
    """The same calls as Flask's test client, over real HTTP to a running server."""

    def __init__(self, base: str) -> None:
        import requests

        self.base = base.rstrip("/")
        self.http = requests.Session()

    def get(self, path: str) -> Answer:
        got = self.http.get(self.base + path, timeout=30)
        return Answer(got.status_code, got.content)

    def put(self, path: str, *, data: bytes, headers: dict[str, str]) -> Answer:
        got = self.http.put(self.base + path, data=data, headers=headers, timeout=30)
        return Answer(got.status_code, got.content)


@dataclass
class SimulatedIpad:
    client: Transport
    supervised: bool = False
    shared: bool = False
    serial: str = "DMPXK0AAJF8J"
    udid: str = field(default_factory=lambda: uuid.uuid4().hex.upper()[:25])
    push_token: bytes = field(default_factory=lambda: os.urandom(32))
    push_magic: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    not_now: int = 0  # answer this many commands with NotNow before doing them
    fail: set[str] = field(default_factory=set)  # request types answered with Error
    # Its own state.
    locked: bool = False
    lost_mode: bool = False
    erased: bool = False
    users: int = 2
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # by PayloadIdentifier
    handled: list[str] = field(default_factory=list)

    def install(self, signed_profile: bytes) -> None:
        """Install an enrolment profile: check it, keep the identity, and note the URLs."""
        info = cms.ContentInfo.load(signed_profile)
        content = info["content"]["encap_content_info"]["content"].native
        errors = [i for i in lint_mobileconfig(content) if i.severity == "error"]
        _require(not errors, errors)
        top = plistlib.loads(content)
        by_type = {p["PayloadType"]: p for p in top["PayloadContent"]}
        mdm = by_type["com.apple.mdm"]
        _require(mdm["SignMessage"] is True, "the profile must ask for signed messages")
        _require(1 <= mdm["AccessRights"] <= 8191, "AccessRights out of Apple's range")
        identity = by_type["com.apple.security.pkcs12"]
        _require(mdm["IdentityCertificateUUID"] == identity["PayloadUUID"], "identity mismatch")
        key, cert, _more = pkcs12.load_key_and_certificates(
            identity["PayloadContent"], identity["Password"].encode()
        )
        if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
            raise NotAsApple("the profile carries no RSA identity")
        self.key, self.cert = key, cert
        self.topic = mdm["Topic"]
        self.server_path = "/" + mdm["ServerURL"].split("/", 3)[3]
        self.checkin_path = "/" + mdm["CheckInURL"].split("/", 3)[3]

    def sign(self, body: bytes) -> str:
        signature = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(body)
            .add_signer(self.cert, self.key, hashes.SHA256())
            .sign(
                serialization.Encoding.DER,
                [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
            )
        )
        return base64.b64encode(signature).decode()

    def _put(self, path: str, message: dict[str, Any], signature: str | None = None) -> Any:
        body = plistlib.dumps(message)
        headers = {"Mdm-Signature": signature if signature is not None else self.sign(body)}
        return self.client.put(path, data=body, headers=headers)

    def check_in(self, kind: str) -> Any:
        message: dict[str, Any] = {"MessageType": kind, "Topic": self.topic, "UDID": self.udid}
        if kind == "Authenticate":
            message |= {
                "DeviceName": "iPad",
                "Model": "iPad13,18",
                "ModelName": "iPad",
                "OSVersion": "18.1",
                "BuildVersion": "22B83",
                "ProductName": "iPad13,18",
                "SerialNumber": self.serial,
            }
        elif kind == "TokenUpdate":
            message |= {"Token": self.push_token, "PushMagic": self.push_magic}
        found = problems(message, CHECKIN[kind])
        _require(found == [], found)
        return self._put(self.checkin_path, message)

    def enrol(self, signed_profile: bytes) -> None:
        self.install(signed_profile)
        for kind in ("Authenticate", "TokenUpdate"):
            status = self.check_in(kind).status_code
            _require(status == 200, f"{kind} was answered {status}")

    def connect(self, answer: dict[str, Any], request_type: str | None = None) -> dict[str, Any]:
        """Send one answer; the next command (checked against Apple's schema) or {}."""
        found = response_problems(answer, request_type)
        _require(found == [], found)
        response = self._put(self.server_path, answer)
        _require(response.status_code == 200, f"{response.status_code}: {response.data[:300]!r}")
        if not response.data:
            return {}
        envelope = plistlib.loads(response.data)
        found = command_problems(envelope)
        _require(found == [], f"{found}: {envelope}")
        return dict(envelope)

    def run(self, limit: int = 20) -> int:
        """Check in (Idle) and answer commands until the server has none, or it said NotNow."""
        envelope = self.connect({"UDID": self.udid, "Status": "Idle"})
        count = 0
        while envelope and count < limit:
            count += 1
            request_type = envelope["Command"]["RequestType"]
            answer = self.answer(envelope)
            envelope = self.connect(answer, request_type)
            if answer["Status"] == "NotNow":
                _require(envelope == {}, "a command was handed out right after NotNow")
                break
        return count

    def answer(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """What this iPad answers to one command, as Apple's schema defines the response."""
        command = envelope["Command"]
        kind = command["RequestType"]
        base = {"UDID": self.udid, "CommandUUID": envelope["CommandUUID"]}
        if self.not_now > 0:
            self.not_now -= 1
            return base | {"Status": "NotNow"}
        refuse = kind in self.fail or (
            (kind in SUPERVISED_ONLY and not self.supervised)
            or (kind in SHARED_IPAD_ONLY and not self.shared)
        )
        if refuse:
            return base | {
                "Status": "Error",
                "ErrorChain": [
                    {
                        "ErrorCode": 12021,
                        "ErrorDomain": "MCMDMErrorDomain",
                        "LocalizedDescription": f"{kind} is not allowed on this iPad.",
                        "USEnglishDescription": f"{kind} is not allowed on this iPad.",
                    }
                ],
            }
        self.handled.append(kind)
        extra = self._do(kind, command)
        _require(set(extra) <= {k.name for k in RESPONSES.get(kind, ())}, extra)
        return base | {"Status": "Acknowledged"} | extra

    def _do(self, kind: str, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command on the iPad's own state; the keys its response adds."""
        if kind == "DeviceInformation":
            known = {
                "DeviceName": "iPad",
                "Model": "iPad13,18",
                "ModelName": "iPad",
                "ProductName": "iPad13,18",
                "OSVersion": "18.1",
                "BuildVersion": "22B83",
                "SerialNumber": self.serial,
                "IsSupervised": self.supervised,
                "IsMultiUser": self.shared,
                "IsMDMLostModeEnabled": self.lost_mode,
            }
            return {"QueryResponses": {q: known[q] for q in command["Queries"] if q in known}}
        if kind == "SecurityInfo":
            return {
                "SecurityInfo": {
                    "HardwareEncryptionCaps": 3,
                    "PasscodePresent": True,
                    "PasscodeCompliant": True,
                    "PasscodeCompliantWithProfiles": True,
                }
            }
        if kind == "InstalledApplicationList":
            return {
                "InstalledApplicationList": [
                    {"Identifier": "com.apple.mobilesafari", "Name": "Safari", "Version": "18.1"},
                    {"Identifier": "org.scratch.jr", "Name": "ScratchJr", "ShortVersion": "2.1"},
                ]
            }
        if kind == "DeviceLocation":
            return {
                "Latitude": 51.5,
                "Longitude": -0.12,
                "HorizontalAccuracy": 10.0,
                "VerticalAccuracy": 5.0,
                "Altitude": 20.0,
                "Speed": 0.0,
                "Course": 0.0,
                "Timestamp": "2026-12-06T14:00:00Z",
            }
        if kind == "ProfileList":
            return {"ProfileList": [_listed(top) for top in self.profiles.values()]}
        if kind == "InstallProfile":
            signed = cms.ContentInfo.load(command["Payload"])
            _require(signed["content_type"].native == "signed_data", "the profile is not signed")
            content = signed["content"]["encap_content_info"]["content"].native
            errors = [
                i for i in lint_mobileconfig(content, supervised=True) if i.severity == "error"
            ]
            _require(not errors, errors)
            top = plistlib.loads(content)
            self.profiles[top["PayloadIdentifier"]] = top
        elif kind == "RemoveProfile":
            self.profiles.pop(command["Identifier"], None)
        elif kind == "DeviceLock":
            self.locked = True
        elif kind == "EnableLostMode":
            self.lost_mode = True
        elif kind == "DisableLostMode":
            self.lost_mode = False
        elif kind == "EraseDevice":
            self.erased = True
        elif kind == "DeleteUser":
            self.users = 0
        return {}

    # --- kept between runs (the demo's iPads survive a restart of the demo) ---------------

    def saved(self) -> dict[str, Any]:
        """What the iPad keeps on its own storage: its identity, where to call, its state."""
        return {
            "serial": self.serial,
            "udid": self.udid,
            "supervised": self.supervised,
            "shared": self.shared,
            "topic": self.topic,
            "server_path": self.server_path,
            "checkin_path": self.checkin_path,
            "key": self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "cert": self.cert.public_bytes(serialization.Encoding.PEM).decode(),
            "locked": self.locked,
            "lost_mode": self.lost_mode,
            "profiles": {k: plistlib.dumps(v).decode() for k, v in self.profiles.items()},
        }

    @classmethod
    def restored(cls, client: Transport, saved: dict[str, Any]) -> SimulatedIpad:
        """The same iPad again, from what `saved` kept."""
        ipad = cls(
            client,
            supervised=saved["supervised"],
            shared=saved["shared"],
            serial=saved["serial"],
            udid=saved["udid"],
            locked=saved["locked"],
            lost_mode=saved["lost_mode"],
            profiles={k: plistlib.loads(v.encode()) for k, v in saved["profiles"].items()},
        )
        key = serialization.load_pem_private_key(saved["key"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise NotAsApple("the kept key is not RSA")
        ipad.key, ipad.cert = key, x509.load_pem_x509_certificate(saved["cert"].encode())
        ipad.topic, ipad.server_path = saved["topic"], saved["server_path"]
        ipad.checkin_path = saved["checkin_path"]
        return ipad


def _listed(top: dict[str, Any]) -> dict[str, Any]:
    """One installed profile as ProfileList describes it."""
    return {
        "PayloadIdentifier": top["PayloadIdentifier"],
        "PayloadUUID": top["PayloadUUID"],
        "PayloadDisplayName": top["PayloadDisplayName"],
        "PayloadVersion": 1,
        "IsManaged": True,
        "PayloadContent": [
            {
                "PayloadType": p["PayloadType"],
                "PayloadIdentifier": p["PayloadIdentifier"],
                "PayloadUUID": p["PayloadUUID"],
                "PayloadVersion": 1,
            }
            for p in top["PayloadContent"]
        ],
    }


@dataclass(frozen=True)
class FleetIpad:
    """One iPad of a simulated fleet: its serial, and a one-time enrolment link if it needs one."""

    serial: str
    supervised: bool
    link: str | None  # None: it enrolled before and resumes from its kept state


def run_fleet(
    base: str,
    ipads: list[FleetIpad],
    state_dir: Path,
    *,
    every: float = 3.0,
    stop: threading.Event | None = None,
    on_poll: Callable[[SimulatedIpad], None] | None = None,
) -> None:
    """Enrol (or resume) each iPad over HTTP, then check every one in every `every` seconds.

    An erased iPad checks out, forgets its identity and leaves the fleet, as a wiped iPad would.
    """
    stop = stop or threading.Event()
    state_dir.mkdir(parents=True, exist_ok=True)
    transport = OverHttp(base)
    running: list[SimulatedIpad] = []
    for each in ipads:
        kept = state_dir / f"{each.serial}.json"
        try:
            if each.link is None and kept.exists():
                ipad = SimulatedIpad.restored(transport, json.loads(kept.read_text()))
            elif each.link is not None:
                profile = transport.get("/" + each.link.split("/", 3)[3])
                _require(profile.status_code == 200, f"the enrolment link gave {profile}")
                ipad = SimulatedIpad(transport, supervised=each.supervised, serial=each.serial)
                ipad.enrol(profile.data)
            else:
                continue
        except Exception as error:  # one iPad that cannot enrol must not stop the others
            log.warning("simulated iPad %s did not enrol: %s", each.serial, error)
            continue
        kept.write_text(json.dumps(ipad.saved()))
        running.append(ipad)
    while running and not stop.is_set():
        for ipad in list(running):
            try:
                ipad.run()
            except Exception as error:  # a server restart or a refused command: try next time
                log.warning("simulated iPad %s: %s", ipad.serial, error)
            kept = state_dir / f"{ipad.serial}.json"
            if ipad.erased:
                ipad.check_in("CheckOut")
                kept.unlink(missing_ok=True)
                running.remove(ipad)
            else:
                kept.write_text(json.dumps(ipad.saved()))
            if on_poll is not None:
                on_poll(ipad)
        stop.wait(every)
