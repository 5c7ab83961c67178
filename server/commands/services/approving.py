"""Approving: a second, independent person lets waiting destructive commands go."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, literal, select, update
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.auth.services import check_independent_approver, check_stepped_up
from server.commands.models import Command, CommandStatus
from server.commands.services.budget import Waiting, check_release, lock_school
from server.commands.services.catalogue import TTL, announce
from server.commands.services.freezing import refuse_if_frozen
from server.db import expire_loaded, utcnow
from server.errors import Forbidden, NotFound, ValidationFailed

# What approving reads of each waiting command (`Waiting`).
_WAITING = (
    Command.id,
    Command.cmd_id,
    Command.type,
    Command.disruption,
    Command.approver_role,
    Command.requested_by_id,
)


def approve(
    session: Session,
    actor: User,
    *,
    stepped_up_at: datetime | None,
    command_id: int | None = None,
    batch_id: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """A second, independent person lets destructive commands go, having just proved their
    second factor again (`stepped_up_at`: a passkey or code checked minutes ago); the ids of
    the commands let go, in order."""
    now = now or utcnow()
    # The school before its commands: the same lock order as the freeze.
    lock_school(session, actor.school_id)
    waiting = [
        Command.school_id == actor.school_id,
        Command.status == CommandStatus.PENDING_APPROVAL,
    ]
    if command_id is not None:
        waiting.append(Command.id == command_id)
    elif batch_id is not None:
        waiting.append(Command.batch_id == batch_id)
    else:
        raise ValidationFailed("Say which command or batch to approve.")
    # Columns, not mapped rows: a whole-school batch is thousands, and the page asking only
    # says how many went (the API reads them again to show them).
    commands = session.execute(
        select(*_WAITING).where(*waiting).order_by(Command.id).with_for_update()
    ).all()
    if not commands:
        raise NotFound("Nothing is waiting for approval there.")
    check_stepped_up(stepped_up_at, now)
    for role in {c.approver_role for c in commands if c.approver_role is not None}:
        if actor.role is not role:
            raise Forbidden(
                f"Only the {role.label.lower()} can approve this: it was asked for beyond what "
                "one person may do in an hour."
            )
    # By id: a whole-school batch has one requester, and each relationship would load in turn.
    for requester_id in {c.requested_by_id for c in commands}:
        requester = None if requester_id is None else session.get(User, requester_id)
        check_independent_approver(session, actor, requester, now)
    _check_release(session, actor, commands, now)
    # One statement for the rows just locked, whatever their number: a row each would cost a
    # second a 10,000-device wipe, with the head waiting on the page.
    # Each type's full life from now: an expiry a long wait brought closer is moved to it.
    floors = {command.type: now + TTL[command.type] for command in commands}
    for command_type, life in floors.items():
        floor = literal(life, Command.expires_at.type)  # bound as the column stores it
        session.execute(
            update(Command)
            .where(*waiting, Command.type == command_type)
            .values(
                status=CommandStatus.QUEUED,
                approved_by_id=actor.id,
                approved_at=now,
                expires_at=case((Command.expires_at < floor, floor), else_=Command.expires_at),
            )
            .execution_options(synchronize_session=False)
        )
    announce(session)
    ids = [command.id for command in commands]
    expire_loaded(session, Command, ids)  # a caller holding some (the request that asked)
    record(
        session,
        actor=actor,
        action="command.approved",
        school_id=actor.school_id,
        target_type="batch" if batch_id else "command",
        target_id=batch_id or commands[0].cmd_id,
        details={"type": commands[0].type, "count": len(commands)},
    )
    session.commit()
    return ids


def _check_release(
    session: Session, actor: User, commands: Sequence[Waiting], now: datetime
) -> None:
    """Nothing destructive is let go while the school is frozen, nor past the approval budget."""
    refuse_if_frozen(session, actor.school_id, commands[0].type)
    check_release(session, actor.school_id, commands, now)
