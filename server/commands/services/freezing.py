"""The freeze: the headteacher (or two administrators) stops every destructive command at once.

While a school is frozen, wipes, locks, lost mode and factory resets are refused, and what was
waiting, queued or on its way is cancelled. Each device is sent a signed `freeze` command and
refuses destructive commands from then on, so one that was already in flight stops there too.
Lifting needs the headteacher and one more person, on two different accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from mqtt.messages import is_destructive
from server.activity.services import record
from server.auth.models import Role, User
from server.auth.services import check_independent_approver
from server.commands.models import Command, CommandStatus, FleetFreeze, FreezeState
from server.commands.services.budget import lock_school
from server.commands.services.catalogue import DESTRUCTIVE_TYPES, label, new_commands
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, Forbidden
from server.notifications.services import notify_roles
from server.schools.services.clock import when

# A request waits this long for its second person, then lapses.
ASK_STANDS = timedelta(hours=24)
MAY_FREEZE = frozenset({Role.HEADTEACHER, Role.ADMIN})
STOPPED = "Stopped: the school froze destructive commands"
HELD = "Held back: the school has frozen destructive commands"
_OPEN = (FreezeState.ASKED, FreezeState.FROZEN)
_UNFINISHED = (
    CommandStatus.PENDING_APPROVAL,
    CommandStatus.QUEUED,
    CommandStatus.SENT,
    CommandStatus.RECEIVED,
)


def current_freeze(session: Session, school_id: int) -> FleetFreeze | None:
    """The school's freeze in force or asked for, if any."""
    return session.scalar(
        select(FleetFreeze)
        .where(FleetFreeze.school_id == school_id, FleetFreeze.state.in_(_OPEN))
        .options(
            joinedload(FleetFreeze.asked_by),
            joinedload(FleetFreeze.frozen_by),
            joinedload(FleetFreeze.lift_asked_by),
        )
        .order_by(FleetFreeze.id.desc())
        .limit(1)
    )


def is_frozen(session: Session, school_id: int) -> bool:
    found = session.scalar(
        select(FleetFreeze.id).where(
            FleetFreeze.school_id == school_id, FleetFreeze.state == FreezeState.FROZEN
        )
    )
    return found is not None


def refuse_if_frozen(session: Session, school_id: int, command_type: str) -> None:
    if is_frozen(session, school_id):
        raise Conflict(
            f"{label(command_type)} is not possible now: the school has frozen destructive "
            "commands. The headteacher and one more person can lift the freeze on the "
            "Commands page.",
            code="fleet_frozen",
        )


def freeze_history(session: Session, school_id: int, *, limit: int = 10) -> Sequence[FleetFreeze]:
    """The school's freezes, newest first."""
    return session.scalars(
        select(FleetFreeze)
        .where(FleetFreeze.school_id == school_id)
        .options(
            joinedload(FleetFreeze.asked_by),
            joinedload(FleetFreeze.frozen_by),
            joinedload(FleetFreeze.lift_asked_by),
            joinedload(FleetFreeze.lifted_by),
        )
        .order_by(FleetFreeze.id.desc())
        .limit(limit)
    ).all()


def _open(session: Session, school_id: int, now: datetime) -> FleetFreeze | None:
    """The open freeze, once a request nobody confirmed in time has lapsed."""
    found = current_freeze(session, school_id)
    if found is None:
        return None
    if found.state is FreezeState.ASKED and found.asked_at < now - ASK_STANDS:
        found.state = FreezeState.LAPSED
        return None
    if found.lift_asked_at is not None and found.lift_asked_at < now - ASK_STANDS:
        found.lift_asked_by_id = found.lift_asked_at = None
    return found


def _require(actor: User) -> None:
    if actor.role not in MAY_FREEZE:
        raise Forbidden("Only the headteacher or an administrator can freeze or lift a freeze.")


def freeze(
    session: Session, actor: User, *, reason: str = "", now: datetime | None = None
) -> FleetFreeze:
    """The headteacher freezes at once; an administrator asks, and a second one confirms."""
    now = now or utcnow()
    _require(actor)
    lock_school(session, actor.school_id)
    found = _open(session, actor.school_id, now)
    if found is not None and found.state is FreezeState.FROZEN:
        raise Conflict("Destructive commands are already frozen for the school.")
    if found is not None and found.asked_by_id == actor.id:
        raise Conflict(
            "You have asked already: a second administrator, or the headteacher, must confirm."
        )
    if found is None:
        found = FleetFreeze(
            school_id=actor.school_id,
            state=FreezeState.ASKED,
            reason=reason.strip()[:500],
            asked_by_id=actor.id,
            asked_at=now,
        )
        session.add(found)
        session.flush()
        if actor.role is not Role.HEADTEACHER:
            _trail(session, actor, found, "command.freeze_asked")
            _tell(
                session,
                actor.school_id,
                "Asked: freeze destructive commands",
                f"{_who(actor)} asked to freeze every wipe, lock, lost mode and factory reset "
                "in the school. A second administrator, or the headteacher, must confirm it on "
                "the freeze page before it takes effect.",
            )
            session.commit()
            return found
    found.state = FreezeState.FROZEN
    found.frozen_by_id = actor.id
    found.frozen_at = now
    stopped = _stop_destructive(session, actor, now)
    sent = _tell_devices(session, actor, enabled=True, now=now)
    _trail(session, actor, found, "command.frozen", stopped=stopped, devices=sent)
    _tell(
        session,
        actor.school_id,
        "Destructive commands are frozen",
        f"{_who(actor)} froze every wipe, lock, lost mode and factory reset in the school at "
        f"{when(now, actor.school)}. {stopped} waiting or unfinished command(s) were stopped, "
        "and each device refuses them from now on. Lifting the freeze needs the headteacher "
        "and one more person.",
    )
    session.commit()
    return found


