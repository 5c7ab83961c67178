"""The SBM's import pages: upload, check, choose columns, import; and the export download."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device
from server.imports.models import ImportUpload
from server.imports.services import reading
from server.schools.models import Location, School
from tests.server.conftest import csrf_token, log_in_as
from tests.server.imports.conftest import HEADINGS, counts, device, ipad, make_csv


def _upload(client: FlaskClient, data: bytes, name: str = "register.csv") -> object:
    token = csrf_token(client, "/imports")
    return client.post(
        "/imports",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _upload_id(response: object) -> str:
    location = response.headers["Location"]  # type: ignore[attr-defined]
    match = re.fullmatch(r"/imports/([A-Za-z0-9_-]+)", location)
    assert match, location
    return match.group(1)


def test_sbm_uploads_sees_every_problem_then_imports_the_fixed_file(
    client: FlaskClient,
    session: Session,
    school: School,
    places: dict[str, Location],
    sbm: User,
) -> None:
    """P-REG-1: upload → preview listing every bad row → fix → upload again → import."""
    log_in_as(client, sbm)
    bad = make_csv(
        [
            ipad("W-1", "DMPXK2Q1JF81"),
            ipad("W-2", "DMPXK2Q1JF82", **{"Cost (£)": "01/09/2021"}),
            ipad("W-2", "DMPXK2Q1JF83"),
        ]
    )
    response = _upload(client, bad)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 rows with problems" in page
    assert "This looks like a date, not a cost" in page and "Asset tag W-2 is also on row 3" in page
    assert "Import " not in re.sub(
        r"Import devices|Imported", "", page.split("What each column")[0]
    )
    before = counts(session, school)

    # committing a file with problems imports nothing
    upload_id = _upload_id(response)
    token = csrf_token(client, f"/imports/{upload_id}")
    refused = client.post(f"/imports/{upload_id}/commit", data={"csrf_token": token})
    assert refused.status_code == 400 and "Nothing was imported" in refused.get_data(as_text=True)
    assert counts(session, school) == before

    good = make_csv(
        [
            ipad("W-1", "DMPXK2Q1JF81"),
            ipad("W-2", "DMPXK2Q1JF82"),
            ipad("W-3", "DMPXK2Q1JF83"),
        ]
    )
    response = _upload(client, good)
    upload_id = _upload_id(response)
    page = client.get(f"/imports/{upload_id}").get_data(as_text=True)
    assert "Every row is good." in page and "Import 3 devices" in page
    token = csrf_token(client, f"/imports/{upload_id}")
    done = client.post(f"/imports/{upload_id}/commit", data={"csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "/devices"
    flashed = client.get("/devices").get_data(as_text=True)
    assert "Imported register.csv: 3 new, 0 updated, 0 unchanged." in flashed
    assert device(session, school, "W-3").purchase_cost_pence == 32900
    # the same upload cannot be imported twice
    again = client.post(f"/imports/{upload_id}/commit", data={"csrf_token": token})
    assert again.status_code == 409


def test_changing_the_columns_and_adding_places(
    client: FlaskClient,
    session: Session,
    school: School,
    places: dict[str, Location],
    sbm: User,
) -> None:
    log_in_as(client, sbm)
    data = make_csv(
        [["K-1", "DMPXK2Q1JF8J", "Apple iPad", "Music room"]],
        ["Kit number", "Serial", "What", "Kept"],
    )
    upload_id = _upload_id(_upload(client, data))
    page = client.get(f"/imports/{upload_id}").get_data(as_text=True)
    assert "No column holds the asset tag" in page
    token = csrf_token(client, f"/imports/{upload_id}")
    chosen = client.post(
        f"/imports/{upload_id}",
        data={
            "csrf_token": token,
            "columns-0": "asset_tag",
            "columns-1": "serial",
            "columns-2": "make_model",
            "columns-3": "location",
        },
    )
    assert chosen.status_code == 302
    page = client.get(f"/imports/{upload_id}").get_data(as_text=True)
    assert "“Music room” is not in Places yet" in page and "Places not in Trolley yet" in page
    client.post(
        f"/imports/{upload_id}",
        data={
            "csrf_token": token,
            "columns-0": "asset_tag",
            "columns-1": "serial",
            "columns-2": "make_model",
            "columns-3": "location",
            "create_locations": "y",
            "parent": str(places["site"].id),
        },
    )
    page = client.get(f"/imports/{upload_id}").get_data(as_text=True)
    assert "Every row is good." in page
    client.post(f"/imports/{upload_id}/commit", data={"csrf_token": token})
    music = session.scalars(select(Location).where(Location.name == "Music room")).one()
    assert music.parent_id == places["site"].id
    assert device(session, school, "K-1").home_location_id == music.id


def test_a_file_that_is_not_csv_gets_a_clear_message(
    client: FlaskClient,
    session: Session,
    school: School,
    sbm: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_in_as(client, sbm)
    response = _upload(client, b"PK\x03\x04" + bytes(500), "register.csv")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Excel workbook" in page
    assert session.scalars(select(ImportUpload)).all() == []
    # (a smaller limit here: the test client spools big bodies to files it never closes)
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 100 * 1024)
    response = _upload(client, b"x" * (300 * 1024))
    assert response.status_code == 400 and "0.3 MB" in response.get_data(as_text=True)
    token = csrf_token(client, "/imports")
    missing = client.post("/imports", data={"csrf_token": token})
    assert missing.status_code == 400 and "Choose the file to upload." in missing.get_data(
        as_text=True
    )


def test_uploads_are_private_to_their_uploader_and_expire(
    app: object,
    client: FlaskClient,
    session: Session,
    school: School,
    other_school: School,
    make_user: Callable[..., User],
    sbm: User,
) -> None:
    """An upload is scoped to its school and person; another SBM cannot see or import it."""
    log_in_as(client, sbm)
    upload_id = _upload_id(_upload(client, make_csv([ipad("A-1", "DMPXK2Q1JF8J")])))
    for other in (make_user(Role.SBM), make_user(Role.SBM, in_school=other_school)):
        stranger = app.test_client()  # type: ignore[attr-defined]
        log_in_as(stranger, other)
        assert stranger.get(f"/imports/{upload_id}").status_code == 404
        token = csrf_token(stranger, "/imports")
        assert (
            stranger.post(f"/imports/{upload_id}/commit", data={"csrf_token": token}).status_code
            == 404
        )
    kept = session.get(ImportUpload, upload_id)
    assert kept is not None
    kept.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    gone = client.get(f"/imports/{upload_id}")
    assert gone.status_code == 404 and "Upload the file again" in gone.get_data(as_text=True)


def test_teachers_cannot_import_but_can_export(
    client: FlaskClient,
    session: Session,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """Importing needs devices:write (SBM, technician); reading the register can export it."""
    make_device(asset_tag="EXP-1")
    log_in_as(client, make_user(Role.TEACHER))
    assert client.get("/imports").status_code == 403
    response = client.get("/devices/export?format=xlsx")
    assert response.status_code == 200
    assert 'filename="oakfield-devices-' in response.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[1][0] == "EXP-1"
    csv_response = client.get("/devices/export?format=csv")
    assert csv_response.mimetype == "text/csv" and csv_response.data.startswith(b"\xef\xbb\xbf")
    assert client.get("/devices/export?format=pdf").status_code == 400


def test_the_home_page_offers_import_to_the_sbm(
    client: FlaskClient, school: School, sbm: User, make_user: Callable[..., User]
) -> None:
    log_in_as(client, sbm)
    assert "Import devices from a spreadsheet" in client.get("/").get_data(as_text=True)
    log_in_as(client, make_user(Role.TEACHER))
    assert "Import devices from a spreadsheet" not in client.get("/").get_data(as_text=True)


def test_headings_are_shown_with_their_guess(
    client: FlaskClient, school: School, places: dict[str, Location], sbm: User
) -> None:
    log_in_as(client, sbm)
    upload_id = _upload_id(_upload(client, make_csv([ipad("A-1", "DMPXK2Q1JF8J")])))
    page = client.get(f"/imports/{upload_id}").get_data(as_text=True)
    for heading in HEADINGS:
        assert heading.replace("£", "&#163;") in page or heading in page
    assert '<option selected value="make_model">' in page or ('value="make_model" selected' in page)
