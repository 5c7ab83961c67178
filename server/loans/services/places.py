"""Trolleys, safes and cupboards: codes scanned at them and how many of their devices are out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, case, exists, func, insert, select, true, update
from sqlalchemy.orm import Session, contains_eager, joinedload

from provisioning.errors import LabelCodeError
from provisioning.payload import parse_label_url, parse_place_url
from server.commands.models import Command
from server.devices.models import Device, DeviceStatus
from server.devices.services import find_by_tag
from server.errors import NotFound, TrolleyError, ValidationFailed
from server.labels.services import place_code
from server.loans.models import ItemState, Loan, LoanItem, LoanKind, Scan
from server.loans.pages import TrolleyRow
from server.loans.services.common import LOANABLE, MAX_ID
from server.schools.models import STORAGE_KINDS, Location, School

MAX_BATCH = 200


def _check_storage(place: Location) -> None:
    if place.kind not in STORAGE_KINDS:
        raise ValidationFailed(
            f"{place.name} is a {place.kind.value}; choose a trolley, safe or cupboard."
        )


def get_trolley(session: Session, school_id: int, location_id: int) -> Location:
    """A trolley, safe or cupboard in the school (devices go out of and back into these)."""
    if not 1 <= location_id <= MAX_ID:
        raise NotFound("No such trolley in your school.")
    place = session.scalar(
        select(Location).where(Location.id == location_id, Location.school_id == school_id)
    )
    if place is None:
        raise NotFound("No such trolley in your school.")
    _check_storage(place)
    return place


def storage_places(session: Session, school_id: int) -> Sequence[Location]:
    return session.scalars(
        select(Location)
        .where(Location.school_id == school_id, Location.kind.in_(list(STORAGE_KINDS)))
        .order_by(Location.name)
    ).all()


def resolve_code(
    session: Session, school_id: int, code: str, base_url: str, *, lock: bool = False
) -> Device:
    """The device a scanned label or typed tag names; refuses anything else, recording nothing."""
    # `lock` holds the device's row until commit (PostgreSQL), so what is read next is current.
    try:
        tag = parse_label_url(code, base_url)
    except LabelCodeError as exc:
        place_id = parse_place_url(code, base_url)
        if place_id is not None:
            raise _place_label(session, school_id, place_id) from exc
        raise ValidationFailed(
            f"That is not a Trolley label: {exc}. Nothing was recorded.", code="bad_code"
        ) from exc
    device = find_by_tag(session, school_id, tag, lock=lock)
    if device is None:
        raise NotFound(
            f"No device {tag} in your school's register. Nothing was recorded.",
            code="unknown_device",
        )
    return device


def _place_label(session: Session, school_id: int, place_id: int) -> TrolleyError:
    """The refusal for a place's label scanned where a device's was expected."""
    place = (
        session.scalar(
            select(Location).where(Location.id == place_id, Location.school_id == school_id)
        )
        if place_id <= MAX_ID
        else None
    )
    if place is None:
        return NotFound(
            "That is the label of a place that is not in your school. Nothing was recorded.",
            code="unknown_place",
        )
    hint = (
        "scan it on the scan page to choose it as the trolley"
        if place.is_storage
        else "devices go into a trolley, safe or cupboard"
    )
    return ValidationFailed(
        f"That is the label of {place.name}, not of a device: {hint}. Nothing was recorded.",
        code="place_label",
        details={"location_id": place.id, "name": place.name},
    )


def own_trolley(
    session: Session, school_id: int, device: Device, mode: str
) -> tuple[Location, Counts]:
    """Where a device goes when no trolley is chosen: out of where it is, back into its home."""
    # The same one query as a chosen trolley's, for its place then its home: no slower a scan.
    ids = [device.home_location_id]
    if mode == "out":
        ids.insert(0, device.current_location_id)
    for place_id in ids:
        found = _place_and_counts(session, school_id, place_id) if place_id else None
        if found is not None and found[0].is_storage:
            return found
    problem, action = (
        ("has no home trolley", "put it back")
        if mode == "in"
        else ("is not recorded in a trolley", "take it out")
    )
    raise ValidationFailed(
        f"{device.asset_tag} {problem}: scan the trolley's label, or choose the trolley, "
        f"to {action}. Nothing was recorded.",
        code="no_trolley",
    )


def home_trolley(device: Device) -> Location | None:
    """The trolley, safe or cupboard a device lives in, if it has one."""
    home = device.home_location
    return home if home is not None and home.is_storage else None


def taken_from(device: Device) -> Location | None:
    """The trolley a device comes out of: the one it is in, else the one it lives in."""
    return next(
        (p for p in (device.current_location, device.home_location) if p and p.is_storage), None
    )


def _resolve_many(
    session: Session, school_id: int, codes: Sequence[str], base_url: str
) -> list[Device]:
    """Every code must name a device in the school, or nothing happens at all."""
    if len(codes) > MAX_BATCH:
        raise ValidationFailed(f"Send at most {MAX_BATCH} devices at a time.")
    devices: dict[int, Device] = {}
    problems = []
    for code in codes:
        try:
            device = resolve_code(session, school_id, code, base_url)
        except (ValidationFailed, NotFound) as exc:
            problems.append({"field": "asset_tags", "message": exc.message})
            continue
        devices.setdefault(device.id, device)
    if problems:
        raise ValidationFailed(
            "Some codes are not devices in your school; nothing was recorded.", details=problems
        )
    return list(devices.values())


@dataclass(frozen=True)
class Counts:
    """How a trolley stands: of the devices that live in it, how many are out, how many in."""

    trolley_id: int
    trolley: str
    out: int
    total: int
    here: int

    @property
    def text(self) -> str:
        return f"{self.out} of {self.total} out"

    def moved(self, home_id: int | None, before: Where, after: Where) -> Counts:
        """The counts after one of this trolley's devices changed holder or place."""
        if home_id != self.trolley_id:
            return self
        return replace(
            self,
            out=self.out + (after[0] is not None) - (before[0] is not None),
            here=self.here + (after[1] == self.trolley_id) - (before[1] == self.trolley_id),
        )


