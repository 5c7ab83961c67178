"""Opening a leaver case: what the person holds, and every bad input the issue names."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.leavers import services
from server.leavers.models import CaseStatus, ItemKind, LeaverCase, LeaverItem
from server.loans.services import quick_take_out
from server.personal_devices.services import add_entry
from server.schools.models import Location, School
from tests.server.leavers.conftest import BASE, People, last_day_ahead


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_lists_register_loans_and_personal_devices(
    session: Session,
    people: People,
    held: list[Device],
    make_device: Callable[..., Device],
    trolley: Location,
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: the case lists assigned devices, loans and personal register entries."""
    on_loan = make_device(home=trolley)
    quick_take_out(session, people.leaver, on_loan)
    add_entry(
        session,
        people.sbm,
        {"owner_id": people.leaver.id, "make": "Apple", "model": "iPhone 13", "serial": "PX1"},
    )
    someone_elses = make_device(home=trolley)
    quick_take_out(session, people.manager, someone_elses)
    opened = open_case()
    case = opened.case
    assert case.status is CaseStatus.OPEN and opened.link is None
    devices = {i.device.asset_tag: i.source for i in case.items if i.device is not None}
    assert set(devices) == {held[0].asset_tag, held[1].asset_tag, on_loan.asset_tag}
    assert devices[on_loan.asset_tag].startswith("Lesson loan")
    assert devices[held[1].asset_tag] == "Held (asset register)"
    (personal,) = [i for i in case.items if i.kind is ItemKind.PERSONAL_DEVICE]
    assert "iPhone 13" in personal.description
    assert case.leaver_name == people.leaver.name and case.leaver_email == people.leaver.email


def test_someone_holding_nothing_closes_straight_away_with_a_record(
    session: Session, people: People, open_case: Callable[..., services.Opened]
) -> None:
    """P-LEAVE-1: a case for someone who holds nothing closes at once, and says why."""
    case = open_case().case
    assert case.status is CaseStatus.CLOSED and case.closed_at is not None
    assert case.close_note and "held no school devices" in case.close_note
    assert [e.what for e in case.events][-1].startswith("Case closed")
    actions = session.scalars(
        select(ActivityEntry.action).where(ActivityEntry.target_type == "leaver_case")
    ).all()
    assert actions == ["leaver.opened", "leaver.closed"]
    # A closed case does not stop a new one later.
    assert open_case().case.id != case.id


