"""Disposal pages and API: forms with clear errors, the printable record, roles (P-DISPOSE-1)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.disposals import services
from server.disposals.models import Disposal, DisposalStatus, WipeMethod
from server.openapi import openapi_document
from server.schools.models import School
from tests.server.conftest import csrf_token, log_in_as, post_confirmed


def test_the_api_prepares_and_the_sbm_completes_a_batch(
    client: FlaskClient,
    session: Session,
    sbm: User,
    technician: User,
    reset_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-DISPOSE-1: every step through the API; only the SBM completes."""
    device = reset_device()
    tech = token_for(technician)
    created = client.post(
        "/api/v1/disposals",
        json={"agency_name": "Green IT Recycling Ltd", "collection_date": "18/07/2025"},
        headers=tech,
    )
    assert created.status_code == 201, created.get_json()
    batch = created.get_json()
    assert batch["status"] == "draft" and batch["collection_date"] == "2025-07-18"
    assert {p["field"] for p in batch["problems"]} == {
        "waste_transfer_note",
        "erasure_certificate",
        "devices",
    }
    url = f"/api/v1/disposals/{batch['id']}"
    patched = client.patch(
        url,
        json={"waste_transfer_note": "WTN-1", "erasure_certificate": "CERT-1"},
        headers=tech,
    )
    assert patched.status_code == 200
    added = client.post(
        f"{url}/devices",
        json={"asset_tag": device.asset_tag, "wipe_method": "forensic_wipe"},
        headers=tech,
    )
    assert added.status_code == 201, added.get_json()
    line = client.patch(
        f"{url}/devices/{device.asset_tag}", json={"certificate_line": "L-7"}, headers=tech
    )
    assert line.get_json()["devices"][0]["certificate_line"] == "L-7"
    assert line.get_json()["problems"] == []
    refused = client.post(f"{url}/complete", headers=tech)
    assert refused.status_code == 403
    assert "school business manager" in refused.get_json()["error"]["message"]
    done = client.post(f"{url}/complete", headers=token_for(sbm))
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "completed" and body["devices"][0]["status"] == "disposed"
    assert body["completed_by"] == sbm.name
    listing = client.get("/api/v1/disposals", headers=tech).get_json()["items"]
    assert [(b["reference"], b["device_count"]) for b in listing] == [(body["reference"], 1)]
    again = client.patch(url, json={"notes": "late"}, headers=tech)
    assert again.status_code == 409
    history = client.get(f"/api/v1/devices/{device.asset_tag}", headers=tech).get_json()
    assert history["status"] == "disposed" and any(
        e["kind"] == "status" and body["reference"] in e["summary"] for e in history["timeline"]
    )
    found = client.get(f"/api/v1/devices/{device.asset_tag}/erasures", headers=tech).get_json()
    assert found["disposal_reference"] == body["reference"] and not found["can_join_batch"]


