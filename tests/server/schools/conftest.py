"""A small school estate: a site, a building, two rooms, a trolley, a safe and a cupboard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location


@dataclass(frozen=True)
class Estate:
    site: Location
    building: Location
    year4: Location
    office: Location
    trolley: Location
    safe: Location
    cupboard: Location


@pytest.fixture
def estate(session: Session, school: School) -> Estate:
    def place(
        kind: LocationKind, name: str, parent: Location | None = None, capacity: int | None = None
    ) -> Location:
        return add_location(
            session,
            actor=None,
            school_id=school.id,
            kind=kind,
            name=name,
            parent=parent,
            capacity=capacity,
        )

    site = place(LocationKind.SITE, "Oakfield Road")
    building = place(LocationKind.BUILDING, "Main building", site)
    year4 = place(LocationKind.ROOM, "Year 4 classroom", building)
    office = place(LocationKind.ROOM, "School office", building)
    estate = Estate(
        site=site,
        building=building,
        year4=year4,
        office=office,
        trolley=place(LocationKind.TROLLEY, "Year 4 trolley", year4, 30),
        safe=place(LocationKind.SAFE, "Office safe", office, 4),
        cupboard=place(LocationKind.CUPBOARD, "Stock cupboard", office, 10),
    )
    session.commit()
    return estate


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def technician(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN)


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    return make_user(Role.ADMIN)
