"""A school's credentials for Apple's push service: checked at upload, sealed, trailed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.crypto import SecretBox
from server.errors import NotFound, ValidationFailed
from server.ipads.models import ACTIVE, ApplePushCredential, IpadEnrolment, PushAuth
from server.schools.models import School
from server.schools.services import day

TOPIC = re.compile(r"^com\.apple\.mgmt\.External\.[0-9a-fA-F-]{36}$")
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")  # Apple's key and team ids: ten capitals or digits
WARN_BEFORE = timedelta(days=30)
MAX_FILE_BYTES = 20_000


@dataclass(frozen=True)
class PushSecret:
    """The opened secret: for certificates the PEM key and certificate, for tokens the .p8 key."""

    auth: PushAuth
    topic: str
    key_pem: bytes
    certificate_pem: bytes | None = None
    key_id: str | None = None
    team_id: str | None = None


def push_credential(session: Session, school_id: int) -> ApplePushCredential | None:
    return session.scalar(
        select(ApplePushCredential).where(ApplePushCredential.school_id == school_id)
    )


def expiry_warning(
    credential: ApplePushCredential | None, school: School, now: datetime
) -> str | None:
    """What to tell the school when its push certificate has expired or soon will."""
    if credential is None or credential.not_after is None:
        return None
    if credential.not_after <= now:
        return (
            "The push certificate has expired: iPads are not woken and Apple will not renew it. "
            "Renew it at Apple's Push Certificates Portal with the same Apple Account and "
            "upload it again."
        )
    if credential.not_after - now <= WARN_BEFORE:
        return (
            f"The push certificate expires on {day(credential.not_after, school)}. "
            "Renew it (do not create a new one: iPads enrolled under a new certificate's "
            "topic must re-enrol) and upload it again."
        )
    return None


def _certificate_topic(certificate: x509.Certificate) -> str:
    """The topic Apple wrote into the push certificate's subject as its user id (UID)."""
    uids = certificate.subject.get_attributes_for_oid(NameOID.USER_ID)
    topic = str(uids[0].value) if uids else ""
    if not TOPIC.match(topic):
        raise ValidationFailed(
            "That is not an Apple MDM push certificate: its subject has no "
            "com.apple.mgmt.External topic. Upload the certificate Apple's Push Certificates "
            "Portal issued."
        )
    return topic


