"""The incident record: the whole story of one loss with its times, for the file."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.losses.pages import Case, Step


def _command_steps(command: Command) -> list[Step]:
    name = commands.label(command.type)
    if command.type == "lost_mode":
        name += " on" if command.args.get("enabled") else " off"
    who = command.requested_by.name if command.requested_by else "Trolley"
    steps = [Step(command.created_at, f"{name} asked for", who, "command")]
    if command.approved_by is not None and command.approved_at is not None:
        steps.append(
            Step(command.approved_at, f"{name} approved", command.approved_by.name, "command")
        )
    if command.sent_at is not None:
        steps.append(Step(command.sent_at, f"{name} sent to the device", None, "command"))
    if command.received_at is not None:
        steps.append(Step(command.received_at, f"{name} received by the device", None, "command"))
    if command.finished_at is not None:
        outcome = (
            "acknowledged as done by the device"
            if command.status is CommandStatus.DONE
            else f"{command.status.label}: {command.detail or 'no reason given'}"
        )
        if command.status is CommandStatus.DONE and "status" in command.result.get("google", {}):
            # A Chromebook's status changed in Google's directory, not on the device.
            outcome = "done in Google: the Chromebook follows when it next syncs"
        steps.append(Step(command.finished_at, f"{name} {outcome}", None, "command"))
    elif command.status is CommandStatus.PENDING_APPROVAL:
        steps.append(
            Step(
                command.created_at,
                f"{name} waits for a second person to approve it",
                None,
                "command",
            )
        )
    return steps


def incident_record(session: Session, found: Case) -> list[Step]:
    """The whole story with its times: report, notices and their delivery, commands, decisions."""
    steps = [Step(e.at, e.summary, e.actor.name if e.actor else None, e.kind) for e in found.events]
    for notice, name in found.notices:
        steps.append(
            Step(notice.created_at, f"Told {name} in Trolley: {notice.title}", None, "notice")
        )
    for email in found.deliveries:
        steps.append(
            Step(
                email.created_at,
                f"E-mail to {email.to_address} queued: {email.subject}",
                None,
                "email",
            )
        )
        for attempt in email.attempt_log:
            text = (
                f"E-mail to {email.to_address} delivered to the mail server"
                if attempt.ok
                else f"E-mail to {email.to_address} could not be sent: {attempt.error}"
            )
            steps.append(Step(attempt.at, text, None, "email"))
    for command in found.commands:
        steps.extend(_command_steps(command))
    return sorted(steps, key=lambda s: s.at)
