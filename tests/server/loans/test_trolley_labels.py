"""The scan page and its trolleys: trolley labels, each trolley's code, and returns filed into
each device's own trolley unless another was scanned or chosen (P-TROLLEY-1)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device
from server.errors import ValidationFailed
from server.labels.services import place_url
from server.loans import services
from server.loans.models import LoanItem, Scan
from server.notifications.models import Notification
from server.schools.models import Location, LocationKind, School
from server.schools.services import add_location
from tests.server.conftest import log_in_as
from tests.server.loans.conftest import BASE, TUESDAY_1020, scan

Headers = dict[str, str]


def _scan_anywhere(session: Session, user: User, code: str, mode: str) -> services.ScanResult:
    """A scan with no trolley chosen, as the scan page sends it by default."""
    return services.scan(
        session,
        user,
        mode=mode,
        trolley_id=None,
        code=code,
        base_url=BASE,
        key=uuid.uuid4().hex,
        now=TUESDAY_1020,
    )


def _options(page: str) -> list[dict[str, str]]:
    """Each option of the trolley dropdown: its attributes and its text."""
    select_html = re.search(r'<select id="scan-trolley".*?</select>', page, re.S)
    assert select_html, "the scan page has a trolley dropdown"
    found = []
    for attrs, text in re.findall(r"<option([^>]*)>([^<]*)</option>", select_html.group(0)):
        values = {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', attrs)}
        values["text"] = html.unescape(text).strip()
        values["selected"] = "yes" if re.search(r"\sselected\b", attrs) else ""
        found.append(values)
    return found


@pytest.fixture
def safe(session: Session, school: School, trolley: Location) -> Location:
    """A safe whose name sorts before every trolley ("Head's office safe" did in the demo)."""
    place = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.SAFE,
        name="A safe in the office",
        parent=trolley.parent,
        capacity=10,
        code="OFFICE-SAFE",
    )
    session.commit()
    return place


def test_a_return_with_no_trolley_chosen_goes_into_the_devices_own_trolley(
    session: Session,
    teacher: User,
    sbm: User,
    fleet: list[Device],
    trolley: Location,
    other_trolley: Location,
    safe: Location,
) -> None:
    """P-TROLLEY-1: nothing chosen means each device's home, never the first place by name."""
    stray = fleet[0]
    scan(session, teacher, stray, trolley)
    result = _scan_anywhere(session, teacher, stray.asset_tag, "in")
    assert result.outcome == "returned"
    assert result.message == f"{stray.asset_tag} is back in Year 4 trolley."
    assert not [w for w in result.warnings if "lives in" in w]  # no "wrong trolley" warning
    session.refresh(stray)
    assert stray.current_location_id == trolley.id and stray.holder_id is None
    item = session.scalars(select(LoanItem).where(LoanItem.device_id == stray.id)).one()
    assert item.return_location_id == trolley.id and not item.wrong_trolley
    assert result.counts is not None and result.counts.trolley_id == trolley.id
    wrong = select(func.count()).select_from(Notification).where(Notification.user_id == sbm.id)
    assert session.scalar(wrong) == 0  # no "wrong trolley" note for the SBM


def test_a_trolley_chosen_for_a_return_is_still_used(
    session: Session,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    other_trolley: Location,
) -> None:
    """Choosing or scanning a trolley files the device there (and notes the wrong trolley)."""
    scan(session, teacher, fleet[0], trolley)
    result = scan(session, teacher, fleet[0], other_trolley, "in")
    assert result.message == f"{fleet[0].asset_tag} is back in Year 3 trolley."
    assert any("lives in Year 4 trolley" in w for w in result.warnings)


