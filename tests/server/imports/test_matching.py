"""Matching rows to devices: no silent re-tagging, every change shown before it is made."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device, Platform
from server.imports.services import guess_mapping
from server.schools.models import Location, School
from tests.server.conftest import csrf_token, log_in_as
from tests.server.imports.conftest import HEADINGS, counts, device, ipad, make_csv, problems

Run = Callable[..., tuple[Any, Any]]


def test_a_new_tag_carrying_another_devices_serial_is_an_error(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    """P-REG-1: a row that looks new never silently renames and moves an existing device."""
    make_device(asset_tag="OLD-1", serial="DMPXK2Q1OLD1", home=places["classroom"])
    before = counts(session, school)
    plan, result = run_import(make_csv([ipad("NEW-1", "DMPXK2Q1OLD1", Room="School office")]))
    assert result is None and plan.summary == {"new": 0, "updated": 0, "unchanged": 0}
    assert problems(plan) == [
        (
            2,
            "Serial Number",
            "Serial number DMPXK2Q1OLD1 belongs to OLD-1 in the register. If NEW-1 is OLD-1's "
            "new asset tag, choose “Re-tag” for this row; otherwise correct the serial number.",
        )
    ]
    assert counts(session, school) == before


def test_re_tag_when_chosen_renames_the_device(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    old = make_device(asset_tag="OLD-1", serial="DMPXK2Q1OLD1", home=places["classroom"])
    plan, result = run_import(make_csv([ipad("NEW-1", "DMPXK2Q1OLD1")]), retag=["NEW-1"])
    assert plan.ok, problems(plan)
    assert (result.created, result.updated) == (0, 1)
    session.refresh(old)
    assert old.asset_tag == "NEW-1"


def test_the_dry_run_shows_before_and_after_for_every_field(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    make_device(
        asset_tag="U-1",
        serial="DMPXK2Q1JF81",
        make="Apple",
        model="iPad (9th generation)",
        purchase_cost_pence=32900,
        supplier="XMA",
        home=places["classroom"],
    )
    row = ipad("U-1", "DMPXK2Q1JF81", **{"Cost (£)": "£1,349.99", "Supplier": "Stone"})
    plan, result = run_import(make_csv([row]), dry_run=True)
    assert result is None and plan.summary["updated"] == 1
    (planned,) = plan.rows
    shown = {label: (before, after) for label, before, after in planned.shown}
    assert shown["Cost"] == ("£329.00", "£1,349.99")
    assert shown["Supplier"] == ("XMA", "Stone")
    assert shown["Purchase date"] == ("—", "01/09/2021")


def test_platform_follows_make_and_model_unless_the_file_gives_one(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    make_device(asset_tag="P-1", serial="DMPXK2Q1JF81", platform=Platform.IPADOS)
    make_device(asset_tag="P-2", serial="DMPXK2Q1JF82", platform=Platform.IPADOS)
    rows = [
        ipad("P-1", "DMPXK2Q1JF81", **{"Make/Model": "Dell Latitude 3190"}),
        ipad("P-2", "DMPXK2Q1JF82", **{"Make/Model": "Apple iPad (9th generation)"}),
    ]
    plan, _result = run_import(make_csv(rows))
    assert plan.ok, problems(plan)
    assert device(session, school, "P-1").platform is Platform.OTHER
    assert device(session, school, "P-2").platform is Platform.IPADOS
    headings = ["Asset", "Serial", "Make", "Model", "Platform"]
    plan, _ = run_import(
        make_csv([["P-1", "DMPXK2Q1JF81", "Dell", "Latitude 3190", "Linux"]], headings)
    )
    assert plan.ok and device(session, school, "P-1").platform is Platform.LINUX


def test_re_tag_is_chosen_on_the_preview_page(
    client: FlaskClient,
    session: Session,
    school: School,
    places: dict[str, Location],
    sbm: User,
    make_device: Callable[..., Device],
) -> None:
    old = make_device(asset_tag="OLD-1", serial="DMPXK2Q1OLD1", home=places["classroom"])
    log_in_as(client, sbm)
    data = b"Oakfield ICT register\n" + make_csv([ipad("NEW-1", "DMPXK2Q1OLD1")])
    token = csrf_token(client, "/imports")
    sent = client.post(
        "/imports",
        data={"csrf_token": token, "file": (io.BytesIO(data), "register.csv")},
        content_type="multipart/form-data",
    )
    path = sent.headers["Location"]
    page = client.get(path).get_data(as_text=True)
    assert "Re-tag OLD-1 as NEW-1 (row 3)" in page and "the headings are row 2" in page
    columns = {f"columns-{i}": key for i, key in enumerate(guess_mapping(HEADINGS))}
    chosen = client.post(
        path,
        data={"csrf_token": token, "header_row": "2", "retag": "NEW-1", **columns},
    )
    assert chosen.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "Every row is good." in page and "Asset tag: OLD-1 → NEW-1" in page
    assert client.post(f"{path}/commit", data={"csrf_token": token}).status_code == 302
    session.refresh(old)
    assert old.asset_tag == "NEW-1"


def test_the_api_offers_re_tags_and_shows_changes(
    client: FlaskClient,
    school: School,
    places: dict[str, Location],
    sbm: User,
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    make_device(asset_tag="OLD-1", serial="DMPXK2Q1OLD1", home=places["classroom"])
    auth = token_for(sbm)
    body = make_csv([ipad("NEW-1", "DMPXK2Q1OLD1")]).decode()
    made = client.post("/api/v1/imports", json={"csv": body}, headers=auth).get_json()
    assert made["retag_offers"] == [{"row": 2, "asset_tag": "NEW-1", "current_tag": "OLD-1"}]
    assert made["conventions"]["Cost (£)"].startswith("amounts read with a decimal point")
    again = client.patch(
        f"/api/v1/imports/{made['id']}", json={"retag": ["NEW-1"]}, headers=auth
    ).get_json()
    assert (
        again["ok"]
        and {"what": "Asset tag", "before": "OLD-1", "after": "NEW-1"}
        in (again["planned"][0]["shown"])
    )
