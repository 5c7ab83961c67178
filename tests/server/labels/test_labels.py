"""QR label sheets: each code opens the right device or place, nothing personal (P-REG-3)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.errors import NotFound, ValidationFailed
from server.labels import services
from server.labels.services import Selection, choose_labels, render_labels
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location
from tests.server.conftest import PASSWORD, csrf_token, log_in_as
from tests.server.labels.support import pdf_qr_texts, pdf_text

BASE = "https://trolley.oakfield.example"


@pytest.fixture
def trolley4(session: Session, school: School) -> Location:
    site = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.SITE, name="Main site"
    )
    room = add_location(
        session, actor=None, school_id=school.id, kind=LocationKind.ROOM, name="Y4", parent=site
    )
    found = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.TROLLEY,
        name="Year 4 trolley",
        parent=room,
        capacity=30,
    )
    session.commit()
    return found


def test_device_labels_encode_their_page_and_nothing_personal(
    session: Session,
    school: School,
    trolley4: Location,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-REG-3: each QR code is `<base>/d/<tag>`; the holder's name is printed nowhere."""
    holder = make_user(Role.TEACHER)
    tags = [f"OAK-IPAD-{i:03d}" for i in range(1, 24)]
    for slot, tag in enumerate(tags, start=1):
        make_device(asset_tag=tag, home=trolley4, home_slot=slot, holder_id=holder.id)
    chosen = choose_labels(session, school.id, BASE, Selection(asset_tags=tags))
    pdf = render_labels(chosen, layout="L7160", fmt="pdf").parts[0]
    pages = pdf_qr_texts(pdf)
    assert [len(p) for p in pages] == [21, 2]
    assert [url for page in pages for url in page] == [f"{BASE}/d/{tag}" for tag in tags]
    text = pdf_text(pdf)
    assert "OAK-IPAD-001" in text and "Oakfield Primary" in text and "Year 4 trolley" in text
    assert holder.name not in text and holder.email not in text


def test_a_trolleys_devices_in_slot_order_plus_its_own_label(
    session: Session, school: School, trolley4: Location, make_device: Callable[..., Device]
) -> None:
    """P-REG-3, P-TROLLEY-3: a trolley gets a label too, opening what lives in it."""
    make_device(asset_tag="B-TAG", home=trolley4, home_slot=1)
    make_device(asset_tag="A-TAG", home=trolley4, home_slot=2)
    make_device(asset_tag="C-GONE", home=trolley4, status=DeviceStatus.DISPOSED)
    make_device(asset_tag="ELSEWHERE")
    chosen = choose_labels(
        session,
        school.id,
        BASE,
        Selection(home_location_id=trolley4.id, location_ids=[trolley4.id]),
    )
    assert chosen.urls == [f"{BASE}/d/B-TAG", f"{BASE}/d/A-TAG", f"{BASE}/l/{trolley4.id}"]
    assert chosen.labels[-1].asset_tag == "Year-4-trolley"
    pdf = render_labels(chosen, layout="L7163", fmt="pdf").parts[0]
    assert pdf_qr_texts(pdf) == [chosen.urls]


def test_start_position_skips_used_labels(
    session: Session, school: School, make_device: Callable[..., Device]
) -> None:
    make_device(asset_tag="S-1")
    chosen = choose_labels(session, school.id, BASE, Selection(asset_tags=["S-1"]))
    pdf = render_labels(chosen, layout="L7160", fmt="pdf", start_position=21).parts[0]
    assert pdf_qr_texts(pdf) == [[f"{BASE}/d/S-1"]]
    with pytest.raises(ValidationFailed, match="Start position must be 1-14"):
        render_labels(chosen, layout="L7163", fmt="pdf", start_position=15)
    single = render_labels(chosen, layout="single", fmt="pdf").parts[0]
    assert pdf_qr_texts(single) == [[f"{BASE}/d/S-1"]]


def test_unknown_and_other_schools_tags_are_refused(
    session: Session,
    school: School,
    other_school: School,
    make_device: Callable[..., Device],
) -> None:
    make_device(asset_tag="OURS-1")
    make_device(in_school=other_school, asset_tag="THEIRS-1")
    with pytest.raises(ValidationFailed) as caught:
        choose_labels(session, school.id, BASE, Selection(asset_tags=["OURS-1", "THEIRS-1", "X"]))
    assert caught.value.message == "These asset tags are not in your register: THEIRS-1, X."
    with pytest.raises(ValidationFailed, match="Choose some devices or places"):
        choose_labels(session, school.id, BASE, Selection())


def test_another_schools_place_is_not_found(
    session: Session, school: School, other_school: School
) -> None:
    theirs = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.SITE, name="Elm"
    )
    session.commit()
    with pytest.raises(NotFound):
        choose_labels(session, school.id, BASE, Selection(location_ids=[theirs.id]))


def test_svg_and_html_outputs(
    session: Session, school: School, make_device: Callable[..., Device]
) -> None:
    for n in range(22):
        make_device(asset_tag=f"H-{n:02d}")
    chosen = choose_labels(session, school.id, BASE, Selection(every_device=True))
    svgs = render_labels(chosen, fmt="svg").parts
    assert len(svgs) == 2 and svgs[0].startswith(b"<svg")
    page = render_labels(chosen, fmt="html").parts[0].decode()
    assert page.count('class="sheet"') == 2 and "H-21" in page


