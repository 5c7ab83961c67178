"""Where a leaver case stands: each item's steps, resets the devices confirmed, ready to sign."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.errors import NotFound
from server.leavers.models import HandoverRoute, LeaverCase, LeaverItem, ResetSource
from server.leavers.pages import CaseState, ItemState
from server.leavers.services.common import RESET, WITH_ITEMS, _event, _item, _short, _trail
from server.notifications.services import notify
from server.schools.services.clock import local_today, when

# --- the state of a case --------------------------------------------------------------------


def _reset_command(item: LeaverItem, command: Command | None) -> Command | None:
    """The item's reset command, only if it really is a reset of this very device."""
    if command is None or command.device_id != item.device_id or command.type != RESET:
        return None
    return command


def _item_state(case: LeaverCase, item: LeaverItem, command: Command | None) -> ItemState:
    school = case.school
    if not item.is_device:
        done = item.removed_at is not None
        return ItemState(
            item,
            True,
            True,
            done,
            item.removed_at,
            "Removed from the register" if done else "Still in the register",
            None,
            done,
            "" if done else "The school business manager removes it from the staff register.",
        )
    command = _reset_command(item, command)
    handed = (item.route is HandoverRoute.CREDENTIALS and item.credentials_at is not None) or (
        item.route is HandoverRoute.MEETING and case.meeting_starts_at is not None
    )
    reset_at = item.reset_at
    if reset_at is None and command is not None and command.status is CommandStatus.DONE:
        reset_at = command.finished_at  # the worker recorded the ack; the job will note it
    if item.reset_at is not None and item.reset_source is ResetSource.EVIDENCE:
        words = f"Reset confirmed with evidence at {when(item.reset_at, school)}"
    elif reset_at is not None:
        words = f"Reset confirmed by the device at {when(reset_at, school)}"
    elif command is None:
        words = "Not reset yet"
    elif command.status is CommandStatus.PENDING_APPROVAL:
        words = "Factory reset asked for: waiting for a second person to approve"
    elif command.status in (CommandStatus.QUEUED, CommandStatus.SENT):
        words = "Factory reset on its way to the device"
    elif command.status is CommandStatus.RECEIVED:
        words = "The device has the factory reset and is carrying it out"
    else:
        words = f"The factory reset {command.status.label}: {command.detail or 'send it again'}"
    returned = item.returned_at is not None
    reset_done = reset_at is not None
    if not handed and not reset_done:
        step = "The leaver hands over the PIN and account details, or a reset meeting is booked."
    elif not returned:
        step = "Scan the device in when the leaver gives it back."
    elif not reset_done:
        step = "The technician resets the device."
    else:
        step = ""
    return ItemState(
        item,
        handed,
        returned,
        reset_done,
        reset_at,
        words,
        command,
        returned and reset_done,
        step,
    )


def case_state(session: Session, case: LeaverCase, *, now: datetime | None = None) -> CaseState:
    """Every item's steps (reading reset commands in one query)."""
    now = now or utcnow()
    ids = [i.reset_command_id for i in case.items if i.reset_command_id is not None]
    found = (
        {c.id: c for c in session.scalars(select(Command).where(Command.id.in_(ids)))}
        if ids
        else {}
    )
    items = [
        _item_state(case, item, found.get(item.reset_command_id) if item.reset_command_id else None)
        for item in case.items
    ]
    return CaseState(case, items, local_today(case.school, now))


def _state_of(session: Session, case: LeaverCase, item_id: int, now: datetime) -> ItemState:
    item = _item(case, item_id)
    for state in case_state(session, case, now=now).items:
        if state.item is item:
            return state
    raise NotFound("No such item on this leaver case.")  # pragma: no cover - found above


# --- keeping a case up to date --------------------------------------------------------------


def _note_resets(session: Session, case: LeaverCase, now: datetime) -> int:
    """Record device-acknowledged resets on the case's items (joins the caller's transaction)."""
    noted = 0
    for state in case_state(session, case, now=now).devices:
        item = state.item
        if item.reset_at is None and state.reset_at is not None:
            item.reset_at = state.reset_at
            item.reset_source = ResetSource.DEVICE
            noted += 1
            _event(
                session, case, None, f"{_short(item)}: factory reset confirmed by the device", now
            )
            _trail(session, case, None, "reset_confirmed", now, item=item.id, source="device")
    if noted:
        _check_ready(session, case, now)
    return noted


def note_acknowledged_resets(session: Session, now: datetime) -> int:
    """The job: a reset the device acknowledged completes its item (joins the caller's work)."""
    # Matched by command id AND device id, so another device's acknowledgement never counts.
    case_ids = session.scalars(
        select(LeaverItem.case_id)
        .join(
            Command,
            and_(
                Command.id == LeaverItem.reset_command_id,
                Command.device_id == LeaverItem.device_id,
            ),
        )
        .where(
            LeaverItem.reset_at.is_(None),
            LeaverItem.settled_at.is_(None),
            Command.type == RESET,
            Command.status == CommandStatus.DONE,
        )
        .distinct()
    ).all()
    noted = 0
    for case_id in case_ids:
        case = session.scalar(
            select(LeaverCase).where(LeaverCase.id == case_id).options(WITH_ITEMS)
        )
        if case is not None:
            noted += _note_resets(session, case, now)
    return noted


def _check_ready(session: Session, case: LeaverCase, now: datetime) -> None:
    """Once nothing is left to do, the line manager and technician are asked to sign."""
    state = case_state(session, case, now=now)
    if not state.ready:
        case.ready_at = None
        return
    if case.ready_at is not None:
        return
    case.ready_at = now
    _event(session, case, None, "Everything is back and reset: ready for sign-off", now)
    waiting = [
        user
        for user, signed in (
            (case.line_manager, case.line_manager_signed_at),
            (case.technician, case.technician_signed_at),
            (case.leaver, case.leaver_signed_at),
        )
        if user is not None and signed is None
    ]
    if waiting:
        notify(
            session,
            school_id=case.school_id,
            users=waiting,
            kind="leaver_sign_off",
            title=f"{case.leaver_name}'s leaver case is ready for your sign-off",
            body="Every device is back and reset. Please check the case and sign it off.",
            link=f"/leavers/{case.id}",
            case_id=case.id,
            at=now,
        )


def _unsign_helpers(session: Session, case: LeaverCase, now: datetime, why: str) -> None:
    """A new item means the line manager and technician sign again for the whole list."""
    if case.line_manager_signed_at or case.technician_signed_at:
        case.line_manager_signed_at = None
        case.technician_signed_at = None
        _event(session, case, None, f"Sign-offs cleared: {why}", now)
    case.ready_at = None
