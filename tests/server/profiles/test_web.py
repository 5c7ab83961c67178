"""The profile pages, the live-validation endpoint, exports and the JSON API."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from device_profiles import builtin_profile_texts
from server.auth.models import Role, User
from server.devices.models import Device
from server.profiles import services
from server.profiles.models import Profile
from tests.server.conftest import csrf_token, log_in_as
from tests.server.profiles.conftest import Places


def test_validate_endpoint_returns_errors_with_lines_and_previews(
    client: FlaskClient, lead: User, token_for: Callable[[User], dict[str, str]]
) -> None:
    headers = token_for(lead)
    good = client.post(
        "/api/v1/profiles/validate",
        json={"yaml_text": builtin_profile_texts()["ks1-ipad"]},
        headers=headers,
    ).get_json()
    assert good["valid"] is True and good["errors"] == []
    assert [p["target"] for p in good["previews"]] == ["apple", "chrome", "chromeos", "kiosk"]
    assert "org.trolley.oakfield.ks1-ipad" in good["previews"][0]["content"]
    assert good["warnings"]["kiosk"]
    bad = client.post(
        "/api/v1/profiles/validate",
        json={
            "yaml_text": "format: trolley-profile/1\nname: X\ndevice:\n  auto_lock_minutes: 30\n"
        },
        headers=headers,
    ).get_json()
    assert bad["valid"] is False and bad["previews"] == []
    (error,) = bad["errors"]
    assert (error["line"], error["key_path"]) == (4, "device.auto_lock_minutes")


def test_the_live_editor_uses_a_static_script_and_the_api(
    client: FlaskClient, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    log_in_as(client, lead)
    page = client.get(f"/profiles/{profile.id}/yaml").get_data(as_text=True)
    assert 'src="/static/profiles.js"' in page and "<script>" not in page
    assert 'data-validate-url="/api/v1/profiles/validate"' in page
    assert "iPad (.mobileconfig)" in page and "signed" in page
    script = client.get("/static/profiles.js")
    assert script.status_code == 200 and b"X-CSRFToken" in script.data
    script.close()
    # The browser's cookie session with the page's CSRF token reaches the API.
    token = re.search(r'data-csrf="([^"]+)"', page)
    assert token is not None
    checked = client.post(
        "/api/v1/profiles/validate",
        json={"yaml_text": "format: trolley-profile/1\nname: X\nbogus: 1\n"},
        headers={"X-CSRFToken": token.group(1)},
    )
    assert checked.status_code == 200 and checked.get_json()["errors"][0]["line"] == 3


def test_saving_in_the_editor_and_seeing_the_history(
    session: Session, client: FlaskClient, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    log_in_as(client, lead)
    token = csrf_token(client, f"/profiles/{profile.id}/yaml")
    text = services.latest_version(session, profile).yaml_text
    refused = client.post(
        f"/profiles/{profile.id}",
        data={"csrf_token": token, "yaml_text": text.replace("camera: allowed", "camera: maybe")},
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Line 9" in page and "camera: maybe" in page
    saved = client.post(
        f"/profiles/{profile.id}",
        data={
            "csrf_token": token,
            "yaml_text": text.replace("camera: allowed", "camera: blocked"),
            "note": "No cameras in exams",
        },
    )
    assert saved.status_code == 302
    history = client.get(f"/profiles/{profile.id}/history").get_data(as_text=True)
    assert "Version 2" in history and "Camera: Allowed → Blocked" in history
    assert "No cameras in exams" in history


def test_creating_from_the_library_on_the_list_page(client: FlaskClient, lead: User) -> None:
    log_in_as(client, lead)
    page = client.get("/profiles").get_data(as_text=True)
    assert "Built-in: KS2 iPad" in page
    token = csrf_token(client, "/profiles")
    made = client.post(
        "/profiles/new",
        data={"csrf_token": token, "name": "Year 6 iPads", "start_from": "ks2-ipad"},
    )
    assert made.status_code == 302
    editor = client.get(made.headers["Location"]).get_data(as_text=True)
    assert 'value="Year 6 iPads"' in editor
    advanced = client.get(made.headers["Location"] + "/yaml").get_data(as_text=True)
    assert "id: year-6-ipads" in advanced


def test_downloads(
    client: FlaskClient,
    lead: User,
    make_profile: Callable[..., Profile],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    profile = make_profile("KS2 iPads")
    log_in_as(client, lead)
    apple = client.get(f"/profiles/{profile.id}/versions/1/export?target=apple")
    assert apple.status_code == 200
    assert apple.mimetype == "application/x-apple-aspen-config"
    assert 'filename="ks2-ipads-v1.mobileconfig"' in apple.headers["Content-Disposition"]
    assert apple.data.startswith(b"<?xml")
    signed = client.get(f"/profiles/{profile.id}/versions/1/export?target=apple&signed=1")
    assert signed.status_code == 200 and signed.data[:1] == b"\x30"  # DER: a CMS SignedData
    _verify_with_school_ca(client, lead, signed.data, apple.data)
    assert client.get(f"/profiles/{profile.id}/versions/9/export?target=apple").status_code == 404
    assert client.get(f"/profiles/{profile.id}/versions/1/export?target=x").status_code == 400
    api = client.get(
        f"/api/v1/profiles/{profile.id}/export?target=kiosk", headers=token_for(lead)
    ).get_json()
    assert api["filename"] == "ks2-ipads-v1.kiosk.json" and api["encoding"] == "utf-8"
    assert '"auto_lock_minutes": 10' in api["content"]


def test_api_assignment_resolution_and_compliance(
    client: FlaskClient,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    device = make_device(home=places.trolley)
    profile = make_profile("KS2 iPads")
    headers = token_for(lead)
    made = client.post(
        "/api/v1/profiles/assignments",
        json={"profile_id": profile.id, "target_type": "location", "target_id": places.trolley.id},
        headers=headers,
    )
    assert made.status_code == 201
    assert made.get_json()["target"] == "Main site › Juniors › Year 4 › Year 4 trolley"
    technician = token_for(make_user(Role.TECHNICIAN))
    seen = client.get(f"/api/v1/devices/{device.asset_tag}/profile", headers=technician)
    body = seen.get_json()
    assert body["profile_name"] == "KS2 iPads" and body["version"] == 1
    assert body["reason"] == "Assigned to Year 4 trolley (this device's home)"
    assert body["state"] == "never_reported" and len(body["desired_sha256"]) == 64
    compliance = client.get("/api/v1/profiles/compliance", headers=headers).get_json()
    assert compliance["counts"]["never_reported"] == 1
    assert client.get("/api/v1/profiles/compliance", headers=technician).status_code == 403
    removed = client.delete(
        f"/api/v1/profiles/assignments/{made.get_json()['id']}", headers=headers
    )
    assert removed.status_code == 200
    assert client.get("/api/v1/profiles/assignments", headers=headers).get_json()["items"] == []


def test_api_exception_flow(
    client: FlaskClient,
    lead: User,
    teacher: User,
    places: Places,
    token_for: Callable[[User], dict[str, str]],
) -> None:
    asked = client.post(
        "/api/v1/filter-exceptions",
        json={
            "urls": ["https://www.scratch.mit.edu"],
            "reason": "Coding unit for the term",
            "class_label": "Year 4 Oak",
            "target_type": "location",
            "target_id": places.trolley.id,
            "starts_at": "2099-03-03T09:00:00Z",
            "ends_at": "2099-03-07T15:00:00Z",
        },
        headers=token_for(teacher),
    )
    assert asked.status_code == 400  # more than 60 days ahead
    body = {
        "urls": ["https://www.scratch.mit.edu"],
        "reason": "Coding unit for the term",
        "class_label": "Year 4 Oak",
        "target_type": "location",
        "target_id": places.trolley.id,
        "starts_at": services.utcnow().isoformat(),
        "ends_at": (services.utcnow() + timedelta(days=2)).isoformat(),
    }
    asked = client.post("/api/v1/filter-exceptions", json=body, headers=token_for(teacher))
    assert asked.status_code == 201, asked.get_json()
    exception_id = asked.get_json()["id"]
    teacher_token = token_for(teacher)
    assert (
        client.post(
            f"/api/v1/filter-exceptions/{exception_id}/approve", json={}, headers=teacher_token
        ).status_code
        == 403
    )
    approved = client.post(
        f"/api/v1/filter-exceptions/{exception_id}/approve",
        json={"note": "Fine"},
        headers=token_for(lead),
    ).get_json()
    assert approved["status"] == "approved" and approved["decided_by"] == lead.name
    mine = client.get("/api/v1/filter-exceptions", headers=teacher_token).get_json()["items"]
    assert [e["id"] for e in mine] == [exception_id]


def test_pages_for_the_lead_and_for_teachers(
    session: Session,
    client: FlaskClient,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    log_in_as(client, teacher)
    home = client.get("/").get_data(as_text=True)
    assert "Ask to unblock a website" in home and "Restriction profiles" not in home
    panel = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert "Assigned to Year 4 trolley (this device&#39;s home)" in panel
    assert "Never reported" in panel
    token = csrf_token(client, "/filter-exceptions/new")
    asked = client.post(
        "/filter-exceptions/new",
        data={
            "csrf_token": token,
            "urls": "https://www.scratch.mit.edu\n",
            "reason": "Coding unit for the term",
            "class_label": "Year 4 Oak",
            "target": "device",
            "asset_tag": device.asset_tag,
            "starts_at": "2030-01-06T09:00",
            "ends_at": "2030-01-07T15:00",
        },
    )
    assert asked.status_code == 400  # too far ahead, said plainly
    assert "60 days" in asked.get_data(as_text=True)
    assert client.get("/profiles").status_code == 403

    log_in_as(client, lead)
    home = client.get("/").get_data(as_text=True)
    assert "Restriction profiles" in home and "Never reported" not in home
    compliance = client.get("/profiles/compliance").get_data(as_text=True)
    assert device.asset_tag in compliance
    for path in ("/profiles/groups", "/profiles/activity", "/filter-exceptions"):
        assert client.get(path).status_code == 200, path


def _verify_with_school_ca(client: FlaskClient, lead: User, signed: bytes, unsigned: bytes) -> None:
    """The school CA made the signing certificate: OpenSSL verifies the signature against it."""
    import subprocess
    import tempfile
    from pathlib import Path

    from server.enrolment.models import SchoolAuthority

    session = client.application.extensions["trolley.db"].session()
    authority = session.query(SchoolAuthority).filter_by(school_id=lead.school_id).one()
    with tempfile.TemporaryDirectory() as folder:
        ca, blob, out = Path(folder, "ca.pem"), Path(folder, "p.der"), Path(folder, "out")
        ca.write_text(authority.ca_certificate_pem)
        blob.write_bytes(signed)
        done = subprocess.run(
            [
                "openssl",
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                str(blob),
                "-CAfile",
                str(ca),
                "-out",
                str(out),
            ],
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert out.read_bytes() == unsigned
