"""Enrolling devices: server keys, the school CA, one-time tokens and device identities."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mqtt.envelope import (
    decode_public_key,
    encode_public_key,
    key_id,
    open_envelope,
    unverified_body,
)
from mqtt.envelope import sign as sign_envelope
from mqtt.errors import EnvelopeError
from mqtt.passwords import generate_secret, hash_password, write_password_file
from provisioning.ca import (
    SchoolCA,
    create_school_ca,
    fingerprint,
    issue_device_certificate,
    new_signing_identity,
)
from provisioning.keys import certificate_to_pem
from provisioning.payload import EnrolmentPayload
from provisioning.tokens import DEFAULT_TOKEN_LIFETIME, hash_token, new_token
from server import events
from server.activity.services import record
from server.auth.models import User
from server.commands.models import Command, CommandStatus
from server.config import Settings
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.enrolment.models import DeviceIdentity, EnrolmentToken, SchoolAuthority, ServerKey
from server.errors import Gone, NotFound, Unauthorised, ValidationFailed
from server.schools.models import School

log = logging.getLogger(__name__)
PLATFORMS = frozenset({"simulated", "linux", "ipados", "chromeos"})
CONFIRM_TTL = 300


# --- the server's signing key ------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def server_key(session: Session, box: SecretBox) -> SigningKey:
    """The current signing key, made (sealed at rest) the first time it is needed."""
    row = session.scalar(
        select(ServerKey)
        .where(ServerKey.retired_at.is_(None))
        .order_by(ServerKey.created_at.desc())
    )
    if row is None:
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        row = ServerKey(
            kid=key_id(private.public_key()),
            public_key=encode_public_key(private.public_key()),
            private_key_sealed=box.seal(raw.hex()),
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor=None,
            action="server_key.created",
            school_id=None,
            target_type="server_key",
            target_id=row.kid,
        )
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(box.open(row.private_key_sealed)))
    return SigningKey(row.kid, private)


def trusted_server_keys(session: Session) -> dict[str, str]:
    """Every key devices should trust, newest first (old keys stay trusted until retired)."""
    rows = session.scalars(
        select(ServerKey)
        .where(ServerKey.retired_at.is_(None))
        .order_by(ServerKey.created_at.desc())
    ).all()
    return {row.kid: row.public_key for row in rows}


# --- the school's certificate authority --------------------------------------------------


def school_authority(session: Session, box: SecretBox, school: School) -> tuple[SchoolCA, bytes]:
    """The school's CA and its profile-signing identity (PEM), made on first use."""
    row = session.scalar(select(SchoolAuthority).where(SchoolAuthority.school_id == school.id))
    if row is None:
        now = utcnow()
        ca = create_school_ca(school.name, now=now)
        signing = new_signing_identity(ca, now=now)
        row = SchoolAuthority(
            school_id=school.id,
            ca_pem_sealed=box.seal(ca.to_pem().decode()),
            ca_certificate_pem=ca.cert_pem().decode(),
            signing_pem_sealed=box.seal(signing.to_pem().decode()),
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor=None,
            action="school_ca.created",
            school_id=school.id,
            target_type="school",
            target_id=school.id,
            details={"fingerprint": ca.fingerprint},
        )
    ca = SchoolCA.from_pem(box.open(row.ca_pem_sealed).encode())
    return ca, box.open(row.signing_pem_sealed).encode()


def broker_trust_anchor(
    session: Session, box: SecretBox, settings: Settings, school: School
) -> x509.Certificate | None:
    """The CA a kiosk must trust for a TLS broker: the configured one, else the school's own.

    None when devices are given a plain `mqtt://` broker. A trust whose one Mosquitto listener
    serves every school names the CA that signed it in TROLLEY_MQTT_DEVICE_CA.
    """
    if not settings.device_broker_url.startswith("mqtts://"):
        return None
    if settings.mqtt_device_ca is not None:
        return x509.load_pem_x509_certificate(settings.mqtt_device_ca.read_bytes())
    return school_authority(session, box, school)[0].certificate


# --- enrolment tokens --------------------------------------------------------------------


def issue_enrolment_token(
    session: Session,
    actor: User | None,
    device: Device,
    settings: Settings,
    *,
    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    now: datetime | None = None,
) -> tuple[EnrolmentToken, EnrolmentPayload]:
    """A one-time enrolment code for one device (24 hours by default); commits."""
    return issue_enrolment_tokens(session, actor, [device], settings, lifetime=lifetime, now=now)[0]


