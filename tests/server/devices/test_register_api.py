"""The register's JSON API: every action, its status codes, the one error shape, CSRF, schools."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus, LocationChangeRequest
from server.schools.models import Location, School
from tests.server.conftest import csrf_token, log_in_as
from tests.server.devices.conftest import is_error

Headers = Callable[[User], dict[str, str]]


def test_search_with_every_filter_sort_and_page(
    client: FlaskClient,
    sbm: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
    token_for: Headers,
) -> None:
    """P-REG-1: the register is searchable over the API as on the page."""
    make_device(asset_tag="A-1", home=trolley, model="iPad (10th generation)")
    make_device(asset_tag="A-2", home=safe, model="iPad mini (6th generation)")
    make_device(asset_tag="A-3", home=trolley, status=DeviceStatus.DISPOSED)
    headers = token_for(sbm)

    def tags(query: str) -> list[str]:
        response = client.get(f"/api/v1/devices?{query}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [d["asset_tag"] for d in response.get_json()["items"]]

    assert tags("") == ["A-1", "A-2"]
    assert tags("q=MINI") == ["A-2"]
    assert tags(f"home_location_id={trolley.id}") == ["A-1"]
    assert tags(f"current_location_id={safe.id}") == ["A-2"]
    assert tags("include_disposed=true") == ["A-1", "A-2", "A-3"]
    assert tags("status=disposed") == ["A-3"]
    assert tags("platform=chromeos") == []
    assert tags("sort=model&descending=true") == ["A-2", "A-1"]
    assert tags("per_page=1&page=2") == ["A-2"]
    body = client.get("/api/v1/devices?per_page=1", headers=headers).get_json()
    assert body["total"] == 2 and body["total_exact"] is True and body["per_page"] == 1
    one = body["items"][0]
    assert one["home_location"] == {"id": trolley.id, "name": "Year 4 trolley", "kind": "trolley"}
    assert one["current_location"]["id"] == trolley.id and one["holder"] is None

    for bad in ("sort=price", "page=0", "per_page=501", "status=broken", "colour=red"):
        error = is_error(client.get(f"/api/v1/devices?{bad}", headers=headers), 400, "invalid")
        assert error["details"], bad


def test_create_returns_warnings_and_refuses_bad_details(
    client: FlaskClient, session: Session, sbm: User, trolley: Location, token_for: Headers
) -> None:
    """P-REG-1: money and dates as typed in the office; problems listed field by field."""
    headers = token_for(sbm)
    body = {
        "asset_tag": "OAK-IPAD-031",
        "serial": "pf2abcde",
        "platform": "ipados",
        "make": "Apple",
        "model": "iPad (10th generation)",
        "purchase_date": "21/08/2023",
        "purchase_cost_pence": "£349.00",
        "warranty_until": "21 Aug 2026",
        "home_location_id": trolley.id,
        "home_slot": 1,
    }
    created = client.post("/api/v1/devices", json=body, headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    saved = created.get_json()
    assert saved["device"]["serial"] == "PF2ABCDE"
    assert saved["device"]["purchase_cost_pence"] == 34900
    assert saved["device"]["purchase_date"] == "2023-08-21"
    assert saved["device"]["warranty_until"] == "2026-08-21"
    assert [w["field"] for w in saved["warnings"]] == ["serial"]

    again = is_error(client.post("/api/v1/devices", json=body, headers=headers), 400, "invalid")
    assert {d["field"] for d in again["details"]} == {"asset_tag", "serial", "home_slot"}
    wrong = {**body, "asset_tag": "X", "serial": "Y", "purchase_cost_pence": "£3.999"}
    error = is_error(client.post("/api/v1/devices", json=wrong, headers=headers), 400)
    assert [d["field"] for d in error["details"]] == ["purchase_cost_pence"]
    extra = {**body, "price": 1}
    assert is_error(client.post("/api/v1/devices", json=extra, headers=headers), 400)["details"]
    assert session.query(Device).count() == 1


def test_edit_status_and_their_errors(
    client: FlaskClient, sbm: User, make_device: Callable[..., Device], token_for: Headers
) -> None:
    device = make_device(asset_tag="OAK-1")
    headers = token_for(sbm)
    edited = client.patch(
        "/api/v1/devices/OAK-1", json={"model": "iPad Air", "notes": "Spare"}, headers=headers
    )
    assert edited.status_code == 200 and edited.get_json()["device"]["model"] == "iPad Air"
    is_error(client.patch("/api/v1/devices/OAK-1", json={"status": "lost"}, headers=headers), 400)
    is_error(client.patch("/api/v1/devices/OAK-1", json={"make": None}, headers=headers), 400)
    is_error(client.patch("/api/v1/devices/NOPE", json={"model": "x"}, headers=headers), 404)

    status = client.post(
        "/api/v1/devices/OAK-1/status",
        json={"status": "in_repair", "reason": "Cracked screen"},
        headers=headers,
    )
    assert status.status_code == 200 and status.get_json()["status"] == "in_repair"
    refused = is_error(
        client.post(
            "/api/v1/devices/OAK-1/status",
            json={"status": "in_stock", "reason": "Back"},
            headers=headers,
        ),
        400,
        "not_allowed",
    )
    assert "repaired device goes back into service first" in refused["message"]
    is_error(
        client.post(
            "/api/v1/devices/OAK-1/status",
            json={"status": "in_repair", "reason": "Again"},
            headers=headers,
        ),
        409,
        "conflict",
    )
    is_error(
        client.post("/api/v1/devices/OAK-1/status", json={"status": "in_service"}, headers=headers),
        400,
    )
    timeline = client.get("/api/v1/devices/OAK-1", headers=headers).get_json()["timeline"]
    assert [e["kind"] for e in timeline] == ["status", "edited"]
    assert device.id


def test_a_teacher_reads_and_asks_but_cannot_change_the_register(
    client: FlaskClient,
    teacher: User,
    sbm: User,
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
    token_for: Headers,
) -> None:
    """P-REG-2: a teacher proposes a move; only the SBM's decision changes the register."""
    make_device(asset_tag="OAK-1", home=trolley)
    mine = token_for(teacher)
    is_error(client.post("/api/v1/devices", json={}, headers=mine), 403, "forbidden")
    is_error(client.patch("/api/v1/devices/OAK-1", json={"model": "x"}, headers=mine), 403)
    asked = client.post(
        "/api/v1/devices/OAK-1/move",
        json={"location_id": safe.id, "reason": "Class iPad in the safe"},
        headers=mine,
    )
    assert asked.status_code == 201 and asked.get_json()["status"] == "pending"
    request_id = asked.get_json()["id"]
    is_error(
        client.post(f"/api/v1/moves/{request_id}/decision", json={"approve": True}, headers=mine),
        403,
    )
    moves = client.get("/api/v1/moves", headers=mine).get_json()["items"]
    assert [m["id"] for m in moves] == [request_id]

    boss = token_for(sbm)
    is_error(
        client.post(f"/api/v1/moves/{request_id}/decision", json={"approve": False}, headers=boss),
        400,
    )
    decided = client.post(
        f"/api/v1/moves/{request_id}/decision", json={"approve": True}, headers=boss
    )
    assert decided.status_code == 200 and decided.get_json()["status"] == "approved"
    device = client.get("/api/v1/devices/OAK-1", headers=mine).get_json()
    assert device["home_location"]["name"] == "Office safe"
    assert device["timeline"][0]["kind"] == "moved"
    is_error(
        client.post("/api/v1/moves/999999/decision", json={"approve": True}, headers=boss), 404
    )
    is_error(
        client.post(
            "/api/v1/devices/OAK-1/move",
            json={"location_id": safe.id, "reason": "Again"},
            headers=mine,
        ),
        409,
    )


