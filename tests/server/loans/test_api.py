"""The loans API and pages on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.commands.models import Command
from server.devices.models import Device
from server.loans.models import LessonPeriod, Loan, LoanItem, Scan
from server.schools.models import Location, School
from tests.server.conftest import csrf_token, log_in_as
from tests.server.loans.conftest import BASE

Headers = dict[str, str]


def key() -> str:
    return uuid.uuid4().hex


def scan(client: FlaskClient, headers: Headers, trolley: Location, code: str, **body: Any) -> Any:
    payload = {"mode": "out", "trolley": trolley.id, "code": code, "idempotency_key": key()}
    payload.update(body)
    return client.post("/api/v1/scans", json=payload, headers=headers)


def page_csrf(client: FlaskClient) -> str:
    page = client.get("/scan").get_data(as_text=True)
    match = re.search(r'data-csrf="([^"]+)"', page)
    assert match, "the scan page carries a CSRF token for its API calls"
    return match.group(1)


def test_scanning_out_and_back_through_the_api(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """P-TROLLEY-1: the scan endpoint answers with the outcome and the running count."""
    headers = token_for(teacher)
    out = scan(client, headers, trolley, fleet[0].asset_tag, class_label="Year 4 Oak")
    assert out.status_code == 200, out.get_json()
    body = out.get_json()
    assert body["outcome"] == "out" and body["tone"] == "ok" and body["can_undo"]
    assert body["counts"]["text"] == "1 of 5 out"
    scan(client, headers, trolley, f"{BASE}/d/{fleet[1].asset_tag}")
    loan = client.get(f"/api/v1/loans/{body['loan_id']}", headers=headers).get_json()
    assert loan["class_label"] == "Year 4 Oak" and loan["teacher"] == teacher.name
    assert sorted(loan["still_out"]) == [fleet[0].asset_tag, fleet[1].asset_tag]
    back = scan(client, headers, trolley, fleet[0].asset_tag, mode="in").get_json()
    assert back["outcome"] == "returned" and back["counts"]["text"] == "1 of 5 out"
    assert back["wipe"] == "not enrolled: wipe by hand" and back["tone"] == "warn"
    loan = client.get(f"/api/v1/loans/{body['loan_id']}", headers=headers).get_json()
    assert loan["still_out"] == [fleet[1].asset_tag]
    returned = next(i for i in loan["items"] if i["asset_tag"] == fleet[0].asset_tag)
    assert returned["state"] == "returned" and returned["wipe_state"] == "by_hand"
    assert returned["returned_to"]["name"] == "Year 4 trolley"
    mine = client.get("/api/v1/loans", headers=headers).get_json()
    assert [item["id"] for item in mine["items"]] == [body["loan_id"]]


def test_a_resent_scan_is_recorded_once(
    client: FlaskClient,
    session: Session,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """A dropped connection loses no scans, and re-sending one never records it twice."""
    headers = token_for(teacher)
    body = {"mode": "out", "trolley": trolley.id, "code": fleet[0].asset_tag}
    first = client.post(
        "/api/v1/scans", json={**body, "idempotency_key": "queued-0001"}, headers=headers
    )
    again = client.post(
        "/api/v1/scans", json={**body, "idempotency_key": "queued-0001"}, headers=headers
    )
    assert first.status_code == again.status_code == 200
    assert not first.get_json()["replayed"] and again.get_json()["replayed"]
    assert again.get_json()["message"] == first.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(Scan)) == 1
    assert session.scalar(select(func.count()).select_from(LoanItem)) == 1


def test_refusals_are_plain_and_record_nothing(
    client: FlaskClient,
    session: Session,
    token_for: Callable[[User], Headers],
    teacher: User,
    other_teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    headers = token_for(teacher)
    unknown = scan(client, headers, trolley, "OAK-NOPE-1")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "unknown_device"
    assert "Nothing was recorded" in unknown.get_json()["error"]["message"]
    malformed = scan(client, headers, trolley, "https://phish.example/d/TAG-0001")
    assert malformed.status_code == 400 and malformed.get_json()["error"]["code"] == "bad_code"
    assert scan(client, headers, trolley, fleet[0].asset_tag, extra=1).status_code == 400
    assert (
        scan(client, headers, trolley, fleet[0].asset_tag, idempotency_key="x").status_code == 400
    )
    assert session.scalar(select(func.count()).select_from(LoanItem)) == 0
    scan(client, token_for(other_teacher), trolley, fleet[0].asset_tag)
    held = scan(client, headers, trolley, fleet[0].asset_tag)
    assert held.status_code == 409
    error = held.get_json()["error"]
    assert error["code"] == "held_by_other" and error["details"]["holder"] == other_teacher.name
    taken = scan(client, headers, trolley, fleet[0].asset_tag, transfer=True).get_json()
    assert taken["outcome"] == "transferred"


def test_whole_trolley_out_and_a_return_with_condition(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """P-AUDIT-2: the loans API takes a trolley out and returns devices with their condition."""
    headers = token_for(teacher)
    made = client.post(
        "/api/v1/loans",
        json={"trolley": trolley.id, "class_label": "Year 4 Ash", "all": True},
        headers=headers,
    )
    assert made.status_code == 201, made.get_json()
    loan = made.get_json()
    assert len(loan["items"]) == 5 and loan["counts"]["text"] == "5 of 5 out"
    back = client.post(
        f"/api/v1/loans/{loan['id']}/return",
        json={"asset_tags": [fleet[0].asset_tag], "condition": ["case_missing"]},
        headers=headers,
    ).get_json()
    returned = next(i for i in back["items"] if i["asset_tag"] == fleet[0].asset_tag)
    assert returned["condition"] == ["case_missing"]
    assert len(back["still_out"]) == 4
    both = client.post(
        "/api/v1/loans",
        json={"trolley": trolley.id, "all": True, "asset_tags": ["TAG-0001"]},
        headers=headers,
    )
    assert both.status_code == 400
    status = client.get(f"/api/v1/loans/trolleys/{trolley.id}", headers=headers).get_json()
    assert status["counts"]["text"] == "4 of 5 out" and len(status["still_out"]) == 4


def test_loans_of_another_school_are_not_found(
    client: FlaskClient,
    session: Session,
    token_for: Callable[[User], Headers],
    make_user: Callable[..., User],
    other_school: School,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    made = scan(client, token_for(teacher), trolley, fleet[0].asset_tag).get_json()
    outsider = token_for(make_user(Role.TEACHER, in_school=other_school))
    assert client.get(f"/api/v1/loans/{made['loan_id']}", headers=outsider).status_code == 404
    assert scan(client, outsider, trolley, fleet[1].asset_tag).status_code == 404
    assert client.get("/api/v1/loans/999999", headers=outsider).status_code == 404


def test_undo_through_the_api(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    headers = token_for(teacher)
    scan(client, headers, trolley, fleet[0].asset_tag, idempotency_key="undo-api-0001")
    undone = client.post(
        "/api/v1/scans/undo", json={"idempotency_key": "undo-api-0001"}, headers=headers
    )
    assert undone.status_code == 200
    assert undone.get_json()["counts"]["text"] == "0 of 5 out"
    again = client.post(
        "/api/v1/scans/undo", json={"idempotency_key": "undo-api-0001"}, headers=headers
    )
    assert again.status_code == 409


def test_the_api_is_documented(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path, method in [
        ("/api/v1/scans", "post"),
        ("/api/v1/scans/undo", "post"),
        ("/api/v1/loans", "post"),
        ("/api/v1/loans", "get"),
        ("/api/v1/loans/{loan_id}", "get"),
        ("/api/v1/loans/{loan_id}/return", "post"),
        ("/api/v1/loans/trolleys/{trolley_id}", "get"),
        ("/api/v1/loans/home", "post"),
    ]:
        assert method in paths[path], path
    body = paths["/api/v1/scans"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ScanIn")


def test_the_scan_page_and_its_session_calls(
    client: FlaskClient, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """The page's own calls use the log-in cookie and its CSRF token."""
    log_in_as(client, teacher)
    page = client.get(f"/scan?trolley={trolley.id}").get_data(as_text=True)
    assert "Year 4 trolley" in page and "0 of 5 out" in page
    assert "vendor/jsQR-1.4.0.js" in page and "scan.js" in page
    assert 'type="time"' in page and 'value="' in page
    headers = {"X-CSRFToken": page_csrf(client)}
    assert scan(client, {}, trolley, fleet[0].asset_tag).status_code == 400  # no CSRF token
    assert scan(client, headers, trolley, fleet[0].asset_tag).status_code == 200


