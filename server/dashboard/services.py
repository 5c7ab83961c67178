"""What each role's home page shows, gathered in a few grouped queries."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.auth.services import role_changes_waiting_for
from server.commands import services as commands
from server.devices.models import Device, DeviceStatus
from server.devices.services import counts_by_status, moves_waiting_for
from server.leavers.services import sign_offs_waiting_for
from server.loans.services import home_loans_waiting_for
from server.profiles.services import exceptions_waiting_for
from server.schools.models import STORAGE_KINDS, Location
from server.schools.services import storage_counts
from server.waiting import Waiting, WaitingSource


@dataclass
class Card:
    title: str
    lines: list[str] = field(default_factory=list)
    link: str | None = None
    link_text: str | None = None
    empty: str | None = None


@dataclass
class StorageRow:
    name: str
    kind: str
    capacity: int | None
    home: int
    here: int


@dataclass
class HomeData:
    status_counts: dict[DeviceStatus, int]
    storage: list[StorageRow]
    my_devices: list[Device]
    total_devices: int


def home_data(session: Session, user: User) -> HomeData:
    school_id = user.school_id
    counts = counts_by_status(session, school_id)
    places = session.scalars(
        select(Location)
        .where(Location.school_id == school_id, Location.kind.in_(list(STORAGE_KINDS)))
        .order_by(Location.name)
    ).all()
    per_place = storage_counts(session, school_id)
    storage = [
        StorageRow(
            p.name,
            p.kind.value,
            p.capacity,
            per_place.get(p.id, (0, 0))[0],
            per_place.get(p.id, (0, 0))[1],
        )
        for p in places
    ]
    mine = list(
        session.scalars(
            select(Device)
            .where(Device.school_id == school_id, Device.holder_id == user.id)
            .limit(50)
        )
    )
    total = session.scalar(
        select(func.count()).select_from(Device).where(Device.school_id == school_id)
    )
    return HomeData(counts, storage, mine, total or 0)


ROLE_INTRO = {
    Role.TEACHER: "Take devices out of a trolley for a lesson and put them back afterwards.",
    Role.COMPUTING_LEAD: "Keep trolleys complete, run the termly check and look after profiles.",
    Role.SBM: "Keep the asset register, approve moves and disposals.",
    Role.HEADTEACHER: "See losses and data-protection decisions that need you.",
    Role.TECHNICIAN: "Enrol devices, send commands and reset devices for leavers.",
    Role.GOVERNOR: "Read summary reports about the school's devices.",
    Role.ADMIN: "Manage who can log in and what each role may do.",
}


# Every domain's own answer to "what waits for this person?", each with its own rule.
SOURCES: tuple[WaitingSource, ...] = (
    commands.waiting_for,
    moves_waiting_for,
    exceptions_waiting_for,
    home_loans_waiting_for,
    role_changes_waiting_for,
    sign_offs_waiting_for,
)


def waiting_for(session: Session, user: User) -> list[Waiting]:
    """Every decision `user` can make now, oldest first: the home panel and the nav count."""
    found = [waiting for source in SOURCES for waiting in source(session, user)]
    return sorted(found, key=lambda w: w.since)
