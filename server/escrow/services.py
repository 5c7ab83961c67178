"""PIN escrow: sealed at rest, read only by technicians, every read logged, destroyed on reset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import Role, User
from server.crypto import SecretBox, SecretUnreadable
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.escrow.models import CredentialEscrow, SecretKind

log = logging.getLogger(__name__)
READERS = frozenset({Role.TECHNICIAN})
MAX_SECRET = 500


def deposit(
    session: Session,
    box: SecretBox,
    actor: User,
    device: Device,
    kind: SecretKind,
    secret: str,
    *,
    label: str = "",
    commit: bool = True,
) -> CredentialEscrow:
    """Seal a credential for a device; the plain text is never stored or logged."""
    if device.school_id != actor.school_id:
        raise NotFound("No such device in your school.")
    if device.status is DeviceStatus.DISPOSED:
        raise ValidationFailed(f"{device.asset_tag} has been disposed of.")
    if not secret or not secret.strip():
        raise ValidationFailed("Enter the PIN, passcode or account details.")
    if len(secret) > MAX_SECRET:
        raise ValidationFailed(f"That is longer than {MAX_SECRET} characters.")
    entry = CredentialEscrow(
        school_id=device.school_id,
        device_id=device.id,
        kind=kind,
        label=label.strip()[:120],
        secret_sealed=box.seal(secret),
        deposited_by_id=actor.id,
    )
    session.add(entry)
    session.flush()
    add_event(
        session,
        device,
        kind="escrow",
        summary=f"{kind.label} handed over for safe keeping",
        actor=actor,
    )
    record(
        session,
        actor=actor,
        action="escrow.deposited",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"kind": kind.value, "id": entry.id},
    )
    if commit:
        session.commit()
    return entry


def _entry(session: Session, actor: User, escrow_id: int) -> CredentialEscrow:
    entry = session.scalar(
        select(CredentialEscrow).where(
            CredentialEscrow.id == escrow_id, CredentialEscrow.school_id == actor.school_id
        )
    )
    if entry is None:
        raise NotFound("No such escrowed credential in your school.")
    return entry


def reveal(
    session: Session, box: SecretBox, actor: User, escrow_id: int, *, reason: str
) -> tuple[CredentialEscrow, str]:
    """Open a credential for a technician; the read is in the activity trail before it is shown."""
    if actor.role not in READERS:
        record(
            session,
            actor=actor,
            action="escrow.read_refused",
            school_id=actor.school_id,
            target_type="escrow",
            target_id=escrow_id,
        )
        session.commit()
        raise Forbidden("Only a technician can read escrowed PINs and passwords.")
    if not reason.strip():
        raise ValidationFailed(
            "Say why you need it; the reason is kept with the record of the read."
        )
    entry = _entry(session, actor, escrow_id)
    if entry.secret_sealed is None:
        raise Conflict("This credential was destroyed after the device was reset.")
    try:
        secret = box.open(entry.secret_sealed)
    except SecretUnreadable:
        record(
            session,
            actor=actor,
            action="escrow.tampered",
            school_id=actor.school_id,
            target_type="escrow",
            target_id=entry.id,
        )
        session.commit()
        log.error("escrowed credential %s failed its integrity check", entry.id)
        raise Conflict(
            "This credential failed its integrity check (it was altered, or sealed with a key "
            "Trolley no longer holds). It has not been shown."
        ) from None
    entry.last_read_at = utcnow()
    record(
        session,
        actor=actor,
        action="escrow.read",
        school_id=actor.school_id,
        target_type="escrow",
        target_id=entry.id,
        details={
            "device": entry.device.asset_tag,
            "kind": entry.kind.value,
            "reason": reason.strip(),
        },
    )
    session.commit()
    return entry, secret


def destroy(
    session: Session,
    actor: User | None,
    entry: CredentialEscrow,
    reason: str,
    *,
    now: datetime | None = None,
) -> None:
    """Wipe the sealed secret itself; the record that it existed stays."""
    if entry.destroyed_at is not None:
        return
    entry.secret_sealed = None
    entry.destroyed_at = now or utcnow()
    entry.destroyed_reason = reason[:200]
    record(
        session,
        actor=actor,
        action="escrow.destroyed",
        school_id=entry.school_id,
        target_type="escrow",
        target_id=entry.id,
        details={"reason": reason[:200]},
    )


def destroy_by_id(session: Session, actor: User, escrow_id: int, reason: str) -> CredentialEscrow:
    if actor.role not in READERS and actor.role is not Role.SBM:
        raise Forbidden(
            "Only a technician or the school business manager can destroy a credential."
        )
    entry = _entry(session, actor, escrow_id)
    # P-LEAVE-2: the PIN must always be known. One account's request must not be able to lose
    # the school every device's PIN (nor one it has just replaced with a made-up one): a PIN goes
    # by itself when its device confirms a reset, and by hand only once the device is disposed of.
    device = session.get_one(Device, entry.device_id)
    if entry.destroyed_at is None and device.status is not DeviceStatus.DISPOSED:
        raise ValidationFailed(
            f"This may still be the only way into {device.asset_tag}, and the network manager "
            "must always be able to open it: an escrowed PIN is destroyed when the device "
            "confirms a factory reset, or once it is disposed of.",
            code="still_needed",
        )
    destroy(session, actor, entry, reason.strip() or "destroyed by hand")
    session.commit()
    return entry


def device_reset(session: Session, device: Device, now: datetime) -> int:
    """After a confirmed factory reset the old PIN is useless: destroy it (rotation on reset)."""
    live = live_for_device(session, device)
    for entry in live:
        destroy(session, None, entry, "device factory reset", now=now)
    if live:
        add_event(
            session,
            device,
            kind="escrow",
            summary=f"{len(live)} escrowed credential(s) destroyed after the reset; "
            "escrow the new PIN",
            actor=None,
        )
    return len(live)


def live_for_device(session: Session, device: Device) -> Sequence[CredentialEscrow]:
    return session.scalars(
        select(CredentialEscrow)
        .where(CredentialEscrow.device_id == device.id, CredentialEscrow.destroyed_at.is_(None))
        .order_by(CredentialEscrow.deposited_at)
    ).all()


def history_for_device(session: Session, device: Device) -> Sequence[CredentialEscrow]:
    return session.scalars(
        select(CredentialEscrow)
        .where(CredentialEscrow.device_id == device.id)
        .order_by(CredentialEscrow.deposited_at.desc())
    ).all()


def rotate(session: Session, box: SecretBox) -> int:
    """Re-seal every secret under the newest data key, so old keys can be retired."""
    from server.auth.models import User as Person

    count = 0
    for entry in session.scalars(
        select(CredentialEscrow).where(CredentialEscrow.secret_sealed.is_not(None))
    ):
        assert entry.secret_sealed is not None
        entry.secret_sealed = box.rotate(entry.secret_sealed)
        count += 1
    for person in session.scalars(select(Person).where(Person.totp_secret_sealed.is_not(None))):
        assert person.totp_secret_sealed is not None
        person.totp_secret_sealed = box.rotate(person.totp_secret_sealed)
        count += 1
    record(session, actor=None, action="keys.rotated", school_id=None, details={"secrets": count})
    session.commit()
    return count
