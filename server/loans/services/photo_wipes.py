"""Photo wipes: every return asks the device to delete its photos, and the loan shows the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.auth.models import User
from server.commands import services as commands
from server.commands.models import CommandStatus
from server.devices.models import Device
from server.errors import ValidationFailed
from server.loans.models import ItemState, LoanItem
from server.loans.services.places import _SQL
from server.schools.models import Location
from server.schools.services.clock import plural

WIPE_BY_HAND = "not enrolled: wipe by hand"
# A wipe asked for and not answered yet: it may be waiting for approval or for the device.
WIPE_WAITING = (
    CommandStatus.QUEUED,
    CommandStatus.SENT,
    CommandStatus.RECEIVED,
    CommandStatus.PENDING_APPROVAL,
)


def _wipe_unconfirmed(session: Session, device: Device) -> str | None:
    """Why the device's last wipe is not confirmed, or None if it was (or there was none)."""
    row = session.execute(_SQL["last_return"], {"device": device.id}).first()
    if row is None:
        return None
    returned_at, note, status, outstanding = row
    if not outstanding:
        return None  # the device, or a person checking by hand, confirmed the photos gone
    note = str(note) if note else None
    if (
        device.photo_count == 0
        and device.photo_count_at is not None
        and returned_at is not None
        and device.photo_count_at >= returned_at
    ):
        return None  # the device has since reported no photos at all
    if device.erased_at is not None and returned_at is not None and device.erased_at >= returned_at:
        return None  # its storage has since been erased, as the device or a technician vouches
    if note:
        return note
    if status is None or status is CommandStatus.DONE:
        return None
    return wipe_text(status, None)


def wipe_text(status: CommandStatus | None, result: dict[str, Any] | None) -> str:
    """How a return's photo wipe stands, in the words the loan page uses."""
    if status is None:
        return "no wipe asked for"
    if status is CommandStatus.DONE:
        if "deleted" not in (result or {}) and (result or {}).get("users_removed"):
            # A Chromebook wiped through Google: no count, but every user's data is gone.
            return "wiped (every user's data removed)"
        deleted = int((result or {}).get("deleted", 0) or 0)
        return f"wiped ({plural(deleted, 'photo')} deleted)"
    if status is CommandStatus.PENDING_APPROVAL:
        return "wipe waiting for approval"
    if status in (CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RECEIVED):
        return "wipe pending"
    return f"wipe {status.label}: check the device by hand"


def _by_hand_words(item: LoanItem) -> str:
    """A person's record of checking the photos, in the loan page's words."""
    who = item.wipe_resolved_by.name if item.wipe_resolved_by else "someone"
    left = (
        "photos not counted"
        if item.wipe_photos_left is None
        else f"{plural(item.wipe_photos_left, 'photo')} left"
    )
    return f"wiped by hand by {who} ({left})"


def _resolved_since(item: LoanItem, since: datetime | None) -> bool:
    """Whether the item's photos were confirmed gone, by a person or the device, after `since`."""
    return (
        not item.wipe_outstanding
        and item.wipe_resolved_at is not None
        and (since is None or item.wipe_resolved_at >= since)
    )


def wipe_state(item: LoanItem) -> tuple[str, str]:
    """(state key, words) for an item: done, pending, failed, by_hand, by_hand_done or none."""
    if item.state is ItemState.RETURNED:
        since, command, note = item.returned_at, item.wipe_command, item.wipe_note
        lesson = False
    else:
        # Still out (or taken over): what was asked for at the latest lesson's end, if anything.
        since, command, note = item.lesson_wipe_at, item.lesson_wipe_command, None
        lesson = True
        if since is None:
            return "none", ""
        if command is None:
            note = f"{WIPE_BY_HAND} (a lesson ended)"
    if _resolved_since(item, since):
        if item.wipe_resolved_by_id is not None:
            return "by_hand_done", _by_hand_words(item)
        if command is None or command.status is not CommandStatus.DONE:
            return "done", item.wipe_resolution or "confirmed later by the device"
    if note and command is None:
        return "by_hand", note
    if command is None:
        return "none", "no wipe asked for"
    if command.status is CommandStatus.DONE:
        key = "done"
    elif command.status in WIPE_WAITING:
        key = "pending"
    else:
        key = "failed"
    words = wipe_text(command.status, command.result)
    if lesson:
        words = words.replace("wiped (", "wiped at the end of a lesson (", 1)
        if key != "done":
            words = f"lesson's-end {words}"
    return key, words


@dataclass(frozen=True)
class Wipe:
    """The photo wipe asked for at a return: its words, its command, or why there is none."""

    words: str
    command_id: int | None = None
    note: str | None = None


def _queue_wipe(
    session: Session, actor: User, device: Device, place: Location, now: datetime
) -> Wipe:
    """P-PHOTO-1: every return asks the device to delete its photos; says what happened."""
    try:
        # One device per command: a fleet-sized batch would wait for a second approver.
        (command,) = commands.issue(
            session,
            actor,
            [device],
            "wipe_photos",
            {},
            reason=f"Returned to {place.name}: photos are deleted at the end of the lesson",
            now=now,
            commit=False,
            trail_at_commit=True,
            on_return=True,
        )
    except ValidationFailed:
        # The only refusal left for a live device: it is not enrolled, so nobody can reach it.
        return Wipe(WIPE_BY_HAND, note=WIPE_BY_HAND)
    return Wipe(wipe_text(command.status, None), command_id=command.id)
