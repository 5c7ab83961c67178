"""Locations through the API and the pages: status codes, errors, permissions and schools."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location
from tests.server.conftest import csrf_token, log_in_as
from tests.server.schools.conftest import Estate

Headers = Callable[[User], dict[str, str]]


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


def text(response: Any) -> str:
    return response.get_data(as_text=True)  # type: ignore[no-any-return]


def test_api_adds_edits_reads_and_deletes_places(
    client: FlaskClient,
    session: Session,
    sbm: User,
    estate: Estate,
    make_device: Callable[..., Device],
    token_for: Headers,
) -> None:
    """P-TROLLEY-3: a lockable cupboard for class iPads, managed like a trolley, over the API."""
    headers = token_for(sbm)
    created = client.post(
        "/api/v1/locations",
        json={
            "kind": "cupboard",
            "name": "Year 4 cupboard",
            "parent_id": estate.year4.id,
            "capacity": 3,
            "code": "C4",
        },
        headers=headers,
    )
    assert created.status_code == 201, text(created)
    cupboard = created.get_json()
    assert cupboard["path"] == "Oakfield Road › Main building › Year 4 classroom › Year 4 cupboard"
    assert (cupboard["capacity"], cupboard["code"], cupboard["devices_home"]) == (3, "C4", 0)
    place_id = cupboard["id"]

    make_device(asset_tag="C-1", home=session.get(Location, place_id), home_slot=2)
    detail = client.get(f"/api/v1/locations/{place_id}", headers=headers).get_json()
    assert detail["slots"] == [
        {"number": 1, "asset_tag": None},
        {"number": 2, "asset_tag": "C-1"},
        {"number": 3, "asset_tag": None},
    ]
    assert detail["free_slots"] == [1, 3] and detail["devices_home"] == 1
    assert [d["asset_tag"] for d in detail["living_here"]] == ["C-1"]
    assert [d["asset_tag"] for d in detail["here_now"]] == ["C-1"]
    office = client.get(f"/api/v1/locations/{estate.office.id}", headers=headers).get_json()
    assert {c["name"] for c in office["children"]} == {"Office safe", "Stock cupboard"}

    edited = client.patch(
        f"/api/v1/locations/{place_id}",
        json={"name": "Year 4 iPad cupboard", "capacity": 2, "parent_id": estate.office.id},
        headers=headers,
    )
    assert edited.status_code == 200, text(edited)
    assert edited.get_json()["path"].endswith("School office › Year 4 iPad cupboard")
    too_small = error_of(
        client.patch(f"/api/v1/locations/{place_id}", json={"capacity": 1}, headers=headers), 400
    )
    assert "Slot 2" in too_small["message"]
    error_of(
        client.patch(f"/api/v1/locations/{place_id}", json={"kind": "room"}, headers=headers), 400
    )
    busy = error_of(client.delete(f"/api/v1/locations/{place_id}", headers=headers), 409)
    assert "lives in Year 4 iPad cupboard" in busy["message"]

    empty = client.post(
        "/api/v1/locations",
        json={"kind": "room", "name": "Store", "parent_id": estate.building.id},
        headers=headers,
    ).get_json()
    deleted = client.delete(f"/api/v1/locations/{empty['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.get_json() == {"deleted": True, "id": empty["id"]}
    error_of(client.get(f"/api/v1/locations/{empty['id']}", headers=headers), 404)
    listing = client.get("/api/v1/locations", headers=headers).get_json()["items"]
    assert "Store" not in {p["name"] for p in listing}


def test_api_refuses_bad_places_with_clear_errors(
    client: FlaskClient, sbm: User, estate: Estate, token_for: Headers
) -> None:
    headers = token_for(sbm)
    cases = [
        ({"kind": "trolley", "name": "T", "parent_id": estate.year4.id}, 400, "capacity"),
        ({"kind": "safe", "name": "S", "capacity": 2}, 400, "can only sit inside"),
        ({"kind": "room", "name": "R", "parent_id": 999_999}, 400, "does not exist"),
        ({"kind": "shed", "name": "Shed"}, 400, "Some fields"),
        ({"kind": "room", "name": ""}, 400, "Some fields"),
        ({"kind": "room", "name": "Hall", "colour": "red"}, 400, "Some fields"),
        (
            {"kind": "safe", "name": "Office Safe", "parent_id": estate.office.id, "capacity": 1},
            409,
            "already a place called",
        ),
    ]
    for body, status, words in cases:
        error = error_of(client.post("/api/v1/locations", json=body, headers=headers), status)
        assert words in error["message"], (body, error)


def test_who_may_change_places(
    client: FlaskClient,
    make_user: Callable[..., User],
    estate: Estate,
    token_for: Headers,
) -> None:
    """Teachers read the tree; the SBM, technician and administrator change it."""
    teacher = token_for(make_user(Role.TEACHER))
    assert client.get(f"/api/v1/locations/{estate.safe.id}", headers=teacher).status_code == 200
    body = {"kind": "room", "name": "Hall", "parent_id": estate.building.id}
    error_of(client.post("/api/v1/locations", json=body, headers=teacher), 403)
    error_of(client.patch(f"/api/v1/locations/{estate.safe.id}", json={}, headers=teacher), 403)
    error_of(client.delete(f"/api/v1/locations/{estate.safe.id}", headers=teacher), 403)
    error_of(client.get("/api/v1/locations", headers=token_for(make_user(Role.GOVERNOR))), 403)
    for role in (Role.TECHNICIAN, Role.ADMIN):
        headers = token_for(make_user(role))
        made = client.post("/api/v1/locations", json={**body, "name": role.value}, headers=headers)
        assert made.status_code == 201, text(made)


def test_api_writes_by_browser_session_need_the_csrf_token(
    client: FlaskClient, sbm: User, estate: Estate
) -> None:
    log_in_as(client, sbm)
    body = {"name": "Renamed safe"}
    refused = client.patch(f"/api/v1/locations/{estate.safe.id}", json=body)
    assert error_of(refused, 400)["code"] == "csrf_failed"
    token = csrf_token(client, "/locations")
    allowed = client.patch(
        f"/api/v1/locations/{estate.safe.id}", json=body, headers={"X-CSRFToken": token}
    )
    assert allowed.status_code == 200


def test_another_schools_places_are_not_found(
    client: FlaskClient,
    session: Session,
    sbm: User,
    estate: Estate,
    other_school: School,
    token_for: Headers,
) -> None:
    """P-SEC-1: another school's place behaves exactly like one that does not exist."""
    theirs = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.ROOM, name="Their hall"
    )
    session.commit()
    headers = token_for(sbm)
    for location_id in (theirs.id, 999_999):
        path = f"/api/v1/locations/{location_id}"
        error_of(client.get(path, headers=headers), 404)
        error_of(client.patch(path, json={"name": "Mine"}, headers=headers), 404)
        error_of(client.delete(path, headers=headers), 404)
    body = {"kind": "safe", "name": "S", "parent_id": theirs.id, "capacity": 1}
    error_of(client.post("/api/v1/locations", json=body, headers=headers), 400)
    moved = client.patch(
        f"/api/v1/locations/{estate.safe.id}", json={"parent_id": theirs.id}, headers=headers
    )
    error_of(moved, 400)
    names = {
        p["name"] for p in client.get("/api/v1/locations", headers=headers).get_json()["items"]
    }
    assert "Their hall" not in names

    log_in_as(client, sbm)
    token = csrf_token(client, "/locations")
    assert client.get(f"/locations/{theirs.id}").status_code == 404
    assert client.post(f"/locations/{theirs.id}", data={"csrf_token": token}).status_code == 404
    deleted = client.post(f"/locations/{theirs.id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 404
    assert "Their hall" not in text(client.get("/locations"))
    session.expire_all()
    assert session.get(Location, theirs.id).name == "Their hall"  # type: ignore[union-attr]


def test_the_places_pages(
    client: FlaskClient,
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    estate: Estate,
    make_device: Callable[..., Device],
) -> None:
    """P-TROLLEY-3 / P-REG-3: each place shows its slots, what lives there and what is there now."""
    make_device(asset_tag="SAFE-1", home=estate.safe, home_slot=2)
    visitor = make_device(asset_tag="T-9", home=estate.trolley)
    visitor.current_location_id = estate.safe.id
    session.commit()

    teacher = make_user(Role.TEACHER)
    log_in_as(client, teacher)
    tree = text(client.get("/locations"))
    assert f'href="/locations/{estate.safe.id}"' in tree and "1 of 4 slots used" in tree
    assert "Add a place" not in tree
    safe_page = text(client.get(f"/locations/{estate.safe.id}"))
    assert "1 of 4 numbered slots taken" in safe_page
    assert re.search(r"2 · <a [^>]+>SAFE-1</a>", safe_page) and "1 · free" in safe_page
    assert "Year 4 trolley</a> (visiting)" in safe_page
    assert "Change this place" not in safe_page
    token = csrf_token(client, "/account")
    assert client.post("/locations", data={"csrf_token": token}).status_code == 403

    log_in_as(client, sbm)
    assert "Add a place" in text(client.get("/locations"))
    token = csrf_token(client, "/locations")
    added = client.post(
        "/locations",
        data={
            "csrf_token": token,
            "kind": "cupboard",
            "name": "Year 4 cupboard",
            "parent_id": str(estate.year4.id),
            "capacity": "6",
        },
        follow_redirects=True,
    )
    assert "Year 4 cupboard added." in text(added) and "0 of 6 numbered slots taken" in text(added)
    refused = client.post(
        "/locations",
        data={"csrf_token": token, "kind": "trolley", "name": "Loose trolley", "parent_id": ""},
    )
    assert refused.status_code == 400 and "A trolley can only sit inside" in text(refused)
    duplicate = client.post(
        "/locations",
        data={
            "csrf_token": token,
            "kind": "room",
            "name": "School Office",
            "parent_id": str(estate.building.id),
        },
    )
    assert duplicate.status_code == 409 and "already a place called" in text(duplicate)

    edit = {
        "csrf_token": token,
        "name": "Office safe",
        "parent_id": str(estate.office.id),
        "capacity": "1",
    }
    small = client.post(f"/locations/{estate.safe.id}", data=edit)
    assert small.status_code == 400 and "Slot 2 in Office safe is in use" in text(small)
    saved = client.post(
        f"/locations/{estate.safe.id}", data={**edit, "capacity": "2"}, follow_redirects=True
    )
    assert "Saved." in text(saved) and "1 of 2 numbered slots taken" in text(saved)
    busy = client.post(f"/locations/{estate.safe.id}/delete", data={"csrf_token": token})
    assert busy.status_code == 409 and "lives in Office safe" in text(busy)
    store = add_location(
        session,
        actor=None,
        school_id=sbm.school_id,
        kind=LocationKind.ROOM,
        name="Store",
        parent=estate.building,
    )
    session.commit()
    gone = client.post(
        f"/locations/{store.id}/delete", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Store deleted." in text(gone) and "<h1>Main building" in text(gone)