def test_the_device_page_offers_one_tap_take_out_and_return(
    client: FlaskClient, session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """A phone's camera opens the label URL; the device page takes it out or back in one tap."""
    log_in_as(client, teacher)
    tag = fleet[0].asset_tag
    page = client.get(f"/d/{tag}", follow_redirects=True).get_data(as_text=True)
    assert "Take out</button>" in page
    token = csrf_token(client, f"/devices/{tag}")
    done = client.post(
        f"/devices/{tag}/take-out", data={"csrf_token": token}, follow_redirects=True
    )
    text = done.get_data(as_text=True)
    assert f"{tag} is out with you. 1 of 5 out." in text
    assert "Return to Year 4 trolley</button>" in text
    session.refresh(fleet[0])
    assert fleet[0].holder_id == teacher.id
    back = client.post(f"/devices/{tag}/return", data={"csrf_token": token}, follow_redirects=True)
    assert f"{tag} is back in Year 4 trolley." in back.get_data(as_text=True)
    session.refresh(fleet[0])
    assert fleet[0].holder_id is None and fleet[0].current_location_id == trolley.id


def test_the_device_page_offers_a_take_over(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    other_teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    scan(client, token_for(other_teacher), trolley, fleet[0].asset_tag)
    log_in_as(client, teacher)
    tag = fleet[0].asset_tag
    page = client.get(f"/devices/{tag}").get_data(as_text=True)
    assert f"Take over from {other_teacher.name}" in page
    token = csrf_token(client, f"/devices/{tag}")
    done = client.post(
        f"/devices/{tag}/take-out",
        data={"csrf_token": token, "transfer": "y"},
        follow_redirects=True,
    )
    assert f"taken over from {other_teacher.name}" in done.get_data(as_text=True)


def test_the_loan_page_shows_each_wipe(
    client: FlaskClient,
    session: Session,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    enrol: Callable[[Device], Any],
    ack: Callable[..., Command],
) -> None:
    """P-PHOTO-1: "wipe pending" until the device answers, then "wiped (N photos deleted)"."""
    enrol(fleet[0])
    headers = token_for(teacher)
    made = scan(client, headers, trolley, fleet[0].asset_tag).get_json()
    scan(client, headers, trolley, fleet[1].asset_tag)
    scan(client, headers, trolley, fleet[0].asset_tag, mode="in")
    log_in_as(client, teacher)
    page = client.get(f"/loans/{made['loan_id']}").get_data(as_text=True)
    assert "wipe pending" in page and "Still out (1)" in page
    ack(session.scalars(select(Command)).one(), deleted=3, remaining=0)
    page = client.get(f"/loans/{made['loan_id']}").get_data(as_text=True)
    assert "wiped (3 photos deleted)" in page
    loan = client.get(f"/api/v1/loans/{made['loan_id']}", headers=headers).get_json()
    wiped = next(i for i in loan["items"] if i["asset_tag"] == fleet[0].asset_tag)
    assert (wiped["wipe_state"], wiped["photos_deleted"]) == ("done", 3)


def test_the_sbm_edits_lesson_times(
    client: FlaskClient, session: Session, sbm: User, teacher: User
) -> None:
    log_in_as(client, teacher)
    assert client.get("/loans/periods").status_code == 403
    log_in_as(client, sbm)
    page = client.get("/loans/periods").get_data(as_text=True)
    assert "Lesson 1" in page and "15:30" in page
    token = csrf_token(client, "/loans/periods")
    data = {
        "csrf_token": token,
        "periods-0-name": "Morning",
        "periods-0-starts": "09:00",
        "periods-0-ends": "12:00",
        "periods-0-weekday": "",
        "periods-1-name": "Afternoon",
        "periods-1-starts": "13:00",
        "periods-1-ends": "11:00",
        "periods-1-weekday": "",
        "day_ends": "15:15",
    }
    wrong = client.post("/loans/periods", data=data)
    assert wrong.status_code == 400 and "Afternoon must end after it starts" in wrong.get_data(
        as_text=True
    )
    saved = client.post(
        "/loans/periods", data={**data, "periods-1-ends": "15:00"}, follow_redirects=True
    )
    assert "Lesson times saved." in saved.get_data(as_text=True)
    names = session.scalars(select(LessonPeriod.name).order_by(LessonPeriod.starts)).all()
    assert names == ["Morning", "Afternoon"]


def test_home_cards_for_a_teacher_and_the_computing_lead(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    lead: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    scan(client, token_for(teacher), trolley, fleet[0].asset_tag)
    log_in_as(client, teacher)
    home = client.get("/").get_data(as_text=True)
    assert "Trolley loans" in home and "You have <strong>1</strong> device out now" in home
    assert "Wipes pending" not in home
    log_in_as(client, lead)
    home = client.get("/").get_data(as_text=True)
    assert "Wipes pending: 0" in home and "1 of 5" in home and "Overdue:" in home
    out = client.get("/loans/out").get_data(as_text=True)
    assert fleet[0].asset_tag in out and teacher.name in out


def test_a_home_loan_is_asked_for_and_approved_by_someone_else(
    client: FlaskClient,
    session: Session,
    teacher: User,
    sbm: User,
    fleet: list[Device],
) -> None:
    """P-TROLLEY-2: a device goes home only with the SBM's or headteacher's approval."""
    log_in_as(client, teacher)
    token = csrf_token(client, "/loans/home")
    asked = client.post(
        "/loans/home",
        data={
            "csrf_token": token,
            "asset_tags": fleet[0].asset_tag,
            "return_by": "2099-01-01",
            "reason": "Report writing",
        },
    )
    assert asked.status_code == 400  # too far ahead
    from datetime import date, timedelta

    soon = (date.today() + timedelta(days=3)).isoformat()
    asked = client.post(
        "/loans/home",
        data={
            "csrf_token": token,
            "asset_tags": fleet[0].asset_tag,
            "return_by": soon,
            "reason": "Report writing",
        },
        follow_redirects=True,
    )
    assert "Asked." in asked.get_data(as_text=True)
    loan = session.scalars(select(Loan)).one()
    refused = client.post(
        f"/loans/home/{loan.id}/decide",
        data={"csrf_token": token, "decision": "approve"},
        follow_redirects=True,
    )
    assert "Only the school business manager or the headteacher" in refused.get_data(as_text=True)
    log_in_as(client, sbm)
    assert "1 home loan request" in client.get("/").get_data(as_text=True)  # waiting for you
    token = csrf_token(client, "/loans/home")
    assert "Report writing" in client.get("/loans/home").get_data(as_text=True)
    done = client.post(
        f"/loans/home/{loan.id}/decide",
        data={"csrf_token": token, "decision": "approve"},
        follow_redirects=True,
    )
    assert "Approved" in done.get_data(as_text=True)
    session.refresh(fleet[0])
    assert fleet[0].holder_id == teacher.id


@pytest.mark.parametrize("path", ["/loans", "/loans/out", "/loans/damage", "/loans/home", "/scan"])
def test_every_loan_page_renders(
    client: FlaskClient, teacher: User, fleet: list[Device], trolley: Location, path: str
) -> None:
    log_in_as(client, teacher)
    assert client.get(path).status_code == 200


def test_impossible_ids_and_unstorable_text_get_a_4xx(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
) -> None:
    """Anything a client sends that is wrong gets a plain 4xx, never a server error."""
    headers = token_for(teacher)
    huge = 2**70
    assert client.get(f"/api/v1/loans/{huge}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/loans/trolleys/{huge}", headers=headers).status_code == 404
    body = {"mode": "out", "trolley": huge, "code": fleet[0].asset_tag}
    assert client.post("/api/v1/scans", json=body, headers=headers).status_code == 400
    odd = scan(client, headers, trolley, fleet[0].asset_tag, class_label="Year 4 \ud800")
    assert odd.status_code == 400
    log_in_as(client, teacher)
    assert client.get(f"/loans/{huge}").status_code == 404
