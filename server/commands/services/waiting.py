"""What waits for a person in the commands domain: approvals they may give, and a freeze (or
its lifting) another person asked for; and telling approvers when a command starts waiting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.auth.services import can_approve_destructive, check_independent_approver
from server.commands.models import Command, CommandStatus, FleetFreeze, FreezeState
from server.commands.services.budget import _told
from server.commands.services.catalogue import label
from server.commands.services.freezing import MAY_FREEZE
from server.db import utcnow
from server.errors import Forbidden
from server.notifications.services import notify
from server.schools.services.clock import plural
from server.waiting import Waiting

KIND = "commands.approval_waiting"


def _may_approve(session: Session, user: User, requester: User | None, now: datetime) -> bool:
    try:
        check_independent_approver(session, user, requester, now)
    except Forbidden:
        return False
    return True


def approvals_for(session: Session, user: User, *, now: datetime | None = None) -> list[Waiting]:
    """Waiting commands `user` may approve (the independence rule), one line per batch."""
    if not can_approve_destructive(user.role):
        return []
    now = now or utcnow()
    group = func.coalesce(Command.batch_id, Command.cmd_id)
    rows = session.execute(
        select(
            Command.type,
            Command.requested_by_id,
            func.count(),
            func.min(Command.created_at),
        )
        .where(
            Command.school_id == user.school_id,
            Command.status == CommandStatus.PENDING_APPROVAL,
        )
        .group_by(group, Command.type, Command.requested_by_id)
        .order_by(func.min(Command.created_at))
    ).all()
    people = {
        u.id: u
        for u in session.scalars(
            select(User).where(User.id.in_({r[1] for r in rows if r[1] is not None}))
        )
    }
    found = []
    for command_type, requester_id, count, since in rows:
        requester = people.get(requester_id) if requester_id else None
        if not _may_approve(session, user, requester, now):
            continue
        who = requester.name if requester else "Trolley"
        found.append(
            Waiting(
                what=f"{label(command_type)} of {plural(count, 'device')}, asked by {who}",
                count=count,
                since=since,
                link="/commands",
            )
        )
    return found


def freeze_asks_for(session: Session, user: User) -> list[Waiting]:
    """A freeze, or its lifting, that someone else asked for and `user` may confirm."""
    if user.role not in MAY_FREEZE:
        return []
    found = session.scalar(
        select(FleetFreeze)
        .where(
            FleetFreeze.school_id == user.school_id,
            FleetFreeze.state.in_([FreezeState.ASKED, FreezeState.FROZEN]),
        )
        .order_by(FleetFreeze.id.desc())
        .limit(1)
    )
    if found is None:
        return []
    if found.state is FreezeState.ASKED and found.asked_by_id != user.id:
        what, since = "Freeze of destructive commands, asked for", found.asked_at
    elif found.lift_asked_at is not None and found.lift_asked_by_id != user.id:
        what, since = "Lifting the freeze on destructive commands, asked for", found.lift_asked_at
    else:
        return []
    return [Waiting(what=what, count=1, since=since, link="/commands/freeze")]


def waiting_for(session: Session, user: User) -> list[Waiting]:
    """Everything in the commands domain that waits for `user`."""
    return approvals_for(session, user) + freeze_asks_for(session, user)


def tell_approvers(
    session: Session, requester: User | None, commands: Sequence[Command], now: datetime
) -> None:
    """A destructive command started waiting: tell each person who may approve it (in the app
    with the details, by e-mail only that something waits; P-SEC-5). The headteacher has the
    budget's own alert about it already, so is not told twice."""
    told = {u.id for u in _told(session, commands[0].school_id)}
    approvers = [
        u
        for u in session.scalars(
            select(User)
            .where(User.school_id == commands[0].school_id, User.active.is_(True))
            .order_by(User.id)
        )
        if u.id not in told
        and can_approve_destructive(u.role)
        and _may_approve(session, u, requester, now)
    ]
    if not approvers:
        return
    what = label(commands[0].type)
    who = requester.name if requester else "Trolley"
    notify(
        session,
        school_id=commands[0].school_id,
        users=approvers,
        kind=KIND,
        title=f"Waiting for your approval: {what.lower()} of {plural(len(commands), 'device')}",
        body=(
            f"{who} asked for a {what.lower()} of {plural(len(commands), 'device')}. Nothing is "
            "sent until a second person approves it on the Commands page."
        ),
        link="/commands",
        at=now,
    )