def issue_enrolment_tokens(
    session: Session,
    actor: User | None,
    devices: Sequence[Device],
    settings: Settings,
    *,
    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    now: datetime | None = None,
) -> list[tuple[EnrolmentToken, EnrolmentPayload]]:
    """One-time enrolment codes for `devices`, in their order, in one transaction; commits."""
    for device in devices:
        if device.status is DeviceStatus.DISPOSED:
            raise ValidationFailed(
                f"{device.asset_tag} has been disposed of; it cannot be enrolled."
            )
    now = now or utcnow()
    box = SecretBox(settings.data_keys)
    # A trolley's worth of labels shares one school and so one CA: look each up once.
    pins: dict[int, tuple[School, str | None]] = {}
    issued = []
    for device in devices:
        plain = new_token()
        token = EnrolmentToken(
            school_id=device.school_id,
            device_id=device.id,
            token_hash=hash_token(plain),
            created_by_id=actor.id if actor else None,
            created_at=now,
            expires_at=now + lifetime,
        )
        session.add(token)
        if device.school_id not in pins:
            school = session.get(School, device.school_id)
            assert school is not None
            anchor = broker_trust_anchor(session, box, settings, school)
            pins[device.school_id] = (school, fingerprint(anchor) if anchor is not None else None)
        school, pin = pins[device.school_id]
        payload = EnrolmentPayload(
            server_url=settings.base_url,
            token=plain,
            school_slug=school.slug,
            asset_tag=device.asset_tag,
            # Pinned on the label, so a kiosk trusts the TLS broker only through this CA.
            ca_fingerprint=pin,
        )
        record(
            session,
            actor=actor,
            action="device.enrolment_code_issued",
            school_id=device.school_id,
            target_type="device",
            target_id=device.asset_tag,
            details={"expires_at": token.expires_at.isoformat()},
        )
        issued.append((token, payload))
    session.commit()
    return issued


# --- enrolling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    identity: DeviceIdentity
    password: str
    broker_url: str
    server_keys: dict[str, str]
    ca_pem: str | None
    certificate_pem: str | None
    school: str


def usable_token(session: Session, token: str, *, now: datetime) -> EnrolmentToken:
    """The unused, unexpired enrolment code `token` names; the caller marks it used."""
    row = session.scalar(
        select(EnrolmentToken).where(EnrolmentToken.token_hash == hash_token(token))
    )
    if row is None:
        raise Unauthorised("That enrolment code is not valid. Ask the technician for a new one.")
    if row.used_at is not None:
        raise Gone("That enrolment code has already been used. Each code works once.")
    if row.expires_at <= now:
        raise Gone("That enrolment code has expired. Ask the technician for a new one.")
    return row


def enrol(
    session: Session,
    box: SecretBox,
    settings: Settings,
    *,
    token: str,
    public_key: str,
    platform: str,
    tls_public_key_pem: str | None = None,
    now: datetime | None = None,
) -> Enrolled:
    """Turn a one-time token and a device's public key into a broker login; commits."""
    now = now or utcnow()
    row = usable_token(session, token, now=now)
    if platform not in PLATFORMS:
        raise ValidationFailed(f"Unknown platform {platform!r}; use one of {sorted(PLATFORMS)}.")
    try:
        device_key = decode_public_key(public_key)
    except Exception as exc:
        raise ValidationFailed("The device's public key is not a valid Ed25519 key.") from exc
    device = row.device
    if device.status is DeviceStatus.DISPOSED:
        raise Gone(f"{device.asset_tag} has been disposed of.")
    replaced = revoke_identities(session, device, now=now, why="enrolled again")
    password = generate_secret()
    identity = DeviceIdentity(
        school_id=device.school_id,
        device_id=device.id,
        mqtt_id=f"dev-{uuid.uuid4().hex[:16]}",
        public_key=public_key,
        kid=key_id(device_key),
        broker_secret_hash=hash_password(password),
        platform=platform,
        enrolled_at=now,
    )
    certificate_pem = None
    school = session.get(School, device.school_id)
    assert school is not None
    ca, _signing = school_authority(session, box, school)
    if tls_public_key_pem:
        try:
            tls_key = serialization.load_pem_public_key(tls_public_key_pem.encode())
            cert = issue_device_certificate(ca, identity.mqtt_id, tls_key, now=now)  # type: ignore[arg-type]
        except Exception as exc:
            raise ValidationFailed("The device's TLS public key could not be used.") from exc
        certificate_pem = certificate_to_pem(cert).decode()
        identity.certificate_pem = certificate_pem
    anchor = broker_trust_anchor(session, box, settings, school)
    session.add(identity)
    row.used_at = now
    session.flush()
    events.publish(events.DeviceEnrolled(session, device, now))
    signing = server_key(session, box)
    add_event(
        session,
        device,
        kind="enrolled",
        summary=f"Enrolled as {identity.mqtt_id} ({platform})"
        + (f"; replaced {len(replaced)} old identity" if replaced else ""),
        actor=None,
        details={"mqtt_id": identity.mqtt_id},
    )
    record_enrolled(
        session, device, platform=platform, replaced=len(replaced), mqtt_id=identity.mqtt_id
    )
    session.commit()
    write_broker_passwords(session, settings)
    return Enrolled(
        identity=identity,
        password=password,
        broker_url=settings.device_broker_url,
        server_keys=trusted_server_keys(session)
        or {signing.kid: encode_public_key(signing.public_key)},
        ca_pem=certificate_to_pem(anchor).decode() if anchor is not None else None,
        certificate_pem=certificate_pem,
        school=school.slug,
    )