def test_taking_out_with_no_trolley_chosen_takes_it_from_where_it_is(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    result = _scan_anywhere(session, teacher, fleet[1].asset_tag, "out")
    assert result.outcome == "out"
    loan = services.get_loan(session, teacher.school_id, result.loan_id or 0)
    assert loan.trolley_id == trolley.id
    assert result.counts is not None and result.counts.text == "1 of 5 out"


def test_with_no_trolley_a_device_without_one_is_refused_plainly(
    session: Session,
    teacher: User,
    make_device: Callable[..., Device],
) -> None:
    homeless = make_device()
    for mode, words in (("in", "no home trolley"), ("out", "not recorded in a trolley")):
        with pytest.raises(ValidationFailed, match=words) as raised:
            _scan_anywhere(session, teacher, homeless.asset_tag, mode)
        assert "scan the trolley's label" in str(raised.value)
    assert session.scalar(select(func.count()).select_from(Scan)) == 0


def test_a_place_label_scanned_as_a_device_says_what_it_is(
    session: Session, teacher: User, fleet: list[Device], trolley: Location
) -> None:
    """A trolley's printed label names the trolley instead of "not a device label URL"."""
    with pytest.raises(ValidationFailed) as raised:
        scan(session, teacher, place_url(BASE, trolley.id), trolley)
    assert raised.value.code == "place_label"
    assert "Year 4 trolley" in raised.value.message
    assert "Nothing was recorded" in raised.value.message
    assert session.scalar(select(func.count()).select_from(Scan)) == 0


def test_the_scan_api_takes_a_return_with_no_trolley(
    client: FlaskClient,
    token_for: Callable[[User], Headers],
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    other_trolley: Location,
) -> None:
    headers = token_for(teacher)
    body: dict[str, Any] = {"mode": "out", "trolley": trolley.id, "code": fleet[2].asset_tag}
    assert client.post("/api/v1/scans", json=body, headers=headers).status_code == 200
    back = client.post(
        "/api/v1/scans",
        json={"mode": "in", "code": fleet[2].asset_tag, "idempotency_key": uuid.uuid4().hex},
        headers=headers,
    )
    assert back.status_code == 200, back.get_json()
    answer = back.get_json()
    assert answer["outcome"] == "returned"
    assert not [w for w in answer["warnings"] if "lives in" in w]
    assert answer["counts"]["trolley"] == "Year 4 trolley"


def test_the_scan_page_chooses_no_place_until_a_trolley_is_scanned_or_chosen(
    client: FlaskClient,
    teacher: User,
    fleet: list[Device],
    trolley: Location,
    other_trolley: Location,
    safe: Location,
) -> None:
    """The first place by name is no longer picked for the teacher (it filed returns wrongly)."""
    log_in_as(client, teacher)
    options = _options(client.get("/scan").get_data(as_text=True))
    assert options[0]["value"] == "" and "own trolley" in options[0]["text"]
    assert [o["text"] for o in options if o["selected"]] in ([], [options[0]["text"]])
    chosen = _options(client.get(f"/scan?trolley={trolley.id}").get_data(as_text=True))
    assert [o["value"] for o in chosen if o["selected"]] == [str(trolley.id)]


def test_the_trolley_dropdown_shows_each_trolleys_label_code(
    client: FlaskClient,
    session: Session,
    teacher: User,
    trolley: Location,
    other_trolley: Location,
    safe: Location,
) -> None:
    """Each place shows the code printed on its label; its label's URL selects it."""
    log_in_as(client, teacher)
    page = client.get("/scan").get_data(as_text=True)
    base = re.search(r'data-label-base="([^"]+)"', page)
    assert base
    places = {o["value"]: o for o in _options(page) if o["value"]}
    assert set(places) == {str(trolley.id), str(other_trolley.id), str(safe.id)}
    for place, code in (
        (trolley, "Year-4-trolley"),
        (other_trolley, "Year-3-trolley"),
        (safe, "OFFICE-SAFE"),
    ):
        option = places[str(place.id)]
        assert option["data-code"] == code
        assert option["text"] == f"{place.name} ({code})"
        assert option["data-label"] == place_url(base.group(1), place.id)