# A device's (holder id, current location id).
Where = tuple[int | None, int | None]


def _count_columns(trolley_id: Any) -> Any:
    return select(
        func.count().label("total"),
        func.count(Device.holder_id).label("out"),
        func.coalesce(
            func.sum(case((Device.current_location_id == trolley_id, 1), else_=0)), 0
        ).label("here"),
    ).where(
        Device.home_location_id == trolley_id,
        Device.status != DeviceStatus.DISPOSED,
    )


def trolley_counts(session: Session, school_id: int, trolley: Location) -> Counts:
    total, out, here = session.execute(
        _count_columns(trolley.id).where(Device.school_id == school_id)
    ).one()
    return Counts(trolley.id, trolley.name, int(out), int(total), int(here))


def _scan_statements() -> dict[str, Any]:
    """The statements every scan runs, built once: building SQL costs more than running it."""
    numbers = (
        _count_columns(bindparam("trolley_id"))
        .where(Device.school_id == bindparam("school_id"))
        .subquery()
    )
    return {
        "trolley": select(Location, numbers.c.total, numbers.c.out, numbers.c.here)
        .join_from(Location, numbers, true())
        .where(
            Location.id == bindparam("trolley_id"), Location.school_id == bindparam("school_id")
        ),
        "claim": update(Device)
        .where(
            Device.id == bindparam("device"),
            Device.holder_id.is_(None),
            Device.status.in_(LOANABLE),
        )
        .values(
            holder_id=bindparam("holder"), current_location_id=None, updated_at=bindparam("now")
        )
        .execution_options(synchronize_session=False),
        "put_back": update(Device)
        .where(Device.id == bindparam("device"))
        .values(
            holder_id=None, current_location_id=bindparam("place"), updated_at=bindparam("now")
        ),
        "last_return": select(
            LoanItem.returned_at, LoanItem.wipe_note, Command.status, LoanItem.wipe_outstanding
        )
        .outerjoin(Command, Command.id == LoanItem.wipe_command_id)
        .where(LoanItem.device_id == bindparam("device"), LoanItem.state == ItemState.RETURNED)
        .order_by(LoanItem.out_at.desc())
        .limit(1),
        "open_item": select(LoanItem)
        .where(LoanItem.device_id == bindparam("device"), LoanItem.state == ItemState.OUT)
        .options(joinedload(LoanItem.loan)),
        # A return holds its loan until commit: a take-out adding to that loan at the same
        # instant either lands first (and the loan stays open) or sees it closed.
        "open_item_locked": select(LoanItem)
        .join(LoanItem.loan)
        .where(LoanItem.device_id == bindparam("device"), LoanItem.state == ItemState.OUT)
        .options(contains_eager(LoanItem.loan))
        .with_for_update(of=Loan)
        .execution_options(populate_existing=True),
        "new_item": insert(LoanItem).returning(LoanItem.id),
        "new_scan": insert(Scan),
        "close_loan": update(Loan)
        .where(
            Loan.id == bindparam("loan"),
            Loan.closed_at.is_(None),
            ~exists().where(LoanItem.loan_id == bindparam("loan"), LoanItem.state == ItemState.OUT),
        )
        .values(closed_at=bindparam("now")),
    }


