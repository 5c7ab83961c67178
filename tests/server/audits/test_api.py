"""The audit API: every step, its bad input, and its place in the OpenAPI document."""

from __future__ import annotations

import csv
import importlib.util
import io
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device
from server.schools.models import School
from tests.server.audits.conftest import Fleet


def test_an_audit_from_start_to_follow_ups_over_the_api(
    client: FlaskClient,
    session: Session,
    lead: User,
    teacher: User,
    fleet: Fleet,
    other_school: School,
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-AUDIT-1 / P-AUDIT-2 over the API, with each kind of bad scan answered clearly."""
    make_device(in_school=other_school, asset_tag="ELM-0001", serial="ELMSERIAL1")
    lead_auth, teacher_auth = token_for(lead), token_for(teacher)
    assert client.post("/api/v1/audits", json={}, headers=teacher_auth).status_code == 403
    started = client.post("/api/v1/audits", json={"location_ids": [fleet.y4.id]}, headers=lead_auth)
    assert started.status_code == 201
    audit = started.get_json()
    assert audit["expected_count"] == 4 and audit["status"] == "open"
    again = client.post("/api/v1/audits", json={}, headers=lead_auth)
    assert again.status_code == 409 and again.get_json()["error"]["details"]["audit_id"]
    url = f"/api/v1/audits/{audit['id']}"

    def scan(code: str, place: int, auth: dict[str, str] = teacher_auth) -> dict:
        response = client.post(
            f"{url}/scans", json={"code": code, "location_id": place}, headers=auth
        )
        body = response.get_json()
        body["status_code"] = response.status_code
        return body

    ok = scan("Y4-1", fleet.y4.id)
    assert (ok["status_code"], ok["outcome"], ok["place"]["text"]) == (
        200,
        "verified",
        "1 / 4 — Year 4 trolley",
    )
    assert scan("http://127.0.0.1:5000/d/Y4-2", fleet.safe.id)["outcome"] == "misplaced"
    twice = scan("Y4-1", fleet.y4.id)
    assert twice["repeat"] and twice["found"] == 2
    outside = scan("Y3-1", fleet.y4.id)
    assert outside["outcome"] == "misplaced" and not outside["expected"]
    unknown = scan("NOPE-1", fleet.y4.id)
    assert unknown["outcome"] == "unknown" and unknown["tone"] == "warn"
    theirs = scan("ELM-0001", fleet.y4.id)
    assert theirs["status_code"] == 409 and theirs["error"]["code"] == "other_school"
    junk = scan("not a label", fleet.y4.id)
    assert junk["status_code"] == 400 and junk["error"]["code"] == "bad_code"
    nowhere = scan("Y4-3", 999999)
    assert nowhere["status_code"] == 400 and nowhere["error"]["code"] == "bad_location"
    missing_field = client.post(f"{url}/scans", json={"code": "Y4-3"}, headers=teacher_auth)
    assert missing_field.status_code == 400
    assert (
        client.post(
            "/api/v1/audits/999999/scans",
            json={"code": "Y4-3", "location_id": fleet.y4.id},
            headers=teacher_auth,
        ).status_code
        == 404
    )

    condition = client.post(
        f"{url}/items/Y4-1/condition",
        json={"screen_intact": False, "note": "Cracked"},
        headers=teacher_auth,
    )
    assert condition.status_code == 200
    assert condition.get_json()["problems"] == ["screen damaged"]
    assert (
        client.post(
            f"{url}/items/Y4-4/condition", json={"case_on": True}, headers=teacher_auth
        ).get_json()["error"]["code"]
        == "not_scanned"
    )
    assert (
        client.post(
            f"{url}/items/Y4-1/condition", json={"wet": True}, headers=teacher_auth
        ).status_code
        == 400
    )

    progress = client.get(f"{url}/progress", headers=teacher_auth).get_json()
    assert [p["text"] for p in progress["places"]] == ["2 / 4 — Year 4 trolley"]
    assert (progress["unknown"], progress["not_expected"]) == (1, 1)
    live = client.get(f"{url}/report", headers=lead_auth).get_json()
    assert live["live"] and live["totals"]["missing"] == 2
    assert client.get(f"{url}/report", headers=teacher_auth).status_code == 403

    closed = client.post(f"{url}/close", json={"note": "Year 4 done"}, headers=lead_auth)
    assert closed.status_code == 200 and closed.get_json()["signed_off_by"] == lead.name
    late = scan("Y4-3", fleet.y4.id)
    assert late["status_code"] == 409 and late["error"]["code"] == "audit_closed"
    assert "Y4-3 was not recorded" in late["error"]["message"]

    report = client.get(f"{url}/report", headers=lead_auth).get_json()
    assert not report["live"]
    assert [d["asset_tag"] for d in report["missing"]["items"]] == ["Y4-3", "Y4-4"]
    assert report["misplaced"]["items"][0]["found_in"].endswith("Office safe")
    assert report["damaged"]["items"][0]["condition_note"] == "Cracked"
    assert [u["tag"] for u in report["unknown"]] == ["NOPE-1"]
    assert [d["asset_tag"] for d in report["not_expected"]["items"]] == ["Y3-1"]
    exported = client.get(f"{url}/report/csv", headers=lead_auth).get_json()
    assert exported["filename"].startswith(f"audit-{audit['id']}-")
    rows = list(csv.DictReader(io.StringIO(exported["csv"].removeprefix("\ufeff"))))
    assert {r["Asset tag"] for r in rows} == {"Y4-1", "Y4-2", "Y4-3", "Y4-4", "Y3-1", "NOPE-1"}

    follow = client.post(f"{url}/follow-ups", headers=lead_auth).get_json()
    assert follow["repairs"] == ["Y4-1"]
    if importlib.util.find_spec("server.losses") is not None:
        assert sorted(f["asset_tag"] for f in follow["losses"]) == ["Y4-3", "Y4-4"]
    else:  # without the losses domain the missing are left for the computing lead, and said so
        assert [s["asset_tag"] for s in follow["skipped"]] == ["Y4-3", "Y4-4"]
    listed = client.get("/api/v1/audits", headers=lead_auth).get_json()["items"]
    assert listed[0]["summary"]["missing"] == 2
    terms = client.get("/api/v1/audit-terms", headers=lead_auth).get_json()["items"]
    assert any(t["state"] in {"overdue", "missed"} for t in terms)


def test_photo_and_spot_checks_over_the_api(
    client: FlaskClient,
    session: Session,
    lead: User,
    fleet: Fleet,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-PHOTO-2 / P-PHOTO-3 over the API."""
    fleet.y4_devices[0].photo_count = 3
    session.commit()
    auth = token_for(lead)
    started = client.post("/api/v1/photo-checks", headers=auth)
    assert started.status_code == 201
    check = started.get_json()
    tags = sorted(d.asset_tag for d in fleet.all)
    assert check["holding_before"] == 1 and check["asked"] == 0
    assert sorted(d["asset_tag"] for d in check["devices"]) == tags
    wipe = client.post(f"/api/v1/photo-checks/{check['id']}/wipe", headers=auth).get_json()
    # None is enrolled, and only Y4-1 ever reported: each is for a person to check by hand.
    assert wipe["wipe_by_hand"] == tags and wipe["sent"] == 0
    refused = client.post(f"/api/v1/photo-checks/{check['id']}/complete", json={}, headers=auth)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"]["unconfirmed"] == tags
    for tag in tags:
        by_hand = client.post(
            f"/api/v1/photo-checks/{check['id']}/items/{tag}/by-hand",
            json={"photos_left": 0, "saw": "Photos app empty"},
            headers=auth,
        ).get_json()
    line = next(d for d in by_hand["devices"] if d["asset_tag"] == "Y4-1")
    assert (line["wiped_by_hand_by"], line["hand_note"], line["outcome"]) == (
        lead.name,
        "Photos app empty",
        "cleared",
    )
    done = client.post(
        f"/api/v1/photo-checks/{check['id']}/complete", json={"note": "ok"}, headers=auth
    ).get_json()
    assert (done["status"], done["cleared"], done["holding_before"]) == ("complete", 7, 1)
    assert done["checked_by_hand"] == 7
    overview = client.get("/api/v1/photo-checks", headers=auth).get_json()
    assert overview["checks"][0]["id"] == check["id"] and overview["half_terms"]

    drawn = client.post("/api/v1/spot-checks", json={"size": 2, "seed": 7}, headers=auth)
    assert drawn.status_code == 201
    spot = drawn.get_json()
    assert spot["seed"] == "7" and spot["draw_verified"] and len(spot["devices"]) == 2
    repeat = client.post("/api/v1/spot-checks", json={"size": 2, "seed": 7}, headers=auth)
    assert [d["asset_tag"] for d in repeat.get_json()["devices"]] == [
        d["asset_tag"] for d in spot["devices"]
    ]
    tag = spot["devices"][0]["asset_tag"]
    recorded = client.post(
        f"/api/v1/spot-checks/{spot['id']}/items/{tag}",
        json={"photos_found": False, "other_personal_data": False},
        headers=auth,
    ).get_json()
    assert recorded["devices"][0]["checked_by"] == lead.name
    assert client.post("/api/v1/spot-checks", json={"size": 0}, headers=auth).status_code == 400
    assert client.post("/api/v1/spot-checks", json={}, headers=auth).status_code == 400
    assert client.get("/api/v1/spot-checks/999999", headers=auth).status_code == 404


def test_every_step_is_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path, method in [
        ("/api/v1/audits", "post"),
        ("/api/v1/audits/{audit_id}/scans", "post"),
        ("/api/v1/audits/{audit_id}/items/{asset_tag}/condition", "post"),
        ("/api/v1/audits/{audit_id}/close", "post"),
        ("/api/v1/audits/{audit_id}/report", "get"),
        ("/api/v1/audits/{audit_id}/report/csv", "get"),
        ("/api/v1/audits/{audit_id}/follow-ups", "post"),
        ("/api/v1/photo-checks", "post"),
        ("/api/v1/photo-checks/{check_id}/complete", "post"),
        ("/api/v1/spot-checks", "post"),
        ("/api/v1/spot-checks/{check_id}/items/{asset_tag}", "post"),
    ]:
        assert method in paths[path], path
        assert paths[path][method]["tags"] == ["audits"]
