"""The fleet-disruption budget: how many devices one person, and one school, may take out of use
or wipe before a second person must agree, and past which Trolley refuses (P-SEC-1).

In 2024 one intruder in a school MDM wiped about 13,000 pupils' devices. Here every lock, lost
mode, photo wipe by hand and factory reset is counted per person and per school over the last
hour and the last day, pending requests included, so splitting a batch does not escape it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, case, false, func, select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import Role, User
from server.commands.models import Command, Disruption
from server.commands.services.catalogue import label
from server.devices.models import Device, DeviceStatus
from server.errors import RateLimited
from server.notifications.services import notify
from server.schools.models import School
from server.schools.services.clock import when

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class Scope(enum.StrEnum):
    PERSON = "person"
    SCHOOL = "school"


class WholeFleet(enum.StrEnum):
    """How a budget treats the school's own size."""

    # A device needs locking (or resetting) once: more in a day than the school has is refused.
    CAPS = "caps"
    # Wiping every device's photos by hand is a normal end of term: such a request may always
    # wait for a second person, however large the school.
    MAY_WAIT = "may_wait"


@dataclass(frozen=True)
class Limit:
    """Within `window`, up to `alone` need nobody else; more waits; past `refused_over`, refused."""

    scope: Scope
    window: timedelta
    alone: int
    refused_over: int

    @property
    def period(self) -> str:
        per = "an hour" if self.window == HOUR else "a day"
        return f"{per} for one person" if self.scope is Scope.PERSON else f"{per} for the school"

    @property
    def words(self) -> str:
        return f"{self.alone} {self.period}"


@dataclass(frozen=True)
class Budget:
    limits: tuple[Limit, ...]
    whole_fleet: WholeFleet
    approvals_per_hour: int | None = None  # per school, however many people approve


def _limits(
    person_hour: tuple[int, int],
    person_day: tuple[int, int],
    school_hour: tuple[int, int],
    school_day: tuple[int, int],
) -> tuple[Limit, ...]:
    return (
        Limit(Scope.PERSON, HOUR, *person_hour),
        Limit(Scope.PERSON, DAY, *person_day),
        Limit(Scope.SCHOOL, HOUR, *school_hour),
        Limit(Scope.SCHOOL, DAY, *school_day),
    )


# The one table of figures (documented in the README's Security section). Each pair is
# (alone, refused over): refusal starts at ten times what one may do alone.
BUDGETS: dict[Disruption, Budget] = {
    Disruption.OUT_OF_USE: Budget(_limits((3, 30), (10, 100), (5, 50), (10, 100)), WholeFleet.CAPS),
    Disruption.PHOTO_WIPE: Budget(
        _limits((10, 100), (30, 300), (30, 300), (60, 600)), WholeFleet.MAY_WAIT
    ),
    # Every factory reset already waits for a second person; these only bound the total.
    Disruption.FACTORY_RESET: Budget(
        _limits((0, 10), (0, 20), (0, 20), (0, 50)), WholeFleet.CAPS, approvals_per_hour=20
    ),
}


class Verdict(enum.StrEnum):
    ALONE = "alone"
    WAITS = "waits"
    REFUSED = "refused"


@dataclass(frozen=True)
class Decision:
    """What the budget says about one request, and which figure decided it."""

    verdict: Verdict
    reached: str = ""  # the figure in words, e.g. "3 an hour for one person" ("" if none alone)
    so_far: int = 0  # already asked for within that figure's window


@dataclass(frozen=True)
class Escalation:
    """A caller's own figure was passed: the request waits for someone in `role` alone."""

    role: Role
    reached: str  # the figure in words, e.g. "3 loss reports an hour for one person"
    so_far: int


def lock_school(session: Session, school_id: int) -> None:
    """Serialise budget decisions and freezes per school, until the transaction ends."""
    # Parallel small batches must not all see the same count. PostgreSQL locks the school's
    # row; SQLite writers already hold the database's write lock from their first statement.
    session.execute(select(School.id).where(School.id == school_id).with_for_update())


