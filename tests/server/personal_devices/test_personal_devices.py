"""The staff personal devices register: the SBM and the headteacher only (P-REG-6)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.errors import Conflict, NotFound, ValidationFailed
from server.personal_devices import services
from server.personal_devices.models import PersonalDevice
from server.schools.models import School
from tests.server.conftest import csrf_token, log_in_as

KEEPERS = {Role.SBM, Role.HEADTEACHER}
PHONE = {"make": "Apple", "model": "iPhone 13", "serial": "F2LXK0QJPLJM"}


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def entry(session: Session, sbm: User, make_user: Callable[..., User]) -> PersonalDevice:
    owner = make_user(Role.TEACHER)
    return services.add_entry(session, sbm, {"owner_id": owner.id, **PHONE})


@pytest.mark.parametrize("role", list(Role))
def test_only_the_sbm_and_headteacher_see_the_register(
    role: Role,
    client: FlaskClient,
    session: Session,
    entry: PersonalDevice,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-6: visible to the SBM and the headteacher only; administrators included out."""
    user = make_user(role)
    headers = token_for(user)
    api = client.get("/api/v1/personal-devices", headers=headers)
    one = client.get(f"/api/v1/personal-devices/{entry.id}", headers=headers)
    log_in_as(client, user)
    page = client.get("/personal-devices")
    printed = client.get("/personal-devices/print")
    home = client.get("/").get_data(as_text=True)
    if role in KEEPERS:
        assert api.status_code == 200 and api.get_json()["items"][0]["serial"] == PHONE["serial"]
        assert one.status_code == 200
        assert page.status_code == 200 and PHONE["serial"] in page.get_data(as_text=True)
        assert printed.status_code == 200 and PHONE["serial"] in printed.get_data(as_text=True)
        assert "Staff personal devices" in home
    else:
        # Only roles holding personal_devices:manage reach it; everyone else is forbidden.
        refused = 403
        for response in (api, one, page, printed):
            assert response.status_code == refused
            assert PHONE["serial"] not in response.get_data(as_text=True)
        assert "Staff personal devices" not in home
        with pytest.raises(NotFound, match="school business manager and the headteacher"):
            services.list_entries(session, user)
        with pytest.raises(NotFound):
            services.add_entry(session, user, {"owner_name": "A Person", **PHONE})
        with pytest.raises(NotFound):
            services.remove(session, user, entry.id, "left")


