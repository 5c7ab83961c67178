"""What each destructive command, approval, rejection and freeze will do, asked before it is
done: one place for the words the device page, the approval queue and the freeze page share."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.auth.models import User
from server.commands import services
from server.commands.models import Command, CommandStatus, FreezeState
from server.devices.models import Device
from server.errors import NotFound
from server.schools.services.clock import plural
from server.web import Confirmation

# What each of the device page's asking buttons does to the device; others need no question.
_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wipe_photos": (
        "Wipe the photos on {tag}?",
        ("Every photo and video on {tag} is deleted. They cannot be brought back.",),
    ),
    "lock": (
        "Lock {tag}?",
        (
            "{tag} locks at once, even in the middle of a lesson, and cannot be used until it "
            "is unlocked.",
        ),
    ),
    "lost_mode_on": (
        "Put {tag} in lost mode?",
        (
            "{tag} is locked and shows the school's return message until lost mode is turned off.",
            "It counts against the school's limit on devices taken out of use.",
        ),
    ),
    "lost_mode_off": (
        "Turn lost mode off on {tag}?",
        (
            "{tag} unlocks and the school's return message goes: whoever has it can use it.",
            "Turn it off only once {tag} is back in school; if it is still missing, leave it on.",
        ),
    ),
    "factory_reset": (
        "Factory reset {tag}?",
        (
            "Everything on {tag} is erased: apps, settings, photos and files. This cannot be "
            "undone.",
            "It must be enrolled in Trolley again before it can be used.",
            "A second person must approve it before it is sent.",
        ),
    ),
}
BUTTONS = {
    "wipe_photos": "Wipe the photos on {tag}",
    "lock": "Lock {tag}",
    "lost_mode_on": "Put {tag} in lost mode",
    "lost_mode_off": "Turn lost mode off on {tag}",
    "factory_reset": "Factory reset {tag}",
}


def asks(action: str) -> bool:
    """Whether the device page's `action` is asked about first."""
    return action in _ACTIONS


def send(device: Device, action: str) -> Confirmation:
    """One device, one destructive command."""
    question, lines = _ACTIONS[action]
    tag = device.asset_tag
    return Confirmation(
        question=question.format(tag=tag),
        consequences=tuple(line.format(tag=tag) for line in lines),
        button=BUTTONS[action].format(tag=tag),
    )


def _waiting(session: Session, school_id: int, key: str) -> services.Approval:
    for approval in services.pending_approvals(session, school_id):
        if approval.key == key:
            return approval
    raise NotFound("Nothing is waiting for approval there.")


def approve(session: Session, school_id: int, key: str) -> Confirmation:
    """Letting a waiting command (or a batch of them) go to the devices."""
    return approval_of(_waiting(session, school_id, key))


def approval_of(approval: services.Approval) -> Confirmation:
    """The question for one row of the approval queue, as `approve` asks it."""
    what = services.label(approval.command_type).lower()
    devices = plural(approval.count, "device")
    lines = [f"A {what} is sent to {devices} as soon as they are online."]
    if approval.command_type == "factory_reset":
        lines.append("Everything on them is erased and they must be enrolled again.")
    if approval.command_type == "wipe_photos":
        lines.append("Every photo and video on them is deleted.")
    lines.append("Once a device has done it, it cannot be undone.")
    return Confirmation(
        question=f"Approve the {what} of {devices} asked for by {approval.requested_by}?",
        consequences=tuple(lines),
        button=f"Approve the {what} of {devices}",
    )


def reject(session: Session, school_id: int, command_id: int) -> Confirmation | None:
    """Turning down a command that waits for approval; None for one merely queued."""
    return rejection_of(services.get_command(session, school_id, command_id))


def rejection_of(command: Command) -> Confirmation | None:
    """The question for turning down `command`, as `reject` asks it."""
    if command.status is not CommandStatus.PENDING_APPROVAL:
        return None
    what = services.label(command.type).lower()
    who = command.requested_by.name if command.requested_by else "Trolley"
    return Confirmation(
        question=f"Turn down the {what} of {command.device.asset_tag}?",
        consequences=(f"It is cancelled for good; {who} must ask again if it is still needed.",),
        button=f"Turn down the {what}",
    )


def freeze(session: Session, school_id: int) -> Confirmation:
    """Stopping every destructive command in the school."""
    waiting = sum(a.count for a in services.pending_approvals(session, school_id))
    return Confirmation(
        question="Freeze every wipe, lock, lost mode and factory reset in the school?",
        consequences=(
            f"{plural(waiting, 'command')} waiting for approval, and any destructive command "
            "not yet finished, are stopped and cannot be restarted.",
            "Every device refuses destructive commands until the freeze is lifted; lifting it "
            "needs the headteacher and one more person.",
        ),
        button="Freeze destructive commands",
    )


def lift(session: Session, actor: User) -> Confirmation | None:
    """Lifting the freeze, asked of the person whose yes lifts it; None for a first ask."""
    found = services.current_freeze(session, actor.school_id)
    if (
        found is None
        or found.state is not FreezeState.FROZEN
        or found.lift_asked_by_id in (None, actor.id)
    ):
        return None
    return Confirmation(
        question="Lift the freeze on destructive commands?",
        consequences=(
            "Wipes, locks, lost mode and factory resets can be asked for again at once, within "
            "the usual limits, and every device is told the freeze is over.",
            "Commands the freeze stopped stay cancelled: ask again for any still needed.",
        ),
        button="Lift the freeze",
    )