def test_place_codes_are_readable_tags() -> None:
    place = Location(id=7, name="Head's office safe", kind=LocationKind.SAFE)
    assert services.place_code(place) == "Head-s-office-safe"
    assert services.place_code(Location(id=8, name="Café", code="SAFE-2")) == "SAFE-2"
    assert services.place_code(Location(id=9, name="★★")) == "PLACE-9"
    assert services.parse_tags(" A-1, A-2\nA-3;A-4  ") == ["A-1", "A-2", "A-3", "A-4"]


# --- pages and API --------------------------------------------------------------------------


def test_the_label_page_downloads_a_pdf_of_the_chosen_devices(
    app: Flask,
    client: FlaskClient,
    school: School,
    trolley4: Location,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-REG-3: choose a trolley and some tags on the page; the PDF's codes open those devices."""
    base = app.extensions["trolley.settings"].base_url
    make_device(asset_tag="T-1", home=trolley4, home_slot=1)
    make_device(asset_tag="T-2", home=trolley4, home_slot=2)
    make_device(asset_tag="LOOSE")
    log_in_as(client, make_user(Role.SBM))
    page = client.get("/labels").get_data(as_text=True)
    assert "Year 4 trolley" in page and "Avery L7160" in page and base in page
    response = client.get(
        "/labels/sheet",
        query_string={
            "tags": "LOOSE",
            "home": str(trolley4.id),
            "places": str(trolley4.id),
            "layout": "L7163",
            "start": "3",
            "format": "pdf",
        },
    )
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="labels-L7163.pdf"'
    assert pdf_qr_texts(response.data) == [
        [f"{base}/d/LOOSE", f"{base}/d/T-1", f"{base}/d/T-2", f"{base}/l/{trolley4.id}"]
    ]


def test_the_print_view_is_html_allowed_only_its_own_style(
    client: FlaskClient,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    make_device(asset_tag="P-1")
    log_in_as(client, make_user(Role.TEACHER))
    response = client.get("/labels/sheet?tags=P-1&format=html&layout=L7160")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = response.headers["Content-Security-Policy"]
    assert f"style-src 'sha256-{digest}'" in policy and "script-src" not in policy
    assert "default-src 'none'" in policy and "P-1" in page


def test_bad_choices_get_a_clear_400(
    client: FlaskClient, school: School, make_user: Callable[..., User]
) -> None:
    log_in_as(client, make_user(Role.SBM))
    nothing = client.get("/labels/sheet")
    assert nothing.status_code == 400
    assert "Choose some devices or places" in nothing.get_data(as_text=True)
    unknown = client.get("/labels/sheet?tags=NOPE")
    assert unknown.status_code == 400 and "NOPE" in unknown.get_data(as_text=True)
    start = client.get("/labels/sheet?every=y&start=40")
    assert start.status_code == 400 and "Start at label" in start.get_data(as_text=True)


def test_a_place_label_opens_what_lives_there_after_log_in(
    client: FlaskClient,
    school: School,
    other_school: School,
    session: Session,
    trolley4: Location,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-REG-3: a phone scanning a trolley's label lands on its devices, via log-in if needed."""
    make_device(asset_tag="IN-TROLLEY", home=trolley4)
    first = client.get(f"/l/{trolley4.id}")
    assert first.status_code == 302 and "/login?next=%2Fl%2F" in first.headers["Location"]
    user = make_user()
    token = csrf_token(client)
    after = client.post(
        f"/login?next=/l/{trolley4.id}",
        data={"csrf_token": token, "email": user.email, "password": PASSWORD},
    )
    assert after.headers["Location"] == f"/l/{trolley4.id}"
    landed = client.get(after.headers["Location"])
    assert landed.headers["Location"] == f"/locations/{trolley4.id}"
    assert "IN-TROLLEY" in client.get(landed.headers["Location"]).get_data(as_text=True)
    theirs = add_location(
        session, actor=None, school_id=other_school.id, kind=LocationKind.SITE, name="Elm"
    )
    session.commit()
    assert client.get(f"/l/{theirs.id}").status_code == 404


def test_a_device_page_offers_its_label(
    client: FlaskClient,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    device = make_device(asset_tag="ONE-1")
    log_in_as(client, make_user(Role.TEACHER))
    page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert "/labels/sheet?tags=ONE-1&amp;layout=single&amp;format=pdf" in page


def test_labels_through_the_api(
    app: Flask,
    client: FlaskClient,
    school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    base = app.extensions["trolley.settings"].base_url
    make_device(asset_tag="API-1")
    make_device(asset_tag="API-2")
    headers = token_for(make_user(Role.TECHNICIAN))
    response = client.post(
        "/api/v1/labels",
        json={"asset_tags": ["API-2", "API-1"], "layout": "L7160"},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["urls"] == [f"{base}/d/API-2", f"{base}/d/API-1"] and body["labels"] == 2
    assert pdf_qr_texts(base64.b64decode(body["content_base64"])) == [body["urls"]]
    bad = client.post("/api/v1/labels", json={"asset_tags": ["NOPE"]}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["details"][0]["field"] == "asset_tags"
    governor = token_for(make_user(Role.GOVERNOR))
    assert client.post("/api/v1/labels", json={}, headers=governor).status_code == 403