def test_writes_by_browser_session_need_the_csrf_token(
    client: FlaskClient, sbm: User, make_device: Callable[..., Device]
) -> None:
    make_device(asset_tag="OAK-1")
    log_in_as(client, sbm)
    blocked = client.patch("/api/v1/devices/OAK-1", json={"model": "x"})
    is_error(blocked, 400, "csrf_failed")
    token = csrf_token(client, "/account")
    allowed = client.patch(
        "/api/v1/devices/OAK-1", json={"model": "iPad Air"}, headers={"X-CSRFToken": token}
    )
    assert allowed.status_code == 200


def test_another_schools_devices_and_moves_are_out_of_reach(
    client: FlaskClient,
    session: Session,
    sbm: User,
    teacher: User,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    trolley: Location,
    safe: Location,
    token_for: Headers,
) -> None:
    """P-SEC-1: ids and tags from another school behave exactly like ids that do not exist."""
    theirs = make_device(in_school=other_school, asset_tag="ELM-1", serial="ELMSERIAL1")
    make_device(asset_tag="OAK-1", home=trolley)
    their_sbm = token_for(make_user(Role.SBM, in_school=other_school))
    mine = token_for(sbm)
    for method, path, body in [
        ("GET", "/api/v1/devices/ELM-1", None),
        ("PATCH", "/api/v1/devices/ELM-1", {"model": "x"}),
        ("POST", "/api/v1/devices/ELM-1/status", {"status": "lost", "reason": "x"}),
        ("POST", "/api/v1/devices/ELM-1/move", {"location_id": safe.id, "reason": "x"}),
    ]:
        is_error(client.open(path, method=method, json=body, headers=mine), 404)
    request_id = client.post(
        "/api/v1/devices/OAK-1/move",
        json={"location_id": safe.id, "reason": "Safer"},
        headers=token_for(teacher),
    ).get_json()["id"]
    assert client.get("/api/v1/moves", headers=their_sbm).get_json()["items"] == []
    is_error(
        client.post(
            f"/api/v1/moves/{request_id}/decision", json={"approve": True}, headers=their_sbm
        ),
        404,
    )
    # Their SBM cannot send our device to one of their places, nor ours to theirs.
    moved = client.post(
        "/api/v1/devices/ELM-1/move",
        json={"location_id": trolley.id, "reason": "Borrow"},
        headers=their_sbm,
    )
    assert moved.status_code == 400
    session.expire_all()
    assert session.get(LocationChangeRequest, request_id).status.value == "pending"  # type: ignore[union-attr]
    assert session.get(Device, theirs.id).home_location_id is None  # type: ignore[union-attr]