def record_enrolled(
    session: Session, device: Device, *, platform: str, replaced: int, mqtt_id: str | None = None
) -> None:
    """Write the activity-trail entry for a device enrolling, over any channel."""
    details: dict[str, Any] = {"platform": platform, "replaced": replaced}
    if mqtt_id is not None:
        details = {"mqtt_id": mqtt_id, **details}
    record(
        session,
        actor=None,
        actor_label=f"device {device.asset_tag}",
        action="device.enrolled",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details=details,
    )


def revoke_identities(
    session: Session, device: Device, *, now: datetime, why: str
) -> list[DeviceIdentity]:
    """Forget a device's broker login(s): after a factory reset or a new enrolment."""
    active = session.scalars(
        select(DeviceIdentity).where(
            DeviceIdentity.device_id == device.id, DeviceIdentity.revoked_at.is_(None)
        )
    ).all()
    for identity in active:
        identity.revoked_at = now
        identity.online = False
        log.info("revoked %s for %s: %s", identity.mqtt_id, device.asset_tag, why)
    return list(active)


# A revoked device's will can still come for one and a half keepalives after it was last heard;
# its retained messages are cleared only once that has surely passed.
RETAINED_KEPT_FOR = timedelta(minutes=10)


def revoked_with_retained(session: Session, *, now: datetime, limit: int) -> list[tuple[int, str]]:
    """Revoked identities whose retained status and profile may still be on the broker."""
    rows = session.execute(
        select(DeviceIdentity.id, DeviceIdentity.mqtt_id)
        .where(
            DeviceIdentity.revoked_at <= now - RETAINED_KEPT_FOR,
            DeviceIdentity.retained_cleared_at.is_(None),
        )
        .order_by(DeviceIdentity.id)
        .limit(limit)
    )
    return [(row.id, row.mqtt_id) for row in rows]


def mark_retained_cleared(session: Session, ids: Sequence[int], *, now: datetime) -> None:
    session.execute(
        update(DeviceIdentity).where(DeviceIdentity.id.in_(ids)).values(retained_cleared_at=now)
    )


def active_identity(session: Session, device: Device) -> DeviceIdentity | None:
    return session.scalar(
        select(DeviceIdentity)
        .where(DeviceIdentity.device_id == device.id, DeviceIdentity.revoked_at.is_(None))
        .order_by(DeviceIdentity.enrolled_at.desc())
    )


def identity_by_mqtt_id(session: Session, mqtt_id: str) -> DeviceIdentity | None:
    return session.scalar(select(DeviceIdentity).where(DeviceIdentity.mqtt_id == mqtt_id))


def identities(session: Session, school_id: int) -> Sequence[DeviceIdentity]:
    return session.scalars(
        select(DeviceIdentity).where(
            DeviceIdentity.school_id == school_id, DeviceIdentity.revoked_at.is_(None)
        )
    ).all()


# --- the broker's password file (embedded broker, or Mosquitto via mqtt-config) ----------


def server_broker_password(settings: Settings) -> str:
    """The server's own broker password for the embedded broker, kept beside its files."""
    path = settings.server_secret_file
    if path.exists():
        return path.read_text().strip()
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    secret = generate_secret()
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret


def broker_password_hashes(session: Session, settings: Settings) -> dict[str, str]:
    hashes = dict(
        session.execute(
            select(DeviceIdentity.mqtt_id, DeviceIdentity.broker_secret_hash).where(
                DeviceIdentity.revoked_at.is_(None)
            )
        ).all()
    )
    hashes[settings.mqtt_server_user] = hash_password(server_broker_password(settings))
    return hashes


def write_broker_passwords(
    session: Session, settings: Settings, path: Path | None = None
) -> Path | None:
    """Rewrite the embedded broker's password file (it reloads it); Mosquitto uses mqtt-config."""
    if path is None:
        if not settings.embedded_broker:
            return None
        path = settings.broker_dir / "passwords"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_password_file(path, hashes=broker_password_hashes(session, settings))
    return path


# --- factory-reset confirmation over HTTPS -----------------------------------------------


