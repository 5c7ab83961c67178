"""Enrolling an iPad: a one-time link to a signed enrolment profile carrying its identity."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import select
from sqlalchemy.orm import Session

from device_profiles.compilers.apple_mdm import MdmEnrolment, build_enrolment_profile
from device_profiles.signing import sign_mobileconfig
from provisioning.ca import issue_device_certificate
from provisioning.keys import certificate_to_pem
from server.activity.services import record
from server.auth.models import User
from server.config import Settings
from server.crypto import SecretBox
from server.devices.models import Device, Platform
from server.devices.services import add_event
from server.enrolment.services import (
    issue_enrolment_token,
    school_authority,
    school_signing_identity,
    usable_token,
)
from server.errors import ValidationFailed
from server.ipads.models import IpadEnrolment, Stage
from server.ipads.services.credentials import push_credential
from server.schools.models import School

ENROL_PATH = "/mdm/enrol/"
CHECKIN_PATH = "/mdm/checkin"
CONNECT_PATH = "/mdm/connect"
TOPIC_PREFIX = "com.apple.mgmt.External."


@dataclass(frozen=True)
class EnrolmentLink:
    """The one-time address Safari on the iPad opens, and when it stops working."""

    url: str
    expires_at: datetime


def school_topic(session: Session, school: School) -> str:
    """The push topic the school's iPads are told to listen on.

    A real iPad needs the topic of the school's Apple push certificate; until one is uploaded
    Trolley names a stable topic of its own, and iPads pick commands up when they check in.
    """
    credential = push_credential(session, school.id)
    if credential is not None:
        return credential.topic
    return TOPIC_PREFIX + str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:trolley:school:{school.slug}"))


def enrolment_link(
    session: Session, actor: User | None, device: Device, settings: Settings, *, now: datetime
) -> EnrolmentLink:
    """A one-time link (24 hours) to this iPad's enrolment profile; commits."""
    if device.platform is not Platform.IPADOS:
        raise ValidationFailed(f"{device.asset_tag} is not an iPad; enrol it with its own client.")
    token, payload = issue_enrolment_token(session, actor, device, settings, now=now)
    return EnrolmentLink(
        settings.base_url.rstrip("/") + ENROL_PATH + payload.token, token.expires_at
    )


def _identity(name: str, password: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#12 with the algorithms every iPadOS version reads (3DES and SHA-1 MAC)."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # noqa: S303
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(name.encode(), key, cert, None, encryption)


def enrolment_profile(
    session: Session, box: SecretBox, settings: Settings, token: str, *, now: datetime
) -> bytes:
    """Spend a one-time code on a signed enrolment profile with a new identity; commits."""
    usable_token(session, token, now=now)  # a bad code costs no key
    # A new RSA key takes a good part of a second: make it outside the write transaction, then
    # check the code again, since it may have been spent meanwhile.
    session.rollback()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    row = usable_token(session, token, now=now)
    device = row.device
    if device.platform is not Platform.IPADOS:
        raise ValidationFailed(f"{device.asset_tag} is not an iPad.")
    school = session.get(School, device.school_id)
    assert school is not None
    ca, _signing = school_authority(session, box, school)
    name = f"ipad-{secrets.token_hex(8)}"
    cert = issue_device_certificate(ca, name, key.public_key(), now=now)
    password = secrets.token_urlsafe(18)
    base = settings.base_url.rstrip("/")
    topic = school_topic(session, school)
    unsigned = build_enrolment_profile(
        MdmEnrolment(
            school_slug=school.slug,
            school_name=school.name,
            server_url=base + CONNECT_PATH,
            checkin_url=base + CHECKIN_PATH,
            topic=topic,
            identity_p12=_identity(name, password, cert, key),
            identity_password=password,
        )
    )
    enrolment = IpadEnrolment(
        school_id=device.school_id,
        device_id=device.id,
        stage=Stage.DOWNLOADED,
        certificate_sha256=hashlib.sha256(
            cert.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
        certificate_pem=certificate_to_pem(cert).decode(),
        topic=topic,
        created_at=now,
    )
    session.add(enrolment)
    row.used_at = now
    add_event(
        session,
        device,
        kind="enrolled",
        summary="Enrolment profile downloaded to the iPad; waiting for it to be installed",
        actor=None,
        details={"identity": name},
    )
    record(
        session,
        actor=None,
        actor_label=f"device {device.asset_tag}",
        action="ipad.profile_downloaded",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"identity": name},
    )
    signing = school_signing_identity(session, box, device.school_id)
    session.commit()
    return sign_mobileconfig(
        unsigned, signing.certificate, signing.private_key, signing.chain, now=now
    )


def enrolments(session: Session, device: Device) -> list[IpadEnrolment]:
    """The device's enrolments, newest first."""
    return list(
        session.scalars(
            select(IpadEnrolment)
            .where(IpadEnrolment.device_id == device.id)
            .order_by(IpadEnrolment.created_at.desc(), IpadEnrolment.id.desc())
        )
    )
