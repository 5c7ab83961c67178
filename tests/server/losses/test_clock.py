"""The 72-hour clock's reminders, driven by the worker's job with an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device
from server.losses import services
from server.losses.models import LossReport, RiskLevel
from server.notifications.models import EmailMessage, Notification
from tests.server.losses.conftest import NOW

JOB = "losses.escalate"


def _reminders(session: Session) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.kind == "loss.escalation")
            .order_by(Notification.id)
        )
    )


def _emails_to(session: Session, address: str) -> list[str]:
    return list(
        session.scalars(
            select(EmailMessage.subject)
            .where(EmailMessage.to_address == address)
            .order_by(EmailMessage.id)
        )
    )


def test_reminders_at_24_and_48_hours_then_overdue(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    head: User,
    run_job: Callable[[str, datetime], object],
) -> None:
    """P-LOSS-2: the job reminds at 24 h and 48 h (the DPO too from 48 h), then marks overdue."""
    services.update_settings(session, head, dpo_email="dpo@trust.example")
    loss = report(device)
    assert run_job(JOB, NOW + timedelta(hours=23, minutes=59)) == 0
    assert _reminders(session) == []

    assert run_job(JOB, NOW + timedelta(hours=24)) == 1
    (first,) = _reminders(session)
    assert first.user_id == head.id and first.title.startswith("48 h 0 min left")
    assert loss.escalation_level == 1
    assert run_job(JOB, NOW + timedelta(hours=30)) == 0  # once only, however often it runs
    assert _emails_to(session, "dpo@trust.example") == [
        f"Device reported lost or stolen: {device.asset_tag}"
    ]

    assert run_job(JOB, NOW + timedelta(hours=48)) == 1
    assert _reminders(session)[-1].title.startswith("24 h 0 min left")
    assert len(_emails_to(session, "dpo@trust.example")) == 2

    assert run_job(JOB, NOW + timedelta(hours=72)) == 1
    overdue = _reminders(session)[-1]
    assert overdue.title.startswith("Overdue") and "ran out" in overdue.body
    assert len(_emails_to(session, "dpo@trust.example")) == 3
    assert services.clock(loss, NOW + timedelta(hours=72)).stage == "overdue"
    assert run_job(JOB, NOW + timedelta(hours=100)) == 0
    kinds = [e.kind for e in services.case(session, loss, NOW).events]
    assert kinds.count("escalation") == 3


def test_a_late_job_sends_only_the_reminder_now_due(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    run_job: Callable[[str, datetime], object],
) -> None:
    """A worker that was down for two days sends 'overdue', not three reminders at once."""
    loss = report(device)
    assert run_job(JOB, NOW + timedelta(hours=80)) == 1
    (only,) = _reminders(session)
    assert only.title.startswith("Overdue") and loss.escalation_level == 3


def test_a_decided_case_gets_no_reminders(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    head: User,
    run_job: Callable[[str, datetime], object],
) -> None:
    """P-LOSS-2: the clock stops at the decision; a case waiting for the ICO keeps reminding."""
    loss = report(device)
    services.assess(
        session,
        head,
        loss,
        personal_data="None.",
        risk=RiskLevel.UNLIKELY,
        risk_notes="Found locked.",
        now=NOW + timedelta(hours=1),
    )
    services.decide(
        session,
        head,
        loss,
        report_to_ico=False,
        justification="Locked with a passcode.",
        now=NOW + timedelta(hours=2),
    )
    assert run_job(JOB, NOW + timedelta(hours=80)) == 0
    assert _reminders(session) == []


def test_moving_awareness_earlier_brings_the_reminder_forward(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    head: User,
    run_job: Callable[[str, datetime], object],
) -> None:
    """P-LOSS-2: the clock follows the corrected time of awareness."""
    loss = report(device)
    later = NOW + timedelta(hours=2)
    services.change_awareness(
        session, head, loss, NOW - timedelta(hours=1, minutes=30), "Noticed earlier.", now=later
    )
    assert run_job(JOB, NOW + timedelta(hours=22, minutes=30)) == 1
    assert _reminders(session)[0].title.startswith("48 h 0 min left")