def _signed_by_device(
    session: Session, raw: bytes, now: datetime
) -> tuple[DeviceIdentity, dict[str, Any]]:
    """The enrolled device that signed `raw`, and the verified body; `Unauthorised` otherwise."""
    try:
        claimed = unverified_body(raw)
        identity = identity_by_mqtt_id(session, str(claimed.get("device_id", "")))
        if identity is None or identity.revoked_at is not None:
            raise Unauthorised("Unknown device.")
        body = open_envelope(
            raw,
            {identity.kid: decode_public_key(identity.public_key)},
            device_id=identity.mqtt_id,
            now=int(now.timestamp()),
        )
    except EnvelopeError as exc:
        raise Unauthorised(f"The request could not be verified ({exc.reason}).") from exc
    # An identity follows its device; one whose device now belongs elsewhere speaks for nobody.
    if identity.device.school_id != identity.school_id:
        raise Unauthorised("Unknown device.")
    return identity, body


def confirm_reset(
    session: Session, box: SecretBox, raw: bytes, *, now: datetime | None = None
) -> bytes:
    """Answer a device asking 'may I really erase myself for this command?' with a signed yes/no."""
    now = now or utcnow()
    identity, body = _signed_by_device(session, raw, now)
    cmd_id = str(body.get("cmd_id", ""))
    command = session.scalar(
        select(Command)
        .where(Command.cmd_id == cmd_id, Command.device_id == identity.device_id)
        # A quick device can ask before the worker has committed the send: wait for it.
        .with_for_update()
    )
    confirm = bool(
        command is not None
        and command.type == "factory_reset"
        and command.mqtt_id == identity.mqtt_id
        and command.status in (CommandStatus.SENT, CommandStatus.RECEIVED)
        and command.expires_at > now
    )
    record(
        session,
        actor=None,
        actor_label=f"device {identity.device.asset_tag}",
        action="device.reset_confirmation",
        school_id=identity.school_id,
        target_type="device",
        target_id=identity.device.asset_tag,
        details={"cmd_id": cmd_id, "confirmed": confirm},
    )
    signing = server_key(session, box)
    session.commit()
    iat = int(now.timestamp())
    answer = {
        "v": 1,
        "kid": signing.kid,
        "device_id": identity.mqtt_id,
        "cmd_id": cmd_id,
        "confirm": confirm,
        "iat": iat,
        "exp": iat + CONFIRM_TTL,
    }
    return sign_envelope(answer, signing.private_key)


def lookup_device_for_token(session: Session, token_id: int, school_id: int) -> EnrolmentToken:
    token = session.scalar(
        select(EnrolmentToken).where(
            EnrolmentToken.id == token_id, EnrolmentToken.school_id == school_id
        )
    )
    if token is None:
        raise NotFound("No such enrolment code.")
    return token


def school_signing_identity(session: Session, box: SecretBox, school_id: int) -> Any:
    """The school's own profile-signing certificate and key (issued by its CA), for exports."""
    from device_profiles import load_signing_identity
    from provisioning.ca import Identity

    school = session.get(School, school_id)
    if school is None:
        raise NotFound("No such school.")
    ca, signing_pem = school_authority(session, box, school)
    identity = Identity.from_pem(signing_pem)
    session.commit()
    return load_signing_identity(identity.cert_pem(), identity.key_pem(), ca.cert_pem())


WHEREABOUTS_FIELDS = frozenset({"v", "kid", "device_id", "iat", "exp", "ssid", "gateway"})


def _optional_text(body: dict[str, Any], name: str, limit: int) -> str | None:
    """A bounded text field of a signed body, or None when absent or empty."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationFailed(f"The {name} is not valid.")
    return value


def record_whereabouts(
    session: Session, raw: bytes, *, public_address: str, now: datetime | None = None
) -> DeviceIdentity:
    """Take a kiosk's signed check-in and the address it came from as its network (commits).

    The broker hides a kiosk's address, so this HTTPS call is how the server sees the public
    address; each check-in must be newer than the last one accepted, so a copy cannot be replayed.
    """
    now = now or utcnow()
    try:
        address = str(ipaddress.ip_address(public_address))
    except ValueError:
        raise ValidationFailed("The request's address is not an internet address.") from None
    identity, body = _signed_by_device(session, raw, now)
    if not set(body) <= WHEREABOUTS_FIELDS:
        raise ValidationFailed("The check-in has fields it should not.")
    ssid = _optional_text(body, "ssid", 32)
    gateway = _optional_text(body, "gateway", 45)
    iat = int(body["iat"])
    # Rows are locked so two copies arriving together cannot both pass.
    session.refresh(identity, with_for_update=True)
    if identity.whereabouts_iat is not None and iat <= identity.whereabouts_iat:
        raise Unauthorised("The request could not be verified (replayed).")
    identity.whereabouts_iat = iat
    identity.last_seen_at = now
    sighting = events.NetworkSighting(identity.device, now, "device", ssid, gateway, address)
    events.publish(events.NetworksReported(session, [sighting]))
    session.commit()
    log.info("device %s checked in from its public address", identity.device_id)
    return identity
