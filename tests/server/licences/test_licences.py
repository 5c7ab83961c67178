"""Licences reconciled against installs reported by devices, in SQL (P-REG-5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.disposals import services as disposals
from server.disposals.models import ErasureMethod
from server.errors import NotFound, ValidationFailed
from server.licences import services
from server.licences.models import InstalledApp, Licence
from server.schools.models import School
from tests.server.conftest import confirm_reset, csrf_token, log_in_as

TODAY = date(2025, 3, 10)


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


def _install(
    session: Session, devices: list[Device], app_id: str, name: str = "", at: datetime | None = None
) -> None:
    """Seed InstalledApp rows directly, as the worker's reports would leave them."""
    for device in devices:
        session.add(
            InstalledApp(
                school_id=device.school_id,
                device_id=device.id,
                app_id=app_id,
                name=name or app_id,
                first_seen=at or utcnow(),
                last_seen=at or utcnow(),
            )
        )
    session.commit()


def _licence(session: Session, actor: User, app_id: str, seats: int, **extra: object) -> Licence:
    return services.create_licence(
        session,
        actor,
        {"app_name": app_id.rsplit(".", 1)[-1], "app_id": app_id, "seats": seats, **extra},
    )


def test_reconciliation_counts_seats_against_installs(
    session: Session,
    sbm: User,
    other_school: School,
    make_device: Callable[..., Device],
) -> None:
    """P-REG-5: per licence, devices with the app against seats; unlicensed apps listed."""
    devices = [make_device() for _ in range(4)]
    disposed = make_device(status=DeviceStatus.DISPOSED)
    theirs = [make_device(in_school=other_school) for _ in range(3)]
    over = _licence(session, sbm, "com.example.Purple", 2)
    under = _licence(session, sbm, "com.example.Scratch", 10, expires_on=TODAY + timedelta(days=60))
    unused = _licence(session, sbm, "com.example.Unused", 5, expires_on=TODAY + timedelta(days=61))
    lapsed = _licence(session, sbm, "com.example.Old", 1, expires_on=TODAY - timedelta(days=1))
    _install(session, [*devices[:3], disposed, *theirs], "com.example.Purple", "Purple Mash")
    _install(session, devices[:1], "com.example.Scratch")
    _install(session, [*devices[:2], disposed], "com.free.Calculator", "Calculator")
    _install(session, theirs, "com.other.SchoolOnly")
    result = services.reconcile(session, sbm.school_id, today=TODAY)
    by_id = {line.licence.id: line for line in result.lines}
    assert (by_id[over.id].installed, by_id[over.id].seats_free) == (3, -1)
    assert by_id[over.id].over_deployed
    assert (by_id[under.id].installed, by_id[under.id].over_deployed) == (1, False)
    assert by_id[unused.id].installed == 0
    assert [line.licence.id for line in result.over_deployed] == [over.id]
    assert [line.licence.id for line in result.expiring] == [under.id]  # 60 days in, 61 out
    assert [line.licence.id for line in result.expired] == [lapsed.id]
    assert [(a.app_id, a.name, a.devices) for a in result.unlicensed] == [
        ("com.free.Calculator", "Calculator", 2)
    ]
    assert result.unlicensed_total == 1 and result.devices_reporting == 3