def test_a_loaned_device_is_refused_through_the_api_with_the_reason(
    client: FlaskClient,
    sbm: User,
    batch: Disposal,
    make_user: Callable[..., User],
    reset_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-DISPOSE-1 (bad input): a disposal of a device that is out on loan."""
    teacher = make_user(Role.TEACHER)
    device = reset_device(holder_id=teacher.id)
    response = client.post(
        f"/api/v1/disposals/{batch.id}/devices",
        json={"asset_tag": device.asset_tag, "wipe_method": "forensic_wipe"},
        headers=token_for(sbm),
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert f"{device.asset_tag} is out on loan with {teacher.name}" in error["message"]
    assert error["details"][0]["field"] == "asset_tag"
    assert (
        client.get(f"/api/v1/disposals/{batch.id}", headers=token_for(sbm)).get_json()["devices"]
        == []
    )


def test_bad_requests_get_clear_4xx_answers(
    client: FlaskClient,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    headers = token_for(sbm)
    bad_date = client.post(
        "/api/v1/disposals", json={"collection_date": "31/02/2025"}, headers=headers
    )
    assert bad_date.status_code == 400
    assert bad_date.get_json()["error"]["details"][0]["field"] == "collection_date"
    unknown = client.post("/api/v1/disposals", json={"agency": "x"}, headers=headers)
    assert unknown.status_code == 400
    wipe = client.post(
        f"/api/v1/disposals/{batch.id}/devices",
        json={"asset_tag": "X", "wipe_method": "hammer"},
        headers=headers,
    )
    assert wipe.status_code == 400
    assert client.get("/api/v1/disposals/999999", headers=headers).status_code == 404
    assert (
        client.delete(f"/api/v1/disposals/{batch.id}/devices/NOPE", headers=headers).status_code
        == 404
    )
    device = reset_device()
    evidence = client.post(
        f"/api/v1/devices/{device.asset_tag}/erasures",
        json={"method": "destroyed", "evidence": ""},
        headers=headers,
    )
    assert evidence.status_code == 400
    recorded = client.post(
        f"/api/v1/devices/{device.asset_tag}/erasures",
        json={"method": "destroyed", "evidence": "Drive crushed on site"},
        headers=headers,
    )
    assert recorded.status_code == 201
    assert recorded.get_json()["erasures"][0]["source"] == "technician_evidence"
    discarded = client.delete(f"/api/v1/disposals/{batch.id}", headers=headers)
    assert discarded.get_json() == {"id": batch.id, "devices_kept": []}


def test_the_disposal_pages_for_the_sbm(
    client: FlaskClient,
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    reset_device: Callable[..., Device],
) -> None:
    """P-DISPOSE-1: forms say what is wrong; the SBM completes with a confirmation."""
    ready, loaned = reset_device(), reset_device(holder_id=make_user(Role.TEACHER).id)
    log_in_as(client, sbm)
    token = csrf_token(client, "/disposals/new")
    bad = client.post(
        "/disposals/new", data={"csrf_token": token, "collection_date": "next Tuesday"}
    )
    assert bad.status_code == 400 and "not a date like 01/09/2021" in bad.get_data(as_text=True)
    made = client.post(
        "/disposals/new",
        data={
            "csrf_token": token,
            "collection_date": "01/07/2025",
            "agency_name": "Green IT Recycling Ltd",
            "waste_transfer_note": "WTN-2025-0412",
            "erasure_certificate": "CERT-88231",
        },
    )
    assert made.status_code == 302
    page_url = made.headers["Location"]
    batch_id = int(page_url.rsplit("/", 1)[1])
    add = f"/disposals/{batch_id}/devices"
    refused = client.post(
        add,
        data={"csrf_token": token, "asset_tag": loaned.asset_tag, "wipe_method": "forensic_wipe"},
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "is out on loan with" in text
    assert 'aria-invalid="true"' in text
    missing = client.post(add, data={"csrf_token": token, "wipe_method": "forensic_wipe"})
    assert missing.status_code == 400 and "Scan or type the asset tag." in missing.get_data(
        as_text=True
    )
    ok = client.post(
        add,
        data={"csrf_token": token, "asset_tag": ready.asset_tag, "wipe_method": "forensic_wipe"},
    )
    assert ok.status_code == 302
    page = client.get(page_url).get_data(as_text=True)
    assert ready.serial in page and "Everything is in place" in page
    unticked = client.post(f"/disposals/{batch_id}/complete", data={"csrf_token": token})
    assert unticked.status_code == 400
    assert "Tick to confirm" in unticked.get_data(as_text=True)
    session.expire_all()
    assert session.get(Device, ready.id).status is DeviceStatus.IN_STOCK  # type: ignore[union-attr]
    done = post_confirmed(
        client, f"/disposals/{batch_id}/complete", {"csrf_token": token, "confirm": "y"}
    )
    assert done.status_code == 302
    final = client.get(page_url).get_data(as_text=True)
    assert "Completed" in final and "Add a device" not in final
    session.expire_all()
    assert session.get(Device, ready.id).status is DeviceStatus.DISPOSED  # type: ignore[union-attr]
    device_page = client.get(f"/devices/{ready.asset_tag}").get_data(as_text=True)
    assert "Disposed of" in device_page and f"DSP-{batch_id:05d}" in device_page


def test_a_technician_prepares_but_cannot_complete(
    client: FlaskClient, technician: User, batch: Disposal, reset_device: Callable[..., Device]
) -> None:
    device = reset_device()
    log_in_as(client, technician)
    token = csrf_token(client, f"/disposals/{batch.id}")
    page = client.get(f"/disposals/{batch.id}").get_data(as_text=True)
    assert "The school business manager completes a disposal" in page
    client.post(
        f"/disposals/{batch.id}/devices",
        data={"csrf_token": token, "asset_tag": device.asset_tag, "wipe_method": "forensic_wipe"},
    )
    refused = client.post(
        f"/disposals/{batch.id}/complete", data={"csrf_token": token, "confirm": "y"}
    )
    assert refused.status_code == 403


def test_the_printable_disposal_record(
    client: FlaskClient,
    session: Session,
    sbm: User,
    batch: Disposal,
    reset_device: Callable[..., Device],
) -> None:
    """P-DISPOSE-1: agency's acceptance, certificate numbers, each serial and wipe method."""
    devices = [reset_device(), reset_device()]
    services.add_device(
        session, sbm, batch.id, devices[0].asset_tag, wipe_method=WipeMethod.FORENSIC_WIPE
    )
    services.add_device(
        session, sbm, batch.id, devices[1].asset_tag, wipe_method=WipeMethod.PHYSICAL_DESTRUCTION
    )
    log_in_as(client, sbm)
    draft = client.get(f"/disposals/{batch.id}/record").get_data(as_text=True)
    assert "DRAFT" in draft
    services.complete_batch(session, sbm, batch.id)
    record = client.get(f"/disposals/{batch.id}/record").get_data(as_text=True)
    assert "DRAFT" not in record
    for text in (
        "Green IT Recycling Ltd",
        "accepts responsibility for destroying all personal data",
        "WTN-2025-0412",
        "CERT-88231",
        "18 July 2025",
        devices[0].serial,
        devices[1].serial,
        "Forensic wipe",
        "Physical destruction",
        "For the agency",
        "For the school",
        "Oakfield Primary",
    ):
        assert text in record, text


def test_home_card_shows_drafts_to_those_who_prepare_them(
    client: FlaskClient, sbm: User, batch: Disposal, make_user: Callable[..., User]
) -> None:
    log_in_as(client, sbm)
    home = client.get("/").get_data(as_text=True)
    assert batch.reference in home and "draft" in home
    log_in_as(client, make_user(Role.TEACHER))
    assert batch.reference not in client.get("/").get_data(as_text=True)


def test_another_school_cannot_see_or_touch_a_batch(
    client: FlaskClient,
    batch: Disposal,
    other_school: School,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: batches are scoped to their school on pages and in the API."""
    theirs = make_user(Role.SBM, in_school=other_school)
    headers = token_for(theirs)
    assert client.get(f"/api/v1/disposals/{batch.id}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/disposals/{batch.id}/complete", headers=headers).status_code == 404
    assert client.get("/api/v1/disposals", headers=headers).get_json()["items"] == []
    log_in_as(client, theirs)
    assert client.get(f"/disposals/{batch.id}/record").status_code == 404
    assert batch.reference not in client.get("/disposals").get_data(as_text=True)


def test_every_disposal_action_is_in_the_openapi_document(app: object) -> None:
    paths = openapi_document()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/disposals"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/disposals/{batch_id}"])
    assert "post" in paths["/api/v1/disposals/{batch_id}/devices"]
    assert {"patch", "delete"} <= set(paths["/api/v1/disposals/{batch_id}/devices/{asset_tag}"])
    assert "post" in paths["/api/v1/disposals/{batch_id}/complete"]
    assert {"get", "post"} <= set(paths["/api/v1/devices/{asset_tag}/erasures"])
    assert DisposalStatus.COMPLETED.value in str(openapi_document()["components"])