def test_no_account_disposes_of_devices_by_changing_their_status(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Headers,
) -> None:
    """P-DISPOSE-1, P-SEC-1: disposal is final (no lost mode, no freeze, no commands after it),
    so a status change of one account, stolen or not, cannot make it: neither the API nor the
    device page disposes of a device; a completed disposal batch, with the agency and the
    erasure evidence, is the only way. Nothing is written by a refusal."""
    devices = [make_device(status=DeviceStatus.IN_STOCK) for _n in range(3)]
    for role in (Role.TECHNICIAN, Role.SBM):
        user = make_user(role)
        for device in devices:
            refused = is_error(
                client.post(
                    f"/api/v1/devices/{device.asset_tag}/status",
                    json={"status": "disposed", "reason": "Gone"},
                    headers=token_for(user),
                ),
                400,
                "through_disposal",
            )
            assert "disposal batch" in refused["message"]
        log_in_as(client, user)
        page = client.get(f"/devices/{devices[0].asset_tag}").get_data(as_text=True)
        assert 'value="disposed"' not in page and 'value="in_service"' in page
        client.post(
            f"/devices/{devices[0].asset_tag}/status",
            data={
                "csrf_token": csrf_token(client, f"/devices/{devices[0].asset_tag}"),
                "status": "disposed",
                "reason": "Gone",
            },
        )
    session.expire_all()
    assert {session.get_one(Device, d.id).status for d in devices} == {DeviceStatus.IN_STOCK}
    timeline = client.get(
        f"/api/v1/devices/{devices[0].asset_tag}", headers=token_for(make_user(Role.SBM))
    ).get_json()["timeline"]
    assert [e for e in timeline if e["kind"] == "status"] == []
