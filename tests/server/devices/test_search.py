"""Finding devices: text search, every filter, disposed devices, sorting, paging and counting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices import services
from server.devices.models import Device, DeviceStatus, Platform
from server.devices.services import register
from server.errors import ValidationFailed
from server.schools.models import Location, School

TODAY = date(2026, 3, 2)


def tags(page: services.DevicePage) -> list[str]:
    return [d.asset_tag for d in page.items]


@pytest.fixture
def fleet(
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> dict[str, Device]:
    holder = make_user(Role.TEACHER)
    holder.name = "Amira Khan"
    session.commit()
    return {
        "ipad": make_device(
            asset_tag="OAK-IPAD-001",
            serial="DMPXK2ABCDEF",
            model="iPad (10th generation)",
            home=trolley,
            warranty_until=TODAY + timedelta(days=10),
        ),
        "mini": make_device(
            asset_tag="OAK-MINI-01",
            serial="H7K2LQ9WXT",
            model="iPad mini (6th generation)",
            home=safe,
            warranty_until=TODAY + timedelta(days=100),
            holder_id=holder.id,
        ),
        "chromebook": make_device(
            asset_tag="OAK-CB-001",
            serial="PF2ABCDE",
            platform=Platform.CHROMEOS,
            make="Lenovo",
            model="300e Chromebook Gen 3",
            home=trolley,
            warranty_until=TODAY - timedelta(days=1),
            status=DeviceStatus.IN_REPAIR,
        ),
        "old": make_device(
            asset_tag="OAK-OLD-001",
            serial="DMPXK2OLDOLD",
            model="iPad (6th generation)",
            status=DeviceStatus.DISPOSED,
            warranty_until=TODAY + timedelta(days=5),
        ),
    }


def find(session: Session, school: School, **filters: object) -> list[str]:
    return tags(services.search_devices(session, school.id, today=TODAY, **filters))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("oak-ipad", ["OAK-IPAD-001"]),  # part of a tag, any case
        ("ipad-001", ["OAK-IPAD-001"]),
        ("h7k2", ["OAK-MINI-01"]),  # part of a serial
        ("CHROMEBOOK", ["OAK-CB-001"]),  # part of a model
        ("mini (6th", ["OAK-MINI-01"]),
        ("amira", ["OAK-MINI-01"]),  # the person who has it
        ("khan", ["OAK-MINI-01"]),
        ("  ipad  ", ["OAK-IPAD-001", "OAK-MINI-01"]),
        ("50%", []),  # wildcards are ordinary characters
        ("_", []),
        ("nothing like it", []),
    ],
)
def test_text_search(
    session: Session, school: School, fleet: dict[str, Device], q: str, expected: list[str]
) -> None:
    """P-REG-1 / P-REG-3: find a device by tag, serial, model or who has it."""
    assert find(session, school, q=q) == expected


def test_each_filter(
    session: Session, school: School, fleet: dict[str, Device], trolley: Location, safe: Location
) -> None:
    """P-REG-3: where is it, what state is it in, and whose warranty runs out soon."""
    assert find(session, school, platform=Platform.CHROMEOS) == ["OAK-CB-001"]
    assert find(session, school, platform=Platform.LINUX) == []
    assert find(session, school, status=DeviceStatus.IN_REPAIR) == ["OAK-CB-001"]
    assert find(session, school, home_location_id=trolley.id) == ["OAK-CB-001", "OAK-IPAD-001"]
    assert find(session, school, home_location_id=safe.id) == ["OAK-MINI-01"]
    assert find(session, school, current_location_id=safe.id) == ["OAK-MINI-01"]
    # Within N days from today, counting today; expired warranties are not "ending soon".
    assert find(session, school, warranty_within_days=10) == ["OAK-IPAD-001"]
    assert find(session, school, warranty_within_days=9) == []
    assert find(session, school, warranty_within_days=100) == ["OAK-IPAD-001", "OAK-MINI-01"]
    # Filters combine.
    assert find(session, school, q="ipad", home_location_id=trolley.id) == ["OAK-IPAD-001"]
    assert find(session, school, q="ipad", platform=Platform.CHROMEOS) == []


def test_disposed_devices_leave_the_list_but_can_be_found(
    session: Session, school: School, fleet: dict[str, Device]
) -> None:
    """P-DISPOSE-1: disposed devices are out of the live register, never out of reach."""
    assert "OAK-OLD-001" not in find(session, school)
    assert find(session, school, q="old") == []
    assert find(session, school, q="old", include_disposed=True) == ["OAK-OLD-001"]
    assert find(session, school, status=DeviceStatus.DISPOSED) == ["OAK-OLD-001"]
    assert len(find(session, school, include_disposed=True)) == 4
    assert find(session, school, warranty_within_days=5, include_disposed=True) == ["OAK-OLD-001"]


@pytest.mark.parametrize(
    ("sort", "ascending"),
    [
        ("asset_tag", ["OAK-CB-001", "OAK-IPAD-001", "OAK-MINI-01"]),
        ("serial", ["OAK-IPAD-001", "OAK-MINI-01", "OAK-CB-001"]),
        ("model", ["OAK-CB-001", "OAK-IPAD-001", "OAK-MINI-01"]),
        ("status", ["OAK-CB-001", "OAK-IPAD-001", "OAK-MINI-01"]),  # in repair, in service ×2
        ("warranty", ["OAK-CB-001", "OAK-IPAD-001", "OAK-MINI-01"]),
    ],
)
def test_sorting_both_ways(
    session: Session, school: School, fleet: dict[str, Device], sort: str, ascending: list[str]
) -> None:
    assert find(session, school, sort=sort) == ascending
    assert find(session, school, sort=sort, descending=True) == ascending[::-1]


def test_ties_are_settled_by_asset_tag(
    session: Session, school: School, make_device: Callable[..., Device]
) -> None:
    for tag in ("C", "A", "B"):
        make_device(asset_tag=tag, model="Same model")
    assert find(session, school, sort="model") == ["A", "B", "C"]
    assert find(session, school, sort="model", descending=True) == ["C", "B", "A"]


def test_an_unknown_sort_or_page_is_refused(session: Session, school: School) -> None:
    with pytest.raises(ValidationFailed, match="Sort by one of"):
        services.search_devices(session, school.id, sort="price")
    with pytest.raises(ValidationFailed, match="numbered from 1"):
        services.search_devices(session, school.id, page=0)


def test_paging(session: Session, school: School, make_device: Callable[..., Device]) -> None:
    for n in range(1, 6):
        make_device(asset_tag=f"OAK-{n}")
    pages = [services.search_devices(session, school.id, page=p, per_page=2) for p in (1, 2, 3)]
    assert [tags(p) for p in pages] == [["OAK-1", "OAK-2"], ["OAK-3", "OAK-4"], ["OAK-5"]]
    assert {(p.total, p.pages, p.exact) for p in pages} == {(5, 3, True)}
    assert [p.has_next for p in pages] == [True, True, False]
    beyond = services.search_devices(session, school.id, page=9, per_page=2)
    assert beyond.items == [] and beyond.total == 5 and not beyond.has_next
    empty = services.search_devices(session, school.id, q="nothing")
    assert empty.total == 0 and empty.pages == 1 and not empty.has_next


def test_counting_stops_at_a_limit_for_very_large_registers(
    session: Session,
    school: School,
    make_device: Callable[..., Device],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At trust scale the count is a lower bound past COUNT_LIMIT; every page still works."""
    monkeypatch.setattr(register, "COUNT_LIMIT", 3)
    for n in range(1, 8):
        make_device(asset_tag=f"OAK-{n}")
    first = services.search_devices(session, school.id, per_page=2)
    assert (first.total, first.exact, first.has_next) == (3, False, True)
    # Far pages count at least as far as themselves, so "next" stays right.
    third = services.search_devices(session, school.id, page=3, per_page=2)
    assert tags(third) == ["OAK-5", "OAK-6"]
    assert third.total >= 6 and third.has_next
    last = services.search_devices(session, school.id, page=4, per_page=2)
    assert tags(last) == ["OAK-7"] and (last.total, last.exact, last.has_next) == (7, True, False)


def test_search_never_crosses_schools(
    session: Session,
    school: School,
    other_school: School,
    make_device: Callable[..., Device],
    make_user: Callable[..., User],
) -> None:
    """P-SEC-1: another school's devices and staff are invisible to a search."""
    theirs = make_user(Role.TEACHER, in_school=other_school)
    make_device(in_school=other_school, asset_tag="ELM-1", serial="ELMSERIAL1", holder_id=theirs.id)
    assert find(session, school, q="elm") == []
    assert find(session, school, q=theirs.email.split("@")[0]) == []
    assert find(session, school, include_disposed=True) == []