def test_installs_are_zero_until_devices_report(
    client: FlaskClient, session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    """P-REG-5: a licence shows zero installs, and says why, before any device reports."""
    make_device()
    licence = _licence(session, sbm, "com.apple.Pages", 30)
    result = services.reconcile(session, sbm.school_id)
    assert [(line.installed, line.seats_free) for line in result.lines] == [(0, 30)]
    assert result.devices_reporting == 0 and result.unlicensed == []
    log_in_as(client, sbm)
    page = client.get("/licences").get_data(as_text=True)
    assert "no device has reported its apps yet" in page
    detail = client.get(f"/licences/{licence.id}").get_data(as_text=True)
    assert "No device has reported this app yet." in detail


def test_an_inventory_report_replaces_a_device_s_apps(
    session: Session, make_device: Callable[..., Device]
) -> None:
    """P-REG-5: the worker's reports keep installs current; uninstalled apps drop out."""
    device = make_device()
    first = utcnow() - timedelta(days=1)
    services.record_installed_apps(
        session,
        device,
        [
            {"app_id": "com.apple.Pages", "name": "Pages", "version": "13.1"},
            {"app_id": "com.apple.Keynote"},
            {"app_id": "  "},  # skipped, with a log line
            {"name": "no id at all"},
        ],
        first,
    )
    session.commit()
    apps = {a.app_id: a for a in services.apps_on_device(session, device)}
    assert set(apps) == {"com.apple.Pages", "com.apple.Keynote"}
    assert apps["com.apple.Keynote"].name == "com.apple.Keynote"
    later = utcnow()
    services.record_installed_apps(
        session,
        device,
        [
            {"app_id": "com.apple.Pages", "name": "Pages", "version": "14.0"},
            {"app_id": "org.scratch.Scratch", "name": "Scratch"},
            {"app_id": "org.scratch.Scratch", "name": "Scratch Jr"},  # the last one wins
        ],
        later,
    )
    session.commit()
    session.expire_all()
    apps = {a.app_id: a for a in services.apps_on_device(session, device)}
    assert set(apps) == {"com.apple.Pages", "org.scratch.Scratch"}
    pages = apps["com.apple.Pages"]
    assert pages.version == "14.0" and pages.first_seen == first and pages.last_seen == later
    assert apps["org.scratch.Scratch"].name == "Scratch Jr"
    services.record_installed_apps(session, device, [], later)
    session.commit()
    assert services.apps_on_device(session, device) == []


def test_licence_details_are_checked(session: Session, sbm: User) -> None:
    """P-REG-5: clear errors for a missing name, a bad identifier, a duplicate app, bad seats."""
    with pytest.raises(ValidationFailed) as empty:
        services.create_licence(session, sbm, {"app_name": " ", "app_id": "", "seats": None})
    assert {d["field"] for d in empty.value.details} == {"app_name", "app_id", "seats"}
    with pytest.raises(ValidationFailed) as spaced:
        services.create_licence(
            session, sbm, {"app_name": "Pages", "app_id": "com apple", "seats": 1}
        )
    assert "no spaces" in spaced.value.details[0]["message"]
    _licence(session, sbm, "com.apple.Pages", 30)
    with pytest.raises(ValidationFailed) as twice:
        _licence(session, sbm, "com.apple.Pages", 5)
    assert "already a licence for com.apple.Pages" in twice.value.details[0]["message"]
    with pytest.raises(ValidationFailed):
        _licence(session, sbm, "com.example.Big", 5, cost_pence=20_000_000)
    with pytest.raises(NotFound):
        services.update_licence(session, sbm, 999_999, {"seats": 3})


def test_every_licence_change_is_in_the_trail(session: Session, sbm: User) -> None:
    """P-REG-5 / P-SEC-1: who recorded, changed and deleted a licence."""
    licence = _licence(session, sbm, "com.apple.Pages", 30)
    services.update_licence(session, sbm, licence.id, {"seats": 35, "app_name": "Pages"})
    services.delete_licence(session, sbm, licence.id)
    entries = session.scalars(
        select(ActivityEntry)
        .where(ActivityEntry.target_type == "licence")
        .order_by(ActivityEntry.seq)
    ).all()
    assert [e.action for e in entries] == ["licence.created", "licence.edited", "licence.deleted"]
    assert entries[1].details["changes"] == {"seats": [30, 35]}


def test_the_licence_pages_show_over_deployment_in_red(
    client: FlaskClient, session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    """P-REG-5: over-deployed licences stand out on the page, the print and the home card."""
    devices = [make_device() for _ in range(3)]
    licence = _licence(
        session, sbm, "com.example.Purple", 2, expires_on=date.today() + timedelta(days=10)
    )
    _install(session, devices, "com.example.Purple")
    log_in_as(client, sbm)
    page = client.get("/licences").get_data(as_text=True)
    assert '<td class="error">3 — over-deployed</td>' in page
    assert "1 licence is over-deployed" in page and "1 licence ends within 60 days" in page
    printed = client.get("/licences/print").get_data(as_text=True)
    assert "over-deployed" in printed and "Checked by" in printed
    detail = client.get(f"/licences/{licence.id}").get_data(as_text=True)
    assert all(d.asset_tag in detail for d in devices) and "Over-deployed by 1" in detail
    home = client.get("/").get_data(as_text=True)
    assert "Purple: 3 installed, 2 seats" in home
    device_page = client.get(f"/devices/{devices[0].asset_tag}").get_data(as_text=True)
    assert "Apps installed (1)" in device_page


def test_forms_take_money_and_dates_as_staff_type_them(
    client: FlaskClient, session: Session, sbm: User
) -> None:
    log_in_as(client, sbm)
    token = csrf_token(client, "/licences/new")
    bad = client.post(
        "/licences/new",
        data={
            "csrf_token": token,
            "app_name": "Pages",
            "app_id": "com.apple.Pages",
            "seats": "-1",
            "cost": "lots",
        },
    )
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "from 0 to 100,000" in text and "amount of money" in text
    made = client.post(
        "/licences/new",
        data={
            "csrf_token": token,
            "app_name": "Pages",
            "app_id": "com.apple.Pages",
            "seats": "0",
            "cost": "£1,299.50",
            "expires_on": "31 Aug 2026",
        },
    )
    assert made.status_code == 302
    licence = session.scalar(select(Licence).where(Licence.app_id == "com.apple.Pages"))
    assert licence is not None
    assert (licence.seats, licence.cost_pence, licence.expires_on) == (
        0,
        129_950,
        date(2026, 8, 31),
    )
    duplicate = client.post(
        "/licences/new",
        data={
            "csrf_token": token,
            "app_name": "Pages again",
            "app_id": "com.apple.Pages",
            "seats": "3",
        },
    )
    assert duplicate.status_code == 400 and "already a licence" in duplicate.get_data(as_text=True)
    edited = client.post(
        f"/licences/{licence.id}/edit",
        data={"csrf_token": token, "app_name": "Pages", "app_id": "com.apple.Pages", "seats": "40"},
    )
    assert edited.status_code == 302
    deleted = client.post(f"/licences/{licence.id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302
    assert session.scalar(select(Licence).where(Licence.id == licence.id)) is None


def test_the_api_records_and_reconciles(
    client: FlaskClient,
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-5: licences through the API; governors read the reconciliation, cannot edit."""
    device = make_device()
    headers = token_for(sbm)
    created = client.post(
        "/api/v1/licences",
        json={
            "app_name": "Scratch",
            "app_id": "org.scratch.Scratch",
            "seats": 1,
            "cost_pence": "£0.00",
        },
        headers=headers,
    )
    assert created.status_code == 201 and created.get_json()["installed"] == 0
    licence_id = created.get_json()["id"]
    _install(session, [device, make_device()], "org.scratch.Scratch")
    one = client.get(f"/api/v1/licences/{licence_id}", headers=headers).get_json()
    assert (one["installed"], one["seats_free"], one["over_deployed"]) == (2, -1, True)
    assert sorted(d["asset_tag"] for d in one["devices"])[0] == device.asset_tag
    patched = client.patch(f"/api/v1/licences/{licence_id}", json={"seats": 5}, headers=headers)
    assert patched.get_json()["over_deployed"] is False
    bad = client.patch(f"/api/v1/licences/{licence_id}", json={"seats": -3}, headers=headers)
    assert bad.status_code == 400
    governor = token_for(make_user(Role.GOVERNOR))
    overview = client.get("/api/v1/licences", headers=governor).get_json()
    assert overview["licences"][0]["installed"] == 2 and overview["devices_reporting"] == 2
    assert (
        client.patch(
            f"/api/v1/licences/{licence_id}", json={"seats": 9}, headers=governor
        ).status_code
        == 403
    )
    gone = client.delete(f"/api/v1/licences/{licence_id}", headers=headers).get_json()
    assert gone["licences"] == [] and gone["unlicensed"][0]["app_id"] == "org.scratch.Scratch"


def test_another_school_s_licences_are_out_of_reach(
    client: FlaskClient,
    session: Session,
    sbm: User,
    other_school: School,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-5 / P-SEC-1: licences are scoped to their school."""
    licence = _licence(session, sbm, "com.apple.Pages", 30)
    theirs = token_for(make_user(Role.SBM, in_school=other_school))
    assert client.get("/api/v1/licences", headers=theirs).get_json()["licences"] == []
    assert client.get(f"/api/v1/licences/{licence.id}", headers=theirs).status_code == 404
    assert client.delete(f"/api/v1/licences/{licence.id}", headers=theirs).status_code == 404
    same_app = client.post(
        "/api/v1/licences",
        json={"app_name": "Pages", "app_id": "com.apple.Pages", "seats": 3},
        headers=theirs,
    )
    assert same_app.status_code == 201  # the same app may be licensed by each school


def test_a_technician_edits_licences_without_reading_reports(
    client: FlaskClient, session: Session, make_user: Callable[..., User]
) -> None:
    """P-REG-5: the technician edits licences and reads the reconciliation."""
    technician = make_user(Role.TECHNICIAN)
    log_in_as(client, technician)
    token = csrf_token(client, "/licences/new")
    made = client.post(
        "/licences/new",
        data={"csrf_token": token, "app_name": "Pages", "app_id": "com.apple.Pages", "seats": "2"},
    )
    assert made.status_code == 302 and made.headers["Location"].startswith("/licences")
    assert "Pages" in client.get("/licences").get_data(as_text=True)


def test_an_erased_device_holds_no_seat_until_it_reports_again(
    session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    """P-REG-5: once a device confirms a factory reset its apps are gone, so it no longer counts
    against any licence nor as a device that reported its apps; its next report counts again."""
    kept, erased = make_device(), make_device()
    licence = _licence(session, sbm, "com.example.Purple", 1)
    _install(session, [kept, erased], "com.example.Purple")
    assert services.reconcile(session, sbm.school_id, today=TODAY).over_deployed
    confirm_reset(session, erased, utcnow())
    assert services.apps_on_device(session, erased) == []
    result = services.reconcile(session, sbm.school_id, today=TODAY)
    assert [(line.licence.id, line.installed) for line in result.lines] == [(licence.id, 1)]
    assert result.devices_reporting == 1 and not result.over_deployed
    services.record_installed_apps(session, erased, [{"app_id": "com.example.Purple"}], utcnow())
    session.commit()
    assert services.reconcile(session, sbm.school_id, today=TODAY).over_deployed


@pytest.mark.parametrize("method", list(ErasureMethod))
def test_a_device_a_technician_records_as_erased_holds_no_seat(
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    method: ErasureMethod,
) -> None:
    """P-REG-5: an erasure a named technician records with evidence (reset by hand, or storage
    destroyed) empties the device as a confirmed reset does: its apps no longer take seats."""
    kept, erased = make_device(), make_device()
    licence = _licence(session, sbm, "com.example.Purple", 1)
    _install(session, [kept, erased], "com.example.Purple")
    technician = make_user(role=Role.TECHNICIAN)
    disposals.record_erasure(session, technician, erased, method, "Reset at the desk, seen")
    assert services.apps_on_device(session, erased) == []
    result = services.reconcile(session, sbm.school_id, today=TODAY)
    assert [(line.licence.id, line.installed) for line in result.lines] == [(licence.id, 1)]
    assert result.devices_reporting == 1 and not result.over_deployed
