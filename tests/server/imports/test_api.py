"""The import and export API: preview, change the columns, commit all or nothing."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.schools.models import Location, School
from tests.server.imports.conftest import counts, device, ipad, make_csv

Headers = Callable[[User], dict[str, str]]


def test_preview_then_commit(
    client: FlaskClient,
    session: Session,
    school: School,
    places: dict[str, Location],
    sbm: User,
    token_for: Headers,
) -> None:
    """P-REG-1: the API previews every problem by row and column, and commits all or nothing."""
    headers = token_for(sbm)
    text = make_csv(
        [ipad("A-1", "DMPXK2Q1JF81"), ipad("A-2", "DMPXK2Q1JF82", **{"Cost (£)": "cheap"})]
    ).decode()
    response = client.post("/api/v1/imports", json={"csv": text}, headers=headers)
    assert response.status_code == 201, response.get_json()
    preview = response.get_json()
    assert preview["ok"] is False and preview["rows"] == 2 and preview["new"] == 1
    assert preview["problems"] == [
        {
            "row": 3,
            "column": "E",
            "heading": "Cost (£)",
            "message": "Write the cost like £329.00.",
            "value": "cheap",
        }
    ]
    assert preview["columns"][2] == {
        "column": "C",
        "heading": "Make/Model",
        "holds": "make_model",
        "samples": ["Apple iPad (9th generation)", "Apple iPad (9th generation)"],
    }
    before = counts(session, school)
    refused = client.post(f"/api/v1/imports/{preview['id']}/commit", headers=headers)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["message"].startswith("Nothing was imported: 1 row(s) have problems.")
    assert error["details"][0]["field"] == "Row 3, column E (Cost (£))"
    assert counts(session, school) == before

    # Ignoring the cost column makes the file good.
    mapping = [c["holds"] for c in preview["columns"]]
    mapping[4] = None
    changed = client.patch(
        f"/api/v1/imports/{preview['id']}", json={"mapping": mapping}, headers=headers
    ).get_json()
    assert changed["ok"] is True and changed["new"] == 2
    assert [p["action"] for p in changed["planned"]] == ["new", "new"]
    done = client.post(f"/api/v1/imports/{preview['id']}/commit", headers=headers)
    assert done.status_code == 200
    assert done.get_json() == {
        "id": preview["id"],
        "new": 2,
        "updated": 0,
        "unchanged": 0,
        "places_created": [],
    }
    assert device(session, school, "A-2").purchase_cost_pence is None


def test_windows_1252_bytes_as_base64(
    client: FlaskClient,
    session: Session,
    school: School,
    places: dict[str, Location],
    sbm: User,
    token_for: Headers,
) -> None:
    data = make_csv([ipad("B-1", "DMPXK2Q1JF8J", **{"Cost (£)": "£99.00"})], encoding="cp1252")
    body = {"csv_base64": base64.b64encode(data).decode(), "filename": "Register 2024.csv"}
    preview = client.post("/api/v1/imports", json=body, headers=token_for(sbm)).get_json()
    assert preview["encoding"] == "Windows-1252" and preview["filename"] == "Register 2024.csv"
    assert preview["ok"]


def test_bad_requests_are_clear_400s(
    client: FlaskClient, school: School, sbm: User, token_for: Headers
) -> None:
    headers = token_for(sbm)
    for body in (
        {},
        {"csv": "a,b\n", "csv_base64": "YQ=="},
        {"csv_base64": "not base64!"},
        {"csv": "Asset,Serial\n", "mapping": ["nonsense", None]},
    ):
        response = client.post("/api/v1/imports", json=body, headers=headers)
        assert response.status_code == 400, body
    not_csv = client.post(
        "/api/v1/imports",
        json={"csv_base64": base64.b64encode(b"PK\x03\x04" + bytes(50)).decode()},
        headers=headers,
    )
    assert not_csv.status_code == 400 and not_csv.get_json()["error"]["code"] == "not_csv"
    wrong_length = client.post(
        "/api/v1/imports", json={"csv": "Asset,Serial\nA,B\n", "mapping": ["asset_tag"]}
    )
    assert wrong_length.status_code == 401  # no token: nothing is looked at
    wrong_length = client.post(
        "/api/v1/imports",
        json={"csv": "Asset,Serial\nA,B\n", "mapping": ["asset_tag"]},
        headers=headers,
    )
    assert wrong_length.status_code == 400
    assert client.get("/api/v1/imports/nope", headers=headers).status_code == 404


def test_permissions_and_isolation(
    client: FlaskClient,
    school: School,
    other_school: School,
    make_user: Callable[..., User],
    sbm: User,
    token_for: Headers,
) -> None:
    teacher = token_for(make_user(Role.TEACHER))
    text = make_csv([ipad("C-1", "DMPXK2Q1JF8J")]).decode()
    assert client.post("/api/v1/imports", json={"csv": text}, headers=teacher).status_code == 403
    preview = client.post("/api/v1/imports", json={"csv": text}, headers=token_for(sbm))
    upload_id = preview.get_json()["id"]
    technician = token_for(make_user(Role.TECHNICIAN))
    assert client.get(f"/api/v1/imports/{upload_id}", headers=technician).status_code == 404
    elsewhere = token_for(make_user(Role.SBM, in_school=other_school))
    commit = client.post(f"/api/v1/imports/{upload_id}/commit", headers=elsewhere)
    assert commit.status_code == 404


def test_export_through_the_api(
    client: FlaskClient,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Headers,
) -> None:
    make_device(asset_tag="API-1")
    headers = token_for(make_user(Role.TEACHER))
    body = client.get("/api/v1/devices/export?format=xlsx", headers=headers).get_json()
    assert body["devices"] == 1 and body["filename"].endswith(".xlsx")
    book = load_workbook(io.BytesIO(base64.b64decode(body["content_base64"])))
    assert list(book.active.iter_rows(values_only=True))[1][0] == "API-1"
    body = client.get("/api/v1/devices/export", headers=headers).get_json()
    assert base64.b64decode(body["content_base64"]).decode("utf-8-sig").startswith("Asset tag,")
    bad = client.get("/api/v1/devices/export?format=pdf", headers=headers)
    assert bad.status_code == 400


def test_the_openapi_document_describes_imports(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"post"} <= set(paths["/api/v1/imports"])
    assert {"get", "patch"} <= set(paths["/api/v1/imports/{upload_id}"])
    assert "post" in paths["/api/v1/imports/{upload_id}/commit"]
    assert "get" in paths["/api/v1/devices/export"]
    assert "post" in paths["/api/v1/labels"]