def test_a_device_already_in_another_open_case_is_refused(
    session: Session,
    people: People,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: a device can be on only one open case."""
    shared = make_device()
    first = open_case(asset_tags=[shared.asset_tag])
    other = make_user(Role.TEACHER)
    with pytest.raises(Conflict, match=f"{shared.asset_tag} is on the open leaver case for"):
        open_case(leaver_id=other.id, asset_tags=[shared.asset_tag])
    second = open_case(leaver_id=other.id, asset_tags=[make_device().asset_tag]).case
    with pytest.raises(Conflict, match="only one open case"):
        services.add_device(session, people.sbm, second.id, shared.asset_tag)
    assert _count(session, LeaverCase) == 2
    assert {i.case_id for i in session.scalars(select(LeaverItem)).all()} == {
        first.case.id,
        second.id,
    }


def test_a_second_open_case_for_the_same_person_is_refused(
    people: People, held: list[Device], open_case: Callable[..., services.Opened]
) -> None:
    open_case()
    with pytest.raises(Conflict, match="already has an open leaver case"):
        open_case()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"line_manager_id": "leaver"}, "line_manager_id"),
        ({"technician_id": "manager"}, "technician_id"),
        ({"technician_id": "head"}, "technician_id"),
        ({"technician_id": "leaver"}, "technician_id"),
        ({"last_day": "yesterday"}, "last_day"),
        ({"last_day": "in two years"}, "last_day"),
        ({"leaver_id": 999999}, "leaver_id"),
        ({"line_manager_id": 999999}, "line_manager_id"),
        (
            {"leaver_id": None, "leaver_name": "Jo Bloggs", "leaver_email": "not-an-email"},
            "leaver_email",
        ),
        ({"leaver_id": None, "leaver_name": "", "leaver_email": "jo@x.example"}, "leaver_name"),
        ({"leaver_id": None, "leaver_name": "Jo", "leaver_email": "account"}, "leaver_email"),
        ({"asset_tags": ["NOPE-1"]}, "asset_tags"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    change: dict[str, object],
    field: str,
    session: Session,
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
) -> None:
    named = {"leaver": people.leaver.id, "manager": people.manager.id, "head": people.head.id}
    overrides: dict[str, object] = {}
    for key, value in change.items():
        if value == "yesterday":
            value = last_day_ahead(-2)
        elif value == "in two years":
            value = last_day_ahead(800)
        elif value == "account":
            value = people.manager.email
        elif isinstance(value, str) and value in named:
            value = named[value]
        overrides[key] = value
    with pytest.raises(ValidationFailed) as caught:
        open_case(**overrides)
    assert field in {d["field"] for d in caught.value.details}
    assert _count(session, LeaverCase) == 0 and _count(session, LeaverItem) == 0


def test_people_from_another_school_cannot_be_named(
    session: Session,
    people: People,
    other_school: School,
    make_user: Callable[..., User],
    open_case: Callable[..., services.Opened],
) -> None:
    theirs = make_user(Role.TECHNICIAN, in_school=other_school)
    with pytest.raises(ValidationFailed):
        open_case(technician_id=theirs.id)
    with pytest.raises(ValidationFailed):
        open_case(leaver_id=make_user(Role.TEACHER, in_school=other_school).id)


def test_a_disposed_device_is_not_listed_or_added(
    session: Session,
    people: People,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    gone = make_device(status=DeviceStatus.DISPOSED)
    gone.holder_id = people.leaver.id
    session.commit()
    assert open_case().case.status is CaseStatus.CLOSED
    with pytest.raises(ValidationFailed) as caught:
        open_case(asset_tags=[gone.asset_tag])
    assert caught.value.details == [
        {"field": "asset_tags", "message": f"{gone.asset_tag} has been disposed of."}
    ]


def test_only_the_sbm_or_headteacher_opens_a_case(
    people: People, open_case: Callable[..., services.Opened]
) -> None:
    with pytest.raises(Forbidden):
        open_case(actor=people.tech)
    assert open_case(actor=people.head).case.opened_by_id == people.head.id


def test_someone_without_an_account_gets_a_personal_link(
    session: Session,
    people: People,
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    """P-LEAVE-1: a leaver without an account gets a one-time link; only its hash is kept."""
    device = make_device()
    opened = open_case(
        leaver_id=None,
        leaver_name="Jo Bloggs",
        leaver_email="Jo.Bloggs@Home.example",
        asset_tags=[device.asset_tag],
    )
    assert opened.link is not None and opened.link.startswith(f"{BASE}/leavers/link/")
    token = opened.link.rsplit("/", 1)[1]
    case = opened.case
    assert case.leaver_id is None and case.leaver_email == "jo.bloggs@home.example"
    assert case.link_token_hash and token not in case.link_token_hash
    assert services.case_for_link(session, token).case.id == case.id
    with pytest.raises(Conflict, match="already has an open"):
        open_case(leaver_id=None, leaver_name="Jo", leaver_email="JO.BLOGGS@home.example")


def test_cases_are_scoped_to_their_people_and_school(
    session: Session,
    people: People,
    held: list[Device],
    other_school: School,
    make_user: Callable[..., User],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    for person in (people.sbm, people.head, people.tech, people.manager, people.leaver):
        assert services.get_case(session, person, case.id).id == case.id
    for outsider in (make_user(Role.TEACHER), make_user(Role.TECHNICIAN)):
        with pytest.raises(NotFound):
            services.get_case(session, outsider, case.id)
    with pytest.raises(NotFound):
        services.get_case(session, make_user(Role.SBM, in_school=other_school), case.id)


def test_looking_again_adds_what_they_took_since(
    session: Session,
    people: People,
    held: list[Device],
    make_device: Callable[..., Device],
    open_case: Callable[..., services.Opened],
) -> None:
    case = open_case().case
    late = make_device()
    late.holder_id = people.leaver.id
    session.commit()
    added = services.refresh(session, people.sbm, case.id)
    assert [i.device_id for i in added] == [late.id]
    assert services.refresh(session, people.sbm, case.id) == []


def test_the_api_opens_a_case_and_refuses_bad_bodies(
    client: FlaskClient,
    people: People,
    held: list[Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    headers = token_for(people.sbm)
    body = {
        "leaver_id": people.leaver.id,
        "last_day": last_day_ahead().isoformat(),
        "line_manager_id": people.manager.id,
        "technician_id": people.tech.id,
    }
    bad = client.post("/api/v1/leavers", json={**body, "colour": "red"}, headers=headers)
    assert bad.status_code == 400
    wrong = client.post(
        "/api/v1/leavers", json={**body, "technician_id": people.manager.id}, headers=headers
    )
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["details"][0]["field"] == "technician_id"
    made = client.post("/api/v1/leavers", json=body, headers=headers)
    assert made.status_code == 201, made.get_json()
    case = made.get_json()
    assert [i["asset_tag"] for i in case["items"]] == sorted(d.asset_tag for d in held)
    assert case["open_items"] == 2 and case["status"] == "open"
    again = client.post("/api/v1/leavers", json=body, headers=headers)
    assert again.status_code == 409
    listed = client.get("/api/v1/leavers?status=open", headers=headers).get_json()
    assert [c["id"] for c in listed["cases"]] == [case["id"]]
    assert client.get("/api/v1/leavers?status=nope", headers=headers).status_code == 400
    mine = client.get("/api/v1/leavers/mine", headers=token_for(people.leaver))
    assert mine.status_code == 200 and mine.get_json()["id"] == case["id"]
    assert client.get("/api/v1/leavers/mine", headers=headers).status_code == 404
