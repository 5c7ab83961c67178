"""Register search by words: each word must match somewhere, in any case (P-REG-1, issue 18)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices import services
from server.devices.models import Device, Platform
from server.devices.services import search
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location


def find(session: Session, school: School, q: str) -> list[str]:
    return [d.asset_tag for d in services.search_devices(session, school.id, q=q).items]


@pytest.fixture
def fleet(
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
) -> dict[str, Device]:
    holder = make_user(Role.TEACHER)
    holder.name = "Helen Ward"
    session.commit()
    return {
        "nine": make_device(
            asset_tag="OAK-0042",
            serial="DMPXK2ABCDEF",
            make="Apple",
            model="iPad (9th generation)",
            home=trolley,
            holder_id=holder.id,
        ),
        "lenovo": make_device(
            asset_tag="OAK-CB-7",
            serial="PF2QWERT",
            platform=Platform.CHROMEOS,
            make="Lenovo",
            model="300e Chromebook Gen 3",
        ),
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("Apple", ["OAK-0042"]),  # the make, as the list shows it
        ("lenovo", ["OAK-CB-7"]),
        ("iPad 9th generation", ["OAK-0042"]),  # words, not one string
        ("IPAD (9TH", ["OAK-0042"]),
        ("apple year 4", ["OAK-0042"]),  # and the place it lives
        ("helen ipad", ["OAK-0042"]),  # and who has it
        ("0042 ward", ["OAK-0042"]),
        ("chromebook pf2q", ["OAK-CB-7"]),
        ("apple chromebook", []),  # every word must match
        ("ipad 10th", []),
    ],
)
def test_every_word_must_match_somewhere(
    session: Session, school: School, fleet: dict[str, Device], q: str, expected: list[str]
) -> None:
    """P-REG-1: "Apple", "lenovo" and "iPad 9th generation" find "Apple iPad (9th generation)";
    words match tag, serial, make, model, place and holder, any case, all of them."""
    assert find(session, school, q) == expected


def test_an_edit_a_move_and_a_new_holder_are_found_at_once(
    session: Session,
    school: School,
    fleet: dict[str, Device],
    trolley: Location,
    make_user: Callable[..., User],
) -> None:
    """P-REG-1, P-REG-3: the search follows the register the moment it changes."""
    sbm = make_user(Role.SBM)
    device = fleet["lenovo"]
    services.update_device(session, sbm, device, {"model": "500e Chromebook Gen 4"})
    session.commit()
    assert find(session, school, "lenovo 500e") == ["OAK-CB-7"]
    assert find(session, school, "300e") == []

    library = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.ROOM, name="Library"
    )
    device.current_location_id = library.id
    session.commit()
    assert find(session, school, "lenovo library") == ["OAK-CB-7"]

    teacher = make_user(Role.TEACHER)
    teacher.name = "Priya Shah"
    session.commit()
    device.holder_id = teacher.id
    session.commit()
    assert find(session, school, "priya chromebook") == ["OAK-CB-7"]
    teacher.name = "Priya Shah-Jones"
    session.commit()
    assert find(session, school, "jones") == ["OAK-CB-7"]


def test_the_word_index_is_in_place(session: Session) -> None:
    """P-REG-1: the FTS5 table and its triggers (SQLite), the trigram index (PostgreSQL). A
    migration that rebuilds `devices` on SQLite drops the triggers; this says so."""
    if session.get_bind().dialect.name == "sqlite":
        names = set(
            session.scalars(
                text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
            )
        )
        assert {search.SQLITE_TABLE, *search.SQLITE_TRIGGERS} <= names
    else:
        index = session.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
            {"name": search.POSTGRES_INDEX},
        )
        assert index is not None and "gin_trgm_ops" in index
