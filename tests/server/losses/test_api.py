"""The loss API: every step from the report to the closed case, with clear 4xx answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.losses.models import LossReport


def _body(device: Device, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "asset_tag": device.asset_tag,
        "kind": "lost",
        "last_seen_at": (utcnow() - timedelta(hours=1)).isoformat(),
        "last_seen_where": "School hall",
        "circumstances": "Not returned after the assembly.",
    }
    body.update(changes)
    return body


def test_the_whole_case_through_the_api(
    session: Session,
    client: FlaskClient,
    teacher: User,
    head: User,
    device: Device,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-LOSS-1, P-LOSS-2: report, assess, decide, record the ICO reference, close as stolen."""
    as_teacher, as_head = token_for(teacher), token_for(head)
    made = client.post("/api/v1/losses", json=_body(device), headers=as_teacher)
    assert made.status_code == 201, made.get_json()
    loss = made.get_json()
    assert loss["kind"] == "lost" and loss["open"] is True
    assert loss["clock"]["stage"] == "running" and loss["clock"]["remaining_seconds"] > 71 * 3600
    assert loss["lost_mode"]["state"] == "not_possible"
    assert [d["to"] for d in loss["deliveries"]] == ["head@oakfield.example"]
    assert loss["facts"] is None and loss["assessment"] is None  # the head's part
    url = f"/api/v1/losses/{loss['id']}"

    full = client.get(url, headers=as_head).get_json()
    assert full["facts"]["photo_count"] == 3
    assessed = client.post(
        f"{url}/assessment",
        json={"personal_data": "Photos of pupils.", "risk": "high", "risk_notes": "No passcode."},
        headers=as_head,
    )
    assert assessed.status_code == 200 and assessed.get_json()["assessment"]["risk"] == "high"
    decided = client.post(
        f"{url}/decision",
        json={"report_to_ico": True, "justification": "Faces of pupils, unlocked."},
        headers=as_head,
    )
    assert decided.status_code == 200
    assert decided.get_json()["clock"]["running"] is True
    assert any("Art. 34" in n for n in decided.get_json()["notes"])
    reported = client.post(f"{url}/ico-report", json={"reference": "ICO-00042"}, headers=as_head)
    assert reported.get_json()["clock"]["running"] is False
    assert reported.get_json()["clock"]["met"] is True
    closed = client.post(
        f"{url}/close", json={"outcome": "stolen", "reference": "MET/77/26"}, headers=as_head
    )
    assert closed.status_code == 200
    assert closed.get_json()["outcome"] == {
        "outcome": "stolen",
        "reference": "MET/77/26",
        "note": None,
        "closed_at": closed.get_json()["outcome"]["closed_at"],
        "closed_by": head.name,
    }
    record = client.get(f"{url}/record", headers=as_head).get_json()
    kinds = [s["kind"] for s in record["steps"]]
    assert {"reported", "notice", "email", "assessed", "decided", "ico_reported", "closed"} <= set(
        kinds
    )
    assert all(s["at"] for s in record["steps"])
    assert client.get(f"{url}/record", headers=as_teacher).status_code == 403
    listed = client.get("/api/v1/losses", headers=as_head).get_json()["items"]
    assert [x["id"] for x in listed] == [loss["id"]]
    session.refresh(device)
    assert device.status is DeviceStatus.STOLEN


def test_bad_input_gets_clear_answers_and_writes_nothing(
    session: Session,
    client: FlaskClient,
    teacher: User,
    head: User,
    device: Device,
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    as_teacher, as_head = token_for(teacher), token_for(head)
    gone = make_device(status=DeviceStatus.DISPOSED)
    disposed = client.post("/api/v1/losses", json=_body(gone), headers=as_teacher)
    assert disposed.status_code == 400 and "disposed of" in disposed.get_json()["error"]["message"]
    naive = client.post(
        "/api/v1/losses", json=_body(device, last_seen_at="2026-03-03T10:00:00"), headers=as_teacher
    )
    assert naive.status_code == 400
    assert session.scalar(select(func.count()).select_from(LossReport)) == 0

    loss = client.post("/api/v1/losses", json=_body(device), headers=as_teacher).get_json()
    twice = client.post("/api/v1/losses", json=_body(device), headers=as_teacher)
    assert twice.status_code == 409 and twice.get_json()["error"]["details"] == {
        "loss_id": loss["id"]
    }
    url = f"/api/v1/losses/{loss['id']}"
    close = client.post(f"{url}/close", json={"outcome": "found"}, headers=as_head)
    assert close.status_code == 400
    assert "cannot close without a decision" in close.get_json()["error"]["message"]
    future = client.post(
        f"{url}/awareness",
        json={"aware_at": (utcnow() + timedelta(hours=1)).isoformat(), "reason": "Typo"},
        headers=as_head,
    )
    assert future.status_code == 400
    assert future.get_json()["error"]["message"] == (
        "The time the school became aware cannot be in the future."
    )
    client.post(
        f"{url}/assessment",
        json={"personal_data": "None.", "risk": "unlikely", "risk_notes": "Locked."},
        headers=as_head,
    )
    empty = client.post(
        f"{url}/decision", json={"report_to_ico": False, "justification": ""}, headers=as_head
    )
    assert empty.status_code == 400 and "Write down why" in empty.get_json()["error"]["message"]
    assert client.get(url, headers=as_head).get_json()["decision"] is None
    assert client.post(f"{url}/decision", json={}, headers=as_teacher).status_code == 403
    assert client.get("/api/v1/losses/999999", headers=as_head).status_code == 404


def test_settings_and_the_governors_log(
    client: FlaskClient,
    head: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    as_head = token_for(head)
    saved = client.put(
        "/api/v1/losses/settings", json={"dpo_email": "dpo@trust.example"}, headers=as_head
    )
    assert saved.get_json() == {"dpo_email": "dpo@trust.example"}
    bad = client.put("/api/v1/losses/settings", json={"dpo_email": "nope"}, headers=as_head)
    assert bad.status_code == 400
    governor = token_for(make_user(Role.GOVERNOR))
    assert client.get("/api/v1/losses/log", headers=governor).get_json() == {"terms": []}
    assert client.get("/api/v1/losses", headers=governor).status_code == 403


def test_every_step_is_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in (
        "/api/v1/losses",
        "/api/v1/losses/{loss_id}",
        "/api/v1/losses/{loss_id}/assessment",
        "/api/v1/losses/{loss_id}/awareness",
        "/api/v1/losses/{loss_id}/decision",
        "/api/v1/losses/{loss_id}/ico-report",
        "/api/v1/losses/{loss_id}/lost-mode",
        "/api/v1/losses/{loss_id}/factory-reset",
        "/api/v1/losses/{loss_id}/wipe-photos",
        "/api/v1/losses/{loss_id}/close",
        "/api/v1/losses/{loss_id}/record",
        "/api/v1/losses/log",
        "/api/v1/losses/settings",
    ):
        assert path in paths, path
    assert "losses:manage" in paths["/api/v1/losses/{loss_id}/decision"]["post"]["description"]