_SQL = _scan_statements()


def _todays_loan(with_label: bool) -> Any:
    """The latest open lesson loan of a teacher at a trolley, with its school (for its clock)."""
    # Held until commit (PostgreSQL): a return closing it at the same instant either waits for
    # the new item or closes first, and then this finds no open loan and a new one is made.
    mine = [
        Loan.school_id == bindparam("school_id"),
        Loan.teacher_id == bindparam("teacher"),
        Loan.closed_at.is_(None),
        Loan.kind == LoanKind.LESSON,
        Loan.trolley_id == bindparam("trolley"),
    ]
    if with_label:
        mine.append(Loan.class_label == bindparam("label"))
    return (
        select(School, Loan)
        .join_from(Loan, School, School.id == Loan.school_id)
        .where(*mine)
        .order_by(Loan.id.desc())
        .limit(1)
        .with_for_update(of=Loan)
    )


_TODAYS_LOAN = {True: _todays_loan(True), False: _todays_loan(False)}


def _trolley_and_counts(
    session: Session, school_id: int, trolley_id: int
) -> tuple[Location, Counts]:
    """The trolley and how it stands, in one query (a scan adjusts the counts itself)."""
    found = _place_and_counts(session, school_id, trolley_id) if trolley_id <= MAX_ID else None
    if found is None:
        raise NotFound("No such trolley in your school.")
    _check_storage(found[0])
    return found


def _place_and_counts(
    session: Session, school_id: int, place_id: int
) -> tuple[Location, Counts] | None:
    """A place of the school and how its devices stand, in one query; None if there is none."""
    if place_id < 1:
        return None
    row = session.execute(_SQL["trolley"], {"trolley_id": place_id, "school_id": school_id}).first()
    if row is None:
        return None
    place = row[0]
    return place, Counts(place.id, place.name, int(row.out), int(row.total), int(row.here))


def trolley_overview(session: Session, school_id: int) -> list[TrolleyRow]:
    """Every trolley, safe and cupboard with its devices out and in (one grouped query)."""
    places = storage_places(session, school_id)
    rows = session.execute(
        select(
            Device.home_location_id,
            func.count(),
            func.count(Device.holder_id),
            func.coalesce(
                func.sum(case((Device.current_location_id == Device.home_location_id, 1), else_=0)),
                0,
            ),
        )
        .where(
            Device.school_id == school_id,
            Device.home_location_id.in_([p.id for p in places]),
            Device.status != DeviceStatus.DISPOSED,
        )
        .group_by(Device.home_location_id)
    ).all()
    numbers = {row[0]: (int(row[2]), int(row[1]), int(row[3])) for row in rows}
    return [
        TrolleyRow(p.id, p.name, p.kind.value, place_code(p), *numbers.get(p.id, (0, 0, 0)))
        for p in places
    ]