def weigh(
    session: Session,
    actor: User | None,
    school_id: int,
    costs: Disruption,
    adding: int,
    now: datetime,
) -> Decision:
    """Whether `adding` more such commands may go alone, must wait, or are refused."""
    # Call with the school locked, and add the new rows in the same transaction.
    budget = BUDGETS[costs]
    mine = Command.requested_by_id == actor.id if actor is not None else false()

    def within(limit: Limit) -> ColumnElement[bool]:
        recent = Command.created_at >= now - limit.window
        return recent & mine if limit.scope is Scope.PERSON else recent

    # One query for every figure: each is a conditional count over the longest window.
    counts = session.execute(
        select(
            *(
                func.coalesce(func.sum(case((within(limit), 1), else_=0)), 0)
                for limit in budget.limits
            )
        ).where(
            Command.school_id == school_id,
            Command.disruption == costs,
            Command.created_at >= now - max(limit.window for limit in budget.limits),
        )
    ).one()
    used = dict(zip(budget.limits, (int(n) for n in counts), strict=True))
    # Nobody in person: only the school's figures apply.
    limits = [limit for limit in budget.limits if actor is not None or limit.scope is Scope.SCHOOL]
    fleet: int | None = None
    for limit in limits:
        ceiling = limit.refused_over
        if budget.whole_fleet is WholeFleet.MAY_WAIT and used[limit] + adding > ceiling:
            fleet = _fleet_size(session, school_id) if fleet is None else fleet
            ceiling = max(ceiling, fleet)
        if used[limit] + adding > ceiling:
            return Decision(Verdict.REFUSED, f"more than {ceiling} {limit.period}", used[limit])
    if budget.whole_fleet is WholeFleet.CAPS:
        school_day = next(
            limit for limit in budget.limits if limit.scope is Scope.SCHOOL and limit.window == DAY
        )
        fleet = _fleet_size(session, school_id)
        if used[school_day] + adding > fleet:
            return Decision(
                Verdict.REFUSED,
                f"more than the school's {fleet} device(s) in a day",
                used[school_day],
            )
    for limit in limits:
        if used[limit] + adding > limit.alone:
            return Decision(Verdict.WAITS, limit.words if limit.alone else "", used[limit])
    return Decision(Verdict.ALONE)


def _fleet_size(session: Session, school_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Device)
            .where(Device.school_id == school_id, Device.status != DeviceStatus.DISPOSED)
        )
        or 0
    )


class Waiting(Protocol):
    """A command waiting for approval, as far as its release is judged."""

    @property
    def type(self) -> str: ...
    @property
    def disruption(self) -> Disruption | None: ...


def check_release(
    session: Session, school_id: int, commands: Sequence[Waiting], now: datetime
) -> None:
    """Approving is budgeted too: at most so many factory resets let go per school per hour."""
    costs = commands[0].disruption if commands else None
    budget = BUDGETS.get(costs) if costs is not None else None
    if budget is None or budget.approvals_per_hour is None:
        return
    most = budget.approvals_per_hour
    recent = (
        session.scalar(
            select(func.count())
            .select_from(Command)
            .where(
                Command.school_id == school_id,
                Command.disruption == costs,
                Command.approved_by_id.is_not(None),
                Command.approved_at >= now - HOUR,
            )
        )
        or 0
    )
    if recent + len(commands) > most:
        raise RateLimited(
            f"At most {most} {label(commands[0].type).lower()} commands may be approved per hour "
            f"in one school; {recent} already have been. Try again later or ask for help."
        )


def alert(
    session: Session,
    actor: User | None,
    school_id: int,
    command_type: str,
    count: int,
    decision: Decision,
    now: datetime,
) -> None:
    """Tell the headteacher at once, in the app and by e-mail, and write the activity trail."""
    # Who, what and how many only: the request's reason, a lost-mode message and device names
    # stay in Trolley (P-SEC-5).
    who = f"{actor.name} ({actor.role.label.lower()})" if actor else "Trolley itself"
    what = f"{label(command_type).lower()} on {count} device(s)"
    school = session.get(School, school_id)
    assert school is not None  # the caller's devices are in it
    if decision.verdict is Verdict.REFUSED:
        title = f"Refused: {who} asked for {what}"
        outcome = (
            f"That is {decision.reached} ({decision.so_far} already asked for), so Trolley "
            "refused it and nothing was sent."
        )
        link = "/commands/freeze"
    else:
        title = f"Waiting for a second person: {who} asked for {what}"
        outcome = (
            f"That is more than {decision.reached} ({decision.so_far} already asked for), so "
            if decision.reached
            else "Every one needs a second person, so "
        ) + "nothing is sent until someone else approves it on the Commands page."
        link = "/commands"
    body = (
        f"{who} asked Trolley for {what} at {when(now, school)}. {outcome} "
        "If you did not expect this, freeze destructive commands at once and have that "
        "account's password changed."
    )
    notify(
        session,
        school_id=school_id,
        users=_told(session, school_id),
        kind="commands.budget",
        title=title[:200],
        body=body,
        link=link,
    )
    record(
        session,
        actor=actor,
        action="command.budget_reached",
        school_id=school_id,
        target_type="school",
        target_id=school_id,
        details={
            "type": command_type,
            "count": count,
            "verdict": decision.verdict.value,
            "reached": decision.reached,
            "so_far": decision.so_far,
        },
    )


def _told(session: Session, school_id: int) -> list[User]:
    """The headteacher; with no headteacher account, the administrators, so nobody goes untold."""
    people = list(
        session.scalars(
            select(User)
            .where(
                User.school_id == school_id,
                User.active.is_(True),
                User.role.in_([Role.HEADTEACHER, Role.ADMIN]),
            )
            .order_by(User.id)
        )
    )
    heads = [user for user in people if user.role is Role.HEADTEACHER]
    return heads or people
