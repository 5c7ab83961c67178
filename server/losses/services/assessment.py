"""The headteacher's breach assessment and decision on reporting to the ICO (P-LOSS-2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.errors import ValidationFailed
from server.losses.models import Decision, LossReport, RiskLevel
from server.losses.services.breach_clock import _due_level
from server.losses.services.common import (
    _audit,
    _clean,
    _event,
    _refuse_if,
    _require_manager,
    _require_open,
)
from server.losses.services.reading import known_facts
from server.schools.services import when


def assess(
    session: Session,
    actor: User,
    loss: LossReport,
    *,
    personal_data: str,
    risk: RiskLevel,
    risk_notes: str,
    now: datetime | None = None,
) -> LossReport:
    """Record the breach assessment: Trolley's facts as they stand, and the head's judgement."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    data, notes = _clean(personal_data), _clean(risk_notes)
    problems = []
    if not data:
        problems.append(("personal_data", "Say what personal data could be on the device."))
    if not notes:
        problems.append(("risk_notes", "Explain your judgement of the risk to people."))
    _refuse_if(problems)
    facts = known_facts(session, loss)
    loss.facts = facts.as_dict()
    loss.personal_data = data[:4000]
    loss.risk = risk
    loss.risk_notes = notes[:4000]
    loss.assessed_at = now
    loss.assessed_by_id = actor.id
    _event(
        session,
        loss,
        kind="assessed",
        summary=f"Breach assessment: {risk.label.lower()}. {notes}",
        actor=actor,
        at=now,
        details={"risk": risk.value, "facts": loss.facts},
    )
    _audit(session, actor, loss, "assessed", risk=risk.value)
    session.commit()
    return loss


def change_awareness(
    session: Session,
    actor: User,
    loss: LossReport,
    aware_at: datetime,
    reason: str,
    *,
    now: datetime | None = None,
) -> LossReport:
    """Move the start of the 72 hours, with the reason; never to a time still to come."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    why = _clean(reason)
    if aware_at.tzinfo is None:
        raise ValidationFailed("Give the time the school became aware with its time zone.")
    if aware_at > now:
        raise ValidationFailed(
            "The time the school became aware cannot be in the future.",
            details=[{"field": "aware_at", "message": "in the future"}],
        )
    if aware_at < loss.last_seen_at:
        raise ValidationFailed(
            "The school cannot have become aware of the loss before the device was last seen "
            f"({when(loss.last_seen_at, actor.school)}).",
            details=[{"field": "aware_at", "message": "before the device was last seen"}],
        )
    if not why:
        raise ValidationFailed(
            "Say why the time of awareness is changing; it is part of the record.",
            details=[{"field": "reason", "message": "a reason is needed"}],
        )
    before = loss.aware_at
    loss.aware_at = aware_at
    # Reminders already sent stay sent; a later start means the next ones are due again later.
    loss.escalation_level = min(loss.escalation_level, _due_level(loss, now))
    _event(
        session,
        loss,
        kind="awareness",
        summary=f"Time of awareness changed from {when(before, actor.school)} to "
        f"{when(aware_at, actor.school)}: {why}",
        actor=actor,
        at=now,
        details={"from": before.isoformat(), "to": aware_at.isoformat(), "reason": why},
    )
    _audit(
        session,
        actor,
        loss,
        "awareness_changed",
        **{"from": before.isoformat(), "to": aware_at.isoformat(), "reason": why},
    )
    session.commit()
    return loss


def decide(
    session: Session,
    actor: User,
    loss: LossReport,
    *,
    report_to_ico: bool,
    justification: str,
    ico_reference: str | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Record whether the loss is reported to the ICO, and why; required before closing."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    why, reference = _clean(justification), _clean(ico_reference)
    if loss.risk is None:
        raise ValidationFailed(
            "Record the breach assessment first: the decision rests on your judgement of the risk."
        )
    if not why:
        raise ValidationFailed(
            "Write down why you decided this; the justification is kept in the breach log.",
            details=[{"field": "justification", "message": "a justification is needed"}],
        )
    if not report_to_ico and loss.risk is not RiskLevel.UNLIKELY:
        raise ValidationFailed(
            "You judged that this loss is likely to result in a risk to people, so it must be "
            "reported to the ICO. Change the assessment first if the risk is unlikely.",
            details=[{"field": "decision", "message": "a risk to people must be reported"}],
        )
    if reference and not report_to_ico:
        raise ValidationFailed("An ICO reference only goes with a decision to report.")
    if len(reference) > 64:
        raise ValidationFailed("An ICO reference has 64 characters or fewer.")
    decision = Decision.REPORT if report_to_ico else Decision.NO_REPORT
    loss.decision = decision
    loss.justification = why[:4000]
    loss.decided_at = now
    loss.decided_by_id = actor.id
    if decision is Decision.NO_REPORT:
        loss.ico_reference = None
        loss.ico_reported_at = None
    elif reference:
        loss.ico_reference = reference
        loss.ico_reported_at = now
    _event(
        session,
        loss,
        kind="decided",
        summary=f"Decision: {decision.label[0].lower()}{decision.label[1:]}. {why}",
        actor=actor,
        at=now,
        details={"decision": decision.value, "ico_reference": reference or None},
    )
    if reference:
        _event(
            session,
            loss,
            kind="ico_reported",
            summary=f"Reported to the ICO, reference {reference}",
            actor=actor,
            at=now,
        )
    _audit(session, actor, loss, "decided", decision=decision.value, justification=why)
    session.commit()
    return loss


def record_ico_report(
    session: Session,
    actor: User,
    loss: LossReport,
    reference: str,
    *,
    reported_at: datetime | None = None,
    now: datetime | None = None,
) -> LossReport:
    """Record the ICO's reference once the report has been made; this stops the clock."""
    now = now or utcnow()
    _require_manager(actor)
    _require_open(loss)
    reference = _clean(reference)
    reported_at = reported_at or now
    if loss.decision is not Decision.REPORT:
        raise ValidationFailed("Decide to report the loss to the ICO before recording a reference.")
    if not reference or len(reference) > 64:
        raise ValidationFailed(
            "Enter the reference the ICO gave you (64 characters or fewer).",
            details=[{"field": "reference", "message": "a reference is needed"}],
        )
    if reported_at.tzinfo is None or reported_at > now:
        raise ValidationFailed("The time of the report to the ICO cannot be in the future.")
    loss.ico_reference = reference
    loss.ico_reported_at = reported_at
    _event(
        session,
        loss,
        kind="ico_reported",
        summary=f"Reported to the ICO at {when(reported_at, actor.school)}, reference {reference}",
        actor=actor,
        at=now,
    )
    _audit(session, actor, loss, "ico_reported", reference=reference)
    session.commit()
    return loss