def lift_freeze(session: Session, actor: User, *, now: datetime | None = None) -> FleetFreeze:
    """One person asks to lift the freeze, a second (different) confirms; one is the head."""
    now = now or utcnow()
    _require(actor)
    lock_school(session, actor.school_id)
    found = _open(session, actor.school_id, now)
    if found is None or found.state is not FreezeState.FROZEN:
        raise Conflict("Nothing is frozen, so there is nothing to lift.")
    asked = session.get(User, found.lift_asked_by_id) if found.lift_asked_by_id else None
    if asked is None:
        found.lift_asked_by_id = actor.id
        found.lift_asked_at = now
        _trail(session, actor, found, "command.freeze_lift_asked")
        _tell(
            session,
            actor.school_id,
            "Asked: lift the freeze on destructive commands",
            f"{_who(actor)} asked to lift the freeze. It stays in force until "
            + (
                "one more person confirms"
                if actor.role is Role.HEADTEACHER
                else "the headteacher confirms"
            )
            + " on the freeze page.",
        )
        session.commit()
        return found
    if asked.id == actor.id:
        raise Conflict("You have asked already: someone else must confirm lifting the freeze.")
    if Role.HEADTEACHER not in {asked.role, actor.role}:
        raise Forbidden(
            "Lifting the freeze needs the headteacher: they must ask for it or confirm it."
        )
    # As independent as any approver of a reset: an administrator cannot lift it with an
    # account they have just made a headteacher (nor a head with one they made).
    check_independent_approver(session, actor, asked, now)
    found.state = FreezeState.LIFTED
    found.lifted_by_id = actor.id
    found.lifted_at = now
    sent = _tell_devices(session, actor, enabled=False, now=now)
    _trail(session, actor, found, "command.freeze_lifted", devices=sent)
    _tell(
        session,
        actor.school_id,
        "The freeze on destructive commands is lifted",
        f"{_who(asked)} and {_who(actor)} lifted the freeze at {when(now, actor.school)}. "
        "Wipes, locks, lost mode and factory resets can be asked for again, within the usual "
        "limits.",
    )
    session.commit()
    return found


def _stop_destructive(session: Session, actor: User, now: datetime) -> int:
    """Cancel what waits, is queued or is on its way; each device's timeline says why."""
    candidates = session.scalars(
        select(Command)
        .where(
            Command.school_id == actor.school_id,
            Command.status.in_(_UNFINISHED),
            Command.type.in_(DESTRUCTIVE_TYPES),
        )
        .options(joinedload(Command.device))
        .order_by(Command.id)  # the lock order the ack recorder uses
        .with_for_update(of=Command)
    ).all()
    stopped = [c for c in candidates if is_destructive(c.type, c.args)]
    for command in stopped:
        command.status = CommandStatus.CANCELLED
        command.finished_at = now
        command.detail = STOPPED
        add_event(
            session,
            command.device,
            kind="command",
            summary=f"{label(command.type)} stopped: the school froze destructive commands",
            actor=actor,
            details={"cmd_id": command.cmd_id},
        )
    return len(stopped)


def _tell_devices(session: Session, actor: User, *, enabled: bool, now: datetime) -> int:
    """A signed freeze (or its lifting) for every enrolled device, sent like any command."""
    devices = session.scalars(
        select(Device)
        .join(
            DeviceIdentity,
            (DeviceIdentity.device_id == Device.id) & DeviceIdentity.revoked_at.is_(None),
        )
        .where(Device.school_id == actor.school_id, Device.status != DeviceStatus.DISPOSED)
        .order_by(Device.id)
    ).all()
    if not devices:
        return 0
    new_commands(
        session,
        actor,
        devices,
        "freeze",
        {"enabled": enabled},
        status=CommandStatus.QUEUED,
        now=now,
        reason="The school froze destructive commands" if enabled else "The freeze was lifted",
    )
    summary = "Freeze sent to the device" if enabled else "Lifting of the freeze sent to the device"
    for device in devices:
        add_event(session, device, kind="command", summary=summary, actor=actor)
    return len(devices)


def _who(user: User) -> str:
    return f"{user.name} ({user.role.label.lower()})"


def _trail(session: Session, actor: User, found: FleetFreeze, action: str, **details: int) -> None:
    record(
        session,
        actor=actor,
        action=action,
        school_id=actor.school_id,
        target_type="freeze",
        target_id=found.id,
        details={"reason": found.reason, **details},
    )


def _tell(session: Session, school_id: int, title: str, body: str) -> None:
    """The headteacher, the administrators and the technicians (whose commands stop)."""
    notify_roles(
        session,
        school_id=school_id,
        roles=[Role.HEADTEACHER, Role.ADMIN, Role.TECHNICIAN],
        kind="commands.freeze",
        title=title,
        body=body,
        link="/commands/freeze",
    )