def _load_pem_pair(
    certificate_bytes: bytes, key_bytes: bytes, password: str
) -> tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    try:
        certificate = x509.load_pem_x509_certificate(certificate_bytes)
    except ValueError:
        raise ValidationFailed("The certificate file is not a PEM certificate.") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password.encode() or None)
    except (ValueError, TypeError):
        raise ValidationFailed(
            "The private key could not be read: give the PEM key, and its passphrase if it has one."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValidationFailed("The private key is of a kind Apple does not issue.")
    return certificate, key


def _load_p12(
    data: bytes, password: str
) -> tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    try:
        key, certificate, _chain = pkcs12.load_key_and_certificates(data, password.encode() or None)
    except ValueError:
        raise ValidationFailed(
            "The .p12 file could not be opened: check the passphrase it was exported with."
        ) from None
    if certificate is None or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValidationFailed("The .p12 file must hold the push certificate and its private key.")
    return certificate, key


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_certificate(
    *, certificate: bytes, key: bytes | None, password: str, school: School, now: datetime
) -> PushSecret:
    """A push certificate and its key (PEM pair, or one .p12), refused with a clear reason."""
    if key is None:
        cert, private = _load_p12(certificate, password)
    else:
        cert, private = _load_pem_pair(certificate, key, password)
    if _spki(cert.public_key()) != _spki(private.public_key()):
        raise ValidationFailed("The private key does not belong to this certificate.")
    if cert.not_valid_after_utc <= now:
        raise ValidationFailed(
            f"This push certificate expired on {day(cert.not_valid_after_utc, school)}. "
            "Renew it at Apple's Push Certificates Portal and upload the new one."
        )
    if cert.not_valid_before_utc > now:
        raise ValidationFailed("This push certificate is not valid yet; check the server's clock.")
    return PushSecret(
        PushAuth.CERTIFICATE,
        _certificate_topic(cert),
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def check_token_key(*, p8: bytes, key_id: str, team_id: str, topic: str) -> PushSecret:
    """A token-signing key (.p8) with its key id, team id and the MDM topic it pushes to."""
    key_id, team_id, topic = key_id.strip().upper(), team_id.strip().upper(), topic.strip()
    try:
        key = serialization.load_pem_private_key(p8, None)
    except (ValueError, TypeError):
        raise ValidationFailed(
            "That is not a .p8 key as Apple issues it (PEM, no passphrase)."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValidationFailed("Apple's push keys are P-256 elliptic-curve keys; this one is not.")
    if not _APPLE_ID.match(key_id):
        raise ValidationFailed("The key ID is ten letters or digits, shown beside the key.")
    if not _APPLE_ID.match(team_id):
        raise ValidationFailed("The team ID is ten letters or digits (Membership details).")
    if not TOPIC.match(topic):
        raise ValidationFailed(
            "The topic is the MDM push topic, com.apple.mgmt.External. followed by its UUID."
        )
    return PushSecret(PushAuth.TOKEN, topic, p8, key_id=key_id, team_id=team_id)


def save_credential(
    session: Session, box: SecretBox, actor: User, secret: PushSecret, *, now: datetime
) -> ApplePushCredential:
    """Keep the school's push credentials, sealed, replacing any before; trailed; commits."""
    sealed = box.seal(
        json.dumps(
            {
                "key": secret.key_pem.decode(),
                "certificate": (secret.certificate_pem or b"").decode() or None,
            }
        )
    )
    not_after = None
    if secret.certificate_pem is not None:
        not_after = x509.load_pem_x509_certificate(secret.certificate_pem).not_valid_after_utc
    credential = push_credential(session, actor.school_id)
    replaced = credential is not None
    if credential is not None and credential.topic != secret.topic:
        _refuse_other_topic(session, actor.school_id, credential.topic, secret.topic)
    if credential is None:
        credential = ApplePushCredential(school_id=actor.school_id)
        session.add(credential)
    credential.auth, credential.topic, credential.secret_sealed = secret.auth, secret.topic, sealed
    credential.certificate_pem = (secret.certificate_pem or b"").decode() or None
    credential.not_after = not_after
    credential.key_id, credential.team_id = secret.key_id, secret.team_id
    credential.uploaded_by_id, credential.uploaded_at = actor.id, now
    record(
        session,
        actor=actor,
        action="ipad.push_replaced" if replaced else "ipad.push_uploaded",
        school_id=actor.school_id,
        target_type="push_credential",
        target_id=secret.topic,
        details={
            "auth": secret.auth.value,
            "expires": not_after.isoformat() if not_after else None,
            "key_id": secret.key_id,
        },
    )
    session.commit()
    return credential


def _refuse_other_topic(session: Session, school_id: int, old: str, new: str) -> None:
    """Apple delivers a push only on the topic an iPad enrolled with: credentials for another
    topic would leave every enrolled iPad unwoken, so they replace none while any listen."""
    listening = session.scalar(
        select(func.count())
        .select_from(IpadEnrolment)
        .where(
            IpadEnrolment.school_id == school_id,
            IpadEnrolment.stage.in_(ACTIVE),
            IpadEnrolment.topic == old,
        )
    )
    if listening:
        raise ValidationFailed(
            f"These credentials are for the push topic {new}, but {listening} enrolled iPad(s) "
            f"listen on {old}: Apple would wake none of them. Renew the existing push "
            "certificate in Apple's Push Certificates Portal, with the same Apple Account, "
            "rather than making a new one. To move to a new topic, remove the old credentials "
            "first and enrol the iPads again.",
            code="other_topic",
        )


def remove_credential(session: Session, actor: User) -> None:
    """Forget the school's push credentials: iPads then wait for their own check-ins; commits."""
    credential = push_credential(session, actor.school_id)
    if credential is None:
        raise NotFound("No push credentials are uploaded for this school.")
    topic = credential.topic
    session.delete(credential)
    record(
        session,
        actor=actor,
        action="ipad.push_removed",
        school_id=actor.school_id,
        target_type="push_credential",
        target_id=topic,
    )
    session.commit()


def open_secret(box: SecretBox, credential: ApplePushCredential) -> PushSecret:
    """The sealed secret, opened for one push batch; never logged or shown."""
    inside = json.loads(box.open(credential.secret_sealed))
    certificate = inside.get("certificate")
    return PushSecret(
        credential.auth,
        credential.topic,
        inside["key"].encode(),
        certificate.encode() if certificate else None,
        credential.key_id,
        credential.team_id,
    )
