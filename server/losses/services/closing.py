"""Closing a loss: found, stolen or written off, only once the ICO decision is on record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.devices.models import DeviceStatus
from server.devices.services import change_status
from server.disposals.services import record_write_off
from server.errors import ValidationFailed
from server.losses.models import Decision, LossReport, Outcome
from server.losses.services.common import _audit, _clean, _event, _require_manager, _require_open
from server.losses.services.remote import _queue_lost_mode
from server.notifications import services as notifications


def close(
    session: Session,
    actor: User,
    loss: LossReport,
    outcome: Outcome,
    *,
    reference: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Close the case as found, stolen or written off; only with a decision on the ICO."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    reference, note = _clean(reference), _clean(note)
    if loss.decision is None:
        raise ValidationFailed(
            "A case cannot close without a decision on reporting to the ICO. Record the breach "
            "assessment and the decision, with its justification, first."
        )
    if loss.decision is Decision.REPORT and not loss.ico_reference:
        raise ValidationFailed(
            "You decided to report this loss to the ICO: record the ICO's reference before "
            "closing the case."
        )
    if outcome is Outcome.STOLEN:
        reference = reference or (loss.police_reference or "")
        if not reference:
            raise ValidationFailed(
                "Enter the police crime reference for a stolen device.",
                details=[{"field": "reference", "message": "a crime reference is needed"}],
            )
    if outcome is Outcome.WRITTEN_OFF and not reference:
        raise ValidationFailed(
            "Enter the insurance (or loss) reference for the write-off.",
            details=[{"field": "reference", "message": "an insurance reference is needed"}],
        )
    if len(reference) > 100:
        raise ValidationFailed("A reference has 100 characters or fewer.")
    device = loss.device
    if outcome is Outcome.FOUND:
        if device.status in (DeviceStatus.LOST, DeviceStatus.STOLEN):
            change_status(
                session,
                actor,
                device,
                DeviceStatus.IN_SERVICE,
                f"Found (loss report {loss.id})" + (f": {note}" if note else ""),
                commit=False,
            )
    elif outcome is Outcome.STOLEN:
        loss.police_reference = reference[:64]
        if device.status is DeviceStatus.LOST:
            change_status(
                session,
                actor,
                device,
                DeviceStatus.STOLEN,
                f"Stolen, crime reference {reference} (loss report {loss.id})",
                commit=False,
            )
    else:
        # The write-off is what lets the device go on to disposal.
        record_write_off(session, actor, device, reference)
    loss.outcome = outcome
    loss.outcome_reference = reference or None
    loss.outcome_note = note or None
    loss.closed_at = now
    loss.closed_by_id = actor.id
    summary = {
        Outcome.FOUND: "Closed: found and back in service. Wipe its photos and check its "
        "condition before it is used again.",
        Outcome.STOLEN: f"Closed: stolen, police crime reference {reference}.",
        Outcome.WRITTEN_OFF: f"Closed: written off, insurance reference {reference}. The device "
        "can now go to disposal.",
    }[outcome]
    _event(
        session,
        loss,
        kind="closed",
        summary=summary + (f" {note}" if note else ""),
        actor=actor,
        at=now,
        details={"outcome": outcome.value, "reference": reference or None},
    )
    if outcome is Outcome.FOUND:
        _queue_lost_mode(session, actor, loss, enabled=False, now=now)
    if loss.reported_by is not None and loss.reported_by.active:
        notifications.notify(
            session,
            school_id=loss.school_id,
            users=[loss.reported_by],
            kind="loss.closed",
            title=f"Loss of {device.asset_tag} closed: {outcome.label.lower()}",
            body=summary,
            link=loss.link,
            email=False,
        )
    _audit(session, actor, loss, "closed", outcome=outcome.value, reference=reference or None)
    session.commit()
    return loss
