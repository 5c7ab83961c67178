"""The register's pages: list, add, edit, status, moves and decisions, as staff use them."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices import services
from server.devices.models import ChangeRequestStatus, Device, DeviceStatus, LocationChangeRequest
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location
from tests.server.conftest import csrf_token, log_in_as


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


def test_the_list_searches_filters_sorts_and_pages(
    client: FlaskClient,
    sbm: User,
    make_device: Callable[..., Device],
    trolley: Location,
) -> None:
    """P-REG-1 / P-REG-3: the register page answers "where is it" from a search box."""
    for n in range(1, 4):
        make_device(asset_tag=f"OAK-{n}", home=trolley, model=f"Model {4 - n}")
    make_device(asset_tag="OAK-GONE", status=DeviceStatus.DISPOSED)
    log_in_as(client, sbm)
    page = text(client.get("/devices"))
    assert "3 devices" in page and "OAK-GONE" not in page and "Year 4 trolley" in page
    assert "3 devices" not in text(client.get("/devices?q=OAK-2"))
    assert "OAK-GONE" in text(client.get("/devices?include_disposed=true"))
    assert ">1 device<" in text(client.get("/devices?status=disposed"))
    ordered = text(client.get("/devices?sort=model&descending=false"))
    assert ordered.index("OAK-3") < ordered.index("OAK-2") < ordered.index("OAK-1")
    assert 'aria-sort="ascending"' in ordered
    paged = text(client.get("/devices?per_page=2&page=2"))
    assert "Page 2 of 2" in paged and "OAK-3" in paged and "OAK-1" not in paged
    # Unreadable filters are ignored rather than failing the page.
    assert client.get("/devices?page=abc&warranty_within_days=soon").status_code == 200


def test_adding_a_device_through_the_form(
    client: FlaskClient, session: Session, sbm: User, trolley: Location
) -> None:
    """P-REG-1: the SBM types what the spreadsheet said; problems appear next to their field."""
    log_in_as(client, sbm)
    token = csrf_token(client, "/devices/new")
    form = {
        "csrf_token": token,
        "asset_tag": "OAK-IPAD-040",
        "serial": "pf2abcde",
        "platform": "ipados",
        "make": "Apple",
        "model": "iPad (10th generation)",
        "purchase_date": "1 Sept 2023",
        "cost": "£349.00",
        "warranty_until": "01/09/2026",
        "home_location_id": str(trolley.id),
        "home_slot": "2",
    }
    added = client.post("/devices/new", data=form, follow_redirects=True)
    page = text(added)
    assert added.status_code == 200 and "OAK-IPAD-040 is in the register." in page
    assert "Apple serial numbers are 10 or 12" in page  # the warning, after saving
    assert "£349.00" in page and "Fri 1 September 2023" in page and "slot 2" in page
    again = client.post("/devices/new", data={**form, "cost": "lots"})
    assert again.status_code == 400 and "not an amount of money" in text(again)
    duplicate = client.post("/devices/new", data={**form, "serial": "DMPXK2ABCDEF"})
    assert duplicate.status_code == 400
    assert "Asset tag OAK-IPAD-040 is already in the register." in text(duplicate)
    assert "Slot 2 in Year 4 trolley is OAK-IPAD-040" in text(duplicate)
    no_token = client.post(
        "/devices/new", data={k: v for k, v in form.items() if k != "csrf_token"}
    )
    assert no_token.status_code == 400 and "expired" in text(no_token)
    assert session.query(Device).count() == 1


def test_editing_and_changing_status_on_the_device_page(
    client: FlaskClient, sbm: User, make_device: Callable[..., Device]
) -> None:
    make_device(asset_tag="OAK-1", supplier=None)
    log_in_as(client, sbm)
    edit_page = client.get("/devices/OAK-1/edit")
    assert edit_page.status_code == 200
    token = csrf_token(client, "/devices/OAK-1/edit")
    form = {
        "csrf_token": token,
        "asset_tag": "OAK-1",
        "serial": "SER0000001",
        "platform": "ipados",
        "make": "Apple",
        "model": "iPad (10th generation)",
        "supplier": "XMA Ltd",
    }
    saved = client.post("/devices/OAK-1/edit", data=form, follow_redirects=True)
    assert "Saved." in text(saved) and "Details changed: supplier" in text(saved)
    bad = client.post("/devices/OAK-1/edit", data={**form, "purchase_date": "31/02/2023"})
    assert bad.status_code == 400 and "not a real date" in text(bad)

    changed = client.post(
        "/devices/OAK-1/status",
        data={"csrf_token": token, "status": "in_repair", "reason": "Cracked screen"},
        follow_redirects=True,
    )
    assert "OAK-1 is now in repair." in text(changed)
    assert "In service → In repair: Cracked screen" in text(changed)
    refused = client.post(
        "/devices/OAK-1/status",
        data={"csrf_token": token, "status": "in_stock", "reason": "Back"},
        follow_redirects=True,
    )
    assert "repaired device goes back into service first" in text(refused)
    missing = client.post("/devices/OAK-1/status", data={"csrf_token": token, "status": "lost"})
    assert missing.status_code == 400


def test_a_teachers_move_waits_and_the_sbm_decides_on_the_moves_page(
    client: FlaskClient,
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-REG-2 / P-TROLLEY-3: a teacher asks for the office safe; the SBM approves on the page."""
    make_device(asset_tag="OAK-1", home=trolley, home_slot=5)
    make_device(asset_tag="OAK-2", home=trolley, home_slot=6)
    log_in_as(client, teacher)
    form = client.get("/devices/OAK-1/move")
    assert form.status_code == 200 and "Ask the SBM" in text(form)
    token = csrf_token(client, "/devices/OAK-1/move")
    asked = client.post(
        "/devices/OAK-1/move",
        data={"csrf_token": token, "location_id": str(safe.id), "reason": "Class iPad"},
        follow_redirects=True,
    )
    assert "Sent to the school business manager for approval." in text(asked)
    assert "Move to Office safe waiting for the school business manager" in text(asked)
    client.post(
        "/devices/OAK-2/move",
        data={"csrf_token": token, "location_id": str(safe.id), "reason": "Spare"},
    )
    too_many = client.post(
        "/devices/OAK-1/move",
        data={"csrf_token": token, "location_id": str(trolley.id), "reason": "Back"},
    )
    assert too_many.status_code == 400 and "already a move waiting" in text(too_many)
    waiting = text(client.get("/devices/moves"))
    assert "Waiting for the SBM" in waiting and "Approve" not in waiting

    log_in_as(client, sbm)
    moves = text(client.get("/devices/moves"))
    assert "OAK-1" in moves and "Class iPad" in moves and "Approve" in moves
    ids = {
        r.device.asset_tag: r.id
        for r in services.move_requests(session, sbm.school_id, status=ChangeRequestStatus.PENDING)
    }
    token = csrf_token(client, "/devices/moves")
    approved = client.post(
        f"/devices/moves/{ids['OAK-1']}/approve", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Move of OAK-1 approved." in text(approved)
    unexplained = client.post(
        f"/devices/moves/{ids['OAK-2']}/decline", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Say why the move is declined" in text(unexplained)
    declined = client.post(
        f"/devices/moves/{ids['OAK-2']}/decline",
        data={"csrf_token": token, "reason": "Keep it in the trolley"},
        follow_redirects=True,
    )
    assert "Move of OAK-2 declined." in text(declined)
    assert "Declined: Keep it in the trolley" in text(declined)
    device_page = text(client.get("/devices/OAK-1"))
    assert re.search(r"Lives in</dt><dd><a [^>]+>Office safe</a>", device_page)
    assert "Now lives in Office safe (was Year 4 trolley)" in device_page
    assert client.post("/devices/moves/999999/approve", data={"csrf_token": token}).status_code == (
        404
    )


def test_the_sbm_moves_a_device_at_once(
    client: FlaskClient,
    sbm: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-REG-2: the SBM's own move applies straight away and is in the history."""
    make_device(asset_tag="OAK-1", home=trolley)
    log_in_as(client, sbm)
    token = csrf_token(client, "/devices/OAK-1/move")
    moved = client.post(
        "/devices/OAK-1/move",
        data={"csrf_token": token, "location_id": str(safe.id), "slot": "2", "reason": "Mine"},
        follow_redirects=True,
    )
    assert "OAK-1 now lives in Office safe." in text(moved)
    assert "Now lives in Office safe, slot 2" in text(moved)


def test_another_schools_register_pages_are_not_found(
    client: FlaskClient,
    session: Session,
    sbm: User,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-SEC-1: every register page answers 404 for another school's device or move."""
    make_device(in_school=other_school, asset_tag="ELM-1", serial="ELMSERIAL1")
    their_teacher = make_user(Role.TEACHER, in_school=other_school)
    theirs = make_device(in_school=other_school, asset_tag="ELM-2", serial="ELMSERIAL2")
    their_room = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.ROOM, name="Hall"
    )
    session.commit()
    request = services.request_home_change(
        session, their_teacher, theirs, their_room.id, None, "Theirs"
    )
    log_in_as(client, sbm)
    token = csrf_token(client, "/devices/moves")
    for path in ("/devices/ELM-1", "/devices/ELM-1/edit", "/devices/ELM-1/move", "/d/ELM-1"):
        assert client.get(path, follow_redirects=True).status_code == 404, path
    for path in ("/devices/ELM-1/edit", "/devices/ELM-1/status", "/devices/ELM-1/move"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404, path
    decided = client.post(f"/devices/moves/{request.id}/approve", data={"csrf_token": token})
    assert decided.status_code == 404
    assert "ELM-2" not in text(client.get("/devices/moves"))
    session.expire_all()
    still = session.get(LocationChangeRequest, request.id)
    assert still is not None and still.status is ChangeRequestStatus.PENDING


def test_the_sbms_home_page_counts_moves_waiting(
    client: FlaskClient,
    session: Session,
    sbm: User,
    teacher: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
) -> None:
    """P-REG-2: the SBM sees at a glance that moves are waiting for them."""
    log_in_as(client, sbm)
    assert "No moves are waiting." in text(client.get("/"))
    services.request_home_change(session, teacher, make_device(home=trolley), safe.id, None, "Safe")
    home = text(client.get("/"))
    assert re.search(r'class="big">1 <span>waiting for you', home)
    log_in_as(client, teacher)
    assert "Moves to decide" not in text(client.get("/"))
