"""Who sent an MDM message: the identity the school CA issued, proved by its signature."""

from __future__ import annotations

import hashlib
import logging
import plistlib
from datetime import datetime
from typing import Any, NoReturn

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.ca import verify_issued_by
from provisioning.errors import CertificateVerificationError
from server.activity.services import record
from server.crypto import SecretBox
from server.enrolment.services import school_authority
from server.errors import Unauthorised, ValidationFailed
from server.ipads.models import IpadEnrolment, Stage
from server.ipads.services.signature import BadSignature, signer_of
from server.schools.models import School

log = logging.getLogger(__name__)
MAX_BODY = 4 * 1024 * 1024  # an app list of a full iPad stays far below this


def _refuse(session: Session, enrolment: IpadEnrolment | None, why: str, where: str) -> NoReturn:
    """Log and trail a refused message, then refuse it."""
    log.warning("refused an MDM %s message: %s", where, why)
    session.rollback()
    record(
        session,
        actor=None,
        actor_label="an iPad" if enrolment is None else f"device {enrolment.device.asset_tag}",
        action="ipad.message_refused",
        school_id=enrolment.school_id if enrolment else None,
        target_type="device" if enrolment else None,
        target_id=enrolment.device.asset_tag if enrolment else None,
        details={"endpoint": where, "why": why[:200]},
    )
    session.commit()
    raise Unauthorised("This message is not signed by an iPad enrolled in Trolley.")


def sender(
    session: Session, box: SecretBox, body: bytes, header: str | None, *, where: str, now: datetime
) -> IpadEnrolment:
    """The enrolment whose identity signed `body`; anything else is refused, logged, trailed."""
    try:
        certificate = signer_of(body, header)
    except BadSignature as exc:
        _refuse(session, None, str(exc), where)
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    enrolment = session.scalar(
        select(IpadEnrolment).where(IpadEnrolment.certificate_sha256 == digest)
    )
    if enrolment is None:
        _refuse(session, None, "signed by a certificate Trolley did not issue", where)
    school = session.get(School, enrolment.school_id)
    assert school is not None
    ca, _signing = school_authority(session, box, school)
    try:
        verify_issued_by(certificate, ca.certificate, now=now)
    except CertificateVerificationError as exc:
        _refuse(session, enrolment, str(exc), where)
    if enrolment.stage in (Stage.CHECKED_OUT, Stage.REPLACED):
        _refuse(session, enrolment, f"the enrolment has ended ({enrolment.stage.value})", where)
    return enrolment


def message(body: bytes) -> dict[str, Any]:
    """The plist dictionary a message carries."""
    try:
        loaded = plistlib.loads(body)
    except Exception as exc:  # plistlib raises several unrelated types on bad input
        raise ValidationFailed("The message is not a property list.") from exc
    if not isinstance(loaded, dict):
        raise ValidationFailed("The message is not a property-list dictionary.")
    return loaded