def test_an_admin_cannot_add_or_change_entries_through_the_api(
    client: FlaskClient,
    entry: PersonalDevice,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-6: the administrator holds users:read but the register stays closed to them."""
    headers = token_for(make_user(Role.ADMIN))
    assert (
        client.post(
            "/api/v1/personal-devices", json={"owner_name": "X", **PHONE}, headers=headers
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"/api/v1/personal-devices/{entry.id}", json={"notes": "x"}, headers=headers
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/personal-devices/{entry.id}/remove", json={"reason": "x"}, headers=headers
        ).status_code
        == 403
    )


def test_an_entry_needs_an_owner_make_model_and_serial(
    session: Session,
    sbm: User,
    other_school: School,
    make_user: Callable[..., User],
) -> None:
    """P-REG-6: 'name, make & model, serial number' are all noted; every problem is named."""
    with pytest.raises(ValidationFailed) as empty:
        services.add_entry(session, sbm, {"make": " ", "model": "", "serial": ""})
    assert {d["field"] for d in empty.value.details} == {"make", "model", "serial", "owner"}
    teacher = make_user(Role.TEACHER)
    with pytest.raises(ValidationFailed, match="correcting") as both:
        services.add_entry(session, sbm, {"owner_id": teacher.id, "owner_name": "Ann", **PHONE})
    assert "not both" in both.value.details[0]["message"]
    stranger = make_user(Role.TEACHER, in_school=other_school)
    with pytest.raises(ValidationFailed) as foreign:
        services.add_entry(session, sbm, {"owner_id": stranger.id, **PHONE})
    assert foreign.value.details[0]["message"] == "That person is not a member of your school."
    with pytest.raises(ValidationFailed) as future:
        services.add_entry(
            session,
            sbm,
            {"owner_name": "Ann Visitor", "noted_on": date.today() + timedelta(days=1), **PHONE},
        )
    assert future.value.details[0]["field"] == "noted_on"
    noted = services.add_entry(session, sbm, {"owner_name": " Ann Visitor ", **PHONE})
    assert noted.owner_label == "Ann Visitor" and noted.noted_on == date.today()


def test_removing_twice_names_the_day_it_was_removed(session: Session, sbm: User) -> None:
    """The refusal gives the removal day in the one date format staff read everywhere."""
    entry = services.add_entry(
        session, sbm, {"owner_name": "Ann Visitor", "noted_on": date(2025, 9, 1), **PHONE}
    )
    services.remove(session, sbm, entry.id, "Member of staff left", on=date(2026, 3, 3))
    with pytest.raises(Conflict) as twice:
        services.remove(session, sbm, entry.id, "again")
    assert twice.value.message == "This device was already removed on Tue 3 March 2026."


def test_a_leaver_s_devices_are_listed_and_removed_with_history_kept(
    session: Session, sbm: User, make_user: Callable[..., User]
) -> None:
    """P-REG-6: a leaver case lists a person's entries and removes them; history stays."""
    head = make_user(Role.HEADTEACHER)
    leaver, stayer = make_user(Role.TEACHER), make_user(Role.TEACHER)
    phone = services.add_entry(session, sbm, {"owner_id": leaver.id, **PHONE})
    tablet = services.add_entry(
        session, sbm, {"owner_id": leaver.id, "make": "Samsung", "model": "Tab A8", "serial": "R9X"}
    )
    services.add_entry(
        session, sbm, {"owner_id": stayer.id, "make": "Google", "model": "Pixel 7", "serial": "P7"}
    )
    assert [e.id for e in services.personal_devices_of(session, leaver)] == [phone.id, tablet.id]
    with pytest.raises(ValidationFailed, match="Say why"):
        services.remove(session, head, phone.id, "  ")
    with pytest.raises(ValidationFailed, match="between the date it was noted and today"):
        services.remove(session, head, phone.id, "left", on=date.today() + timedelta(days=2))
    services.remove(session, head, phone.id, "Member of staff left")
    assert [e.id for e in services.personal_devices_of(session, leaver)] == [tablet.id]
    with pytest.raises(Conflict, match="already removed"):
        services.remove(session, head, phone.id, "again")
    with pytest.raises(Conflict, match="removed from the register"):
        services.update_entry(session, head, phone.id, {"notes": "x"})
    current = services.list_entries(session, sbm)
    everything = services.list_entries(session, sbm, include_removed=True)
    assert phone.id not in {e.id for e in current} and phone.id in {e.id for e in everything}
    assert services.counts(session, sbm) == services.Counts(current=2, removed=1)


def test_the_trail_records_changes_without_the_register_s_contents(
    session: Session, sbm: User, entry: PersonalDevice
) -> None:
    """P-REG-6 / P-SEC-1: changes are in the trail, but not the owner or serial (others read it)."""
    services.update_entry(session, sbm, entry.id, {"serial": "NEWSERIAL99", "notes": "Case"})
    services.remove(session, sbm, entry.id, "Member of staff left")
    entries = session.scalars(
        select(ActivityEntry).where(ActivityEntry.target_type == "personal_device")
    ).all()
    assert [e.action for e in entries] == [
        "personal_device.noted",
        "personal_device.edited",
        "personal_device.removed",
    ]
    assert entries[1].details == {"fields": ["notes", "serial"]}
    flat = str([(e.details, e.target_id) for e in entries])
    assert PHONE["serial"] not in flat and "NEWSERIAL99" not in flat
    assert entry.owner is not None and entry.owner.name not in flat


def test_editing_switches_between_an_account_and_a_typed_name(
    session: Session, sbm: User, entry: PersonalDevice
) -> None:
    services.update_entry(session, sbm, entry.id, {"owner_name": "Former Governor"})
    assert entry.owner_id is None and entry.owner_label == "Former Governor"
    with pytest.raises(ValidationFailed):
        services.update_entry(session, sbm, entry.id, {"owner_name": None})


def test_the_register_pages_and_api_for_the_headteacher(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-6: note, correct and remove through the forms and the API, with clear errors."""
    head = make_user(Role.HEADTEACHER)
    teacher = make_user(Role.TEACHER)
    log_in_as(client, head)
    token = csrf_token(client, "/personal-devices/new")
    bad = client.post(
        "/personal-devices/new",
        data={
            "csrf_token": token,
            "owner_id": "",
            "make": "Apple",
            "model": "iPhone",
            "serial": "",
        },
    )
    assert bad.status_code == 400 and "Enter the serial number." in bad.get_data(as_text=True)
    nobody = client.post(
        "/personal-devices/new",
        data={
            "csrf_token": token,
            "owner_id": "",
            "make": "Apple",
            "model": "iPhone",
            "serial": "S1",
        },
    )
    assert nobody.status_code == 400
    assert "type the owner&#39;s name" in nobody.get_data(as_text=True)
    made = client.post(
        "/personal-devices/new",
        data={
            "csrf_token": token,
            "owner_id": str(teacher.id),
            "make": "Apple",
            "model": "iPhone 15",
            "serial": "S1",
            "noted_on": "1 Sept 2024",
        },
    )
    assert made.status_code == 302
    created = session.scalar(select(PersonalDevice).where(PersonalDevice.serial == "S1"))
    assert created is not None and created.noted_on == date(2024, 9, 1)
    edit = client.post(
        f"/personal-devices/{created.id}/edit",
        data={
            "csrf_token": token,
            "owner_id": str(teacher.id),
            "make": "Apple",
            "model": "iPhone 15 Pro",
            "serial": "S1",
            "noted_on": "01/09/2024",
        },
    )
    assert edit.status_code == 302
    no_reason = client.post(f"/personal-devices/{created.id}/remove", data={"csrf_token": token})
    assert no_reason.status_code == 400
    removed = client.post(
        f"/personal-devices/{created.id}/remove",
        data={"csrf_token": token, "reason": "Left at Easter"},
    )
    assert removed.status_code == 302
    listing = client.get("/personal-devices?removed=1").get_data(as_text=True)
    assert "iPhone 15 Pro" in listing and "Left at Easter" in listing

    headers = token_for(head)
    api = client.post(
        "/api/v1/personal-devices",
        json={
            "owner_name": "Supply Teacher",
            "make": "Samsung",
            "model": "S23",
            "serial": "X9",
            "noted_on": "02/01/2025",
        },
        headers=headers,
    )
    assert api.status_code == 201 and api.get_json()["owner"] == "Supply Teacher"
    entry_id = api.get_json()["id"]
    patched = client.patch(
        f"/api/v1/personal-devices/{entry_id}", json={"owner_id": teacher.id}, headers=headers
    )
    assert patched.get_json()["owner"] == teacher.name
    gone = client.post(
        f"/api/v1/personal-devices/{entry_id}/remove",
        json={"reason": "Contract ended"},
        headers=headers,
    )
    assert gone.get_json()["removed_on"] == date.today().isoformat()
    everything = client.get("/api/v1/personal-devices?include_removed=true", headers=headers)
    assert everything.get_json()["removed"] == 2 and len(everything.get_json()["items"]) == 2
    assert client.get("/api/v1/personal-devices", headers=headers).get_json()["items"] == []


def test_another_school_s_register_is_out_of_reach(
    client: FlaskClient,
    entry: PersonalDevice,
    other_school: School,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-6 / P-SEC-1: a school sees only its own staff's devices."""
    their_head = make_user(Role.HEADTEACHER, in_school=other_school)
    headers = token_for(their_head)
    assert client.get("/api/v1/personal-devices", headers=headers).get_json()["items"] == []
    assert client.get(f"/api/v1/personal-devices/{entry.id}", headers=headers).status_code == 404
    log_in_as(client, their_head)
    assert client.get(f"/personal-devices/{entry.id}/edit").status_code == 404


def test_the_register_s_today_is_the_school_s_today(
    session: Session, sbm: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P-REG-6: at 00:30 on 1 July in London (23:30 UTC the day before) an entry noted now is
    noted on 1 July, and may be removed that day."""
    from datetime import UTC, datetime

    from server.personal_devices.services import register

    monkeypatch.setattr(register, "utcnow", lambda: datetime(2026, 6, 30, 23, 30, tzinfo=UTC))
    noted = services.add_entry(session, sbm, {"owner_name": "Ann Visitor", **PHONE})
    assert noted.noted_on == date(2026, 7, 1)
    removed = services.remove(session, sbm, noted.id, "Member of staff left")
    assert removed.removed_on == date(2026, 7, 1)
