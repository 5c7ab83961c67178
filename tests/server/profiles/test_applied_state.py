"""Per-setting applied state: compliance is what each device says it enforced (P-PROFILE-1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.device_channel import _UNPUBLISHED_STATES
from server.devices.models import Device, DeviceEvent, Platform
from server.devices.services import record_protection
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import active_identity
from server.profiles import services
from server.profiles.models import DeviceDesiredState, Profile
from server.reports import services as reports
from tests.server.conftest import confirm_reset, log_in_as
from tests.server.profiles.conftest import NOW, Places


def _desired(session: Session, device: Device) -> DeviceDesiredState:
    row = session.scalar(
        select(DeviceDesiredState).where(DeviceDesiredState.device_id == device.id)
    )
    assert row is not None and row.document is not None
    return row


def _every(row: DeviceDesiredState, state: str = "enforced", **overrides: str) -> list[Any]:
    """A report entry for every setting the desired document manages."""
    assert row.document is not None
    return [
        {"setting": path, "state": overrides.get(path, state), "detail": "", "evidence": {}}
        for path in row.document["settings"]
    ]


def test_echoing_the_hash_is_not_compliance(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1: a device that only echoes its profile's hash has not shown it enforces it."""
    echo, partial, whole = (make_device(home=places.trolley) for _ in range(3))
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    row = _desired(session, echo)
    for device in (echo, partial, whole):
        assert services.mark_published(session, device.id, row.sha256, NOW)
    at = NOW + timedelta(minutes=1)
    services.record_applied(session, echo, row.sha256, at)
    services.record_applied(
        session,
        partial,
        row.sha256,
        at,
        settings=_every(row, **{"passcode.required": "not_supported"}),
        settings_sha256=row.sha256,
    )
    services.record_applied(
        session, whole, row.sha256, at, settings=_every(row), settings_sha256=row.sha256
    )
    session.commit()
    states = {r.asset_tag: r.state for r in services.compliance(session, lead.school_id)}
    assert states[echo.asset_tag] != "compliant"
    assert states[partial.asset_tag] != "compliant"
    assert states[whole.asset_tag] == "compliant"


def _report_all(
    session: Session, device: Device, at: datetime, **states: str
) -> DeviceDesiredState:
    """The device applied its desired document and reported every setting of it."""
    row = _desired(session, device)
    services.mark_published(session, device.id, row.sha256, at - timedelta(minutes=1))
    services.record_applied(
        session,
        device,
        row.sha256,
        at,
        settings=_every(row, **states),
        settings_sha256=row.sha256,
    )
    session.commit()
    return row


def test_a_device_that_reports_only_some_settings_is_not_compliant(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1: a setting the device did not report is not known, so never counted."""
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "device", device.id)
    row = _desired(session, device)
    services.mark_published(session, device.id, row.sha256, NOW)
    some = _every(row)[:3]
    services.record_applied(
        session, device, row.sha256, NOW, settings=some, settings_sha256=row.sha256
    )
    session.commit()
    compliance = services.device_compliance(session, device)
    assert compliance is not None and compliance.state == "unconfirmed"
    assert (compliance.settings_reported, compliance.settings_not_enforced) == (3, 0)
    view = services.applied_view(session, device)
    assert [r.state for r in view.rows][:4] == ["enforced"] * 3 + ["not_known"]


def test_each_report_replaces_the_settings_and_keeps_when_each_state_began(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """The latest report is the truth; a state's start time survives reports that repeat it."""
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "device", device.id)
    first = NOW + timedelta(minutes=1)
    row = _report_all(session, device, first, **{"device.camera": "failed"})
    later = NOW + timedelta(minutes=20)
    _report_all(session, device, later)
    late = NOW + timedelta(minutes=5)  # an older report arriving late changes nothing
    services.record_applied(
        session,
        device,
        row.sha256,
        late,
        settings=_every(row, state="failed"),
        settings_sha256=row.sha256,
    )
    session.commit()
    view = services.applied_view(session, device)
    rows = {r.setting: r for r in view.rows}
    assert {r.state for r in view.rows} == {"enforced"}
    assert rows["device.camera"].since == later and rows["device.airdrop"].since == first
    assert view.reported_at == later
    summaries = session.scalars(
        select(DeviceEvent.summary)
        .where(DeviceEvent.device_id == device.id, DeviceEvent.kind == "profile")
        .order_by(DeviceEvent.id)
    ).all()
    assert summaries == [
        "Applied KS2 iPads version 1",
        "Does not enforce 1 setting(s) of KS2 iPads version 1: device.camera",
        "Enforces every setting of KS2 iPads version 1",
    ]


def test_the_device_page_shows_each_setting_as_reported_and_not_known_otherwise(
    client: FlaskClient,
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    make_user: Callable[..., User],
) -> None:
    """P-PROFILE-1: the page says what the device said, and "Not known" until it says it."""
    silent, kiosk = make_device(home=places.trolley), make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    _report_all(session, kiosk, NOW, **{"passcode.required": "not_supported"})
    log_in_as(client, make_user(Role.TECHNICIAN))
    page = client.get(f"/devices/{silent.asset_tag}").get_data(as_text=True)
    assert "The device has never reported, so nothing it enforces is known." in page
    assert 'class="status a-not_known">Not known' in page and "a-enforced" not in page
    assert (
        "Passcode and encryption" in page and "Not known: the device has never reported it" in page
    )
    page = client.get(f"/devices/{kiosk.asset_tag}").get_data(as_text=True)
    assert 'data-setting="passcode.required"><td>Passcode</td><td>yes</td>' in page
    assert 'class="status a-not_supported">Cannot do it' in page
    assert (
        page.count('class="status a-enforced">Enforced')
        == len(_every(_desired(session, kiosk))) - 1
    )
    answer = client.get(f"/api/v1/devices/{silent.asset_tag}/profile").get_json()
    assert {s["state"] for s in answer["settings"]} == {"not_known"}
    assert answer["settings_reported_at"] is None


def test_the_trolley_page_shows_what_each_device_reported(
    client: FlaskClient,
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1, P-REG-7: per device in the trolley, its state and protection as reported."""
    silent, kiosk = make_device(home=places.trolley), make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    _report_all(session, kiosk, NOW, **{"device.bluetooth_changes": "failed"})
    record_protection(session, kiosk, passcode=False, storage_encrypted=True, details={}, at=NOW)
    session.commit()
    log_in_as(client, lead)
    page = client.get(f"/locations/{places.trolley.id}").get_data(as_text=True)
    table = page[page.index('id="place-profiles"') :]
    silent_row = table[table.index(silent.asset_tag) :].split("</tr>")[0]
    kiosk_row = table[table.index(kiosk.asset_tag) :].split("</tr>")[0]
    assert "Never reported" in silent_row and silent_row.count("not known") == 2
    assert "Not every setting enforced" in kiosk_row and "Bluetooth" in kiosk_row
    assert "<strong>no</strong>" in kiosk_row and "yes" in kiosk_row


def test_the_profile_page_flags_what_each_kind_of_device_cannot_do(
    client: FlaskClient,
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """An iPad profile on a Linux kiosk: its app and passcode rules are flagged, with why."""
    make_device(home=places.trolley, platform=Platform.LINUX, make="Test", model="Kiosk")
    make_device(home=places.trolley)
    profile = make_profile("KS2 iPads")
    services.assign(session, lead, profile, "location", places.trolley.id)
    log_in_as(client, lead)
    page = client.get(f"/profiles/{profile.id}").get_data(as_text=True)
    panel = page[page.index('id="cannot"') : page.index('id="outputs"')]
    linux = panel[panel.index('data-platform="linux"') :].split("</details>")[0]
    assert "Linux kiosks (1 get this profile)" in linux and " open" in linux.split(">")[0]
    assert "the kiosk client does not manage the computer&#39;s passcode" in linux
    assert "only where the device has a Bluetooth radio that rfkill can switch off" in linux
    ipads = panel[panel.index('data-platform="ipados"') :].split("</details>")[0]
    assert "iPads (1 get this profile)" in ipads and "1 setting flagged" in ipads
    assert "Photos wiped on return" in ipads and "a profile cannot delete photos" in ipads
    chromebooks = panel[panel.index('data-platform="chromeos"') :].split("</details>")[0]
    assert "Chromebooks (0 get this profile)" in chromebooks and " open" not in chromebooks[:40]


def test_governors_figures_count_only_what_devices_reported(
    client: FlaskClient,
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    make_user: Callable[..., User],
) -> None:
    """Governors see profiles and protection as devices reported them; silence is not known."""
    enforcing, echoing, _silent = (make_device(home=places.trolley) for _ in range(3))
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    _report_all(session, enforcing, NOW)
    row = _desired(session, echoing)
    services.record_applied(session, echoing, row.sha256, NOW)  # the hash alone
    record_protection(session, enforcing, passcode=True, storage_encrypted=True, details={}, at=NOW)
    session.commit()
    log_in_as(client, make_user(Role.GOVERNOR))
    page = client.get("/").get_data(as_text=True)
    profiles = page[page.index('id="reported-profiles"') :].split("</ul>")[0]
    assert re.search(r"Every setting enforced</span> 1<", profiles)
    assert re.search(r"Not known</span> 2<", profiles)
    protection = page[page.index('id="reported-protection"') :].split("</ul>")[0]
    assert re.search(r"Passcode and encryption on</span> 1<", protection)
    assert re.search(r"Not known</span> 2<", protection)


def test_a_device_that_only_echoes_its_profiles_hash_is_not_compliant(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1: the hash back says which document the device holds, not what it enforces."""
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "device", device.id)
    sha = _desired(session, device).sha256
    assert services.mark_published(session, device.id, sha, NOW)
    services.record_applied(session, device, sha, NOW + timedelta(minutes=1))
    session.commit()
    row = services.device_compliance(session, device)
    assert row is not None and row.state != "compliant"


def _identity(session: Session, device: Device) -> DeviceIdentity:
    identity = active_identity(session, device)
    assert identity is not None
    return identity


def _due(session: Session) -> list[tuple[int, str]]:
    """The desired states the worker would publish now, and the identity each goes to."""
    rows = session.execute(_UNPUBLISHED_STATES, {"limit": 10}).all()
    return [(state.device_id, identity.mqtt_id) for state, identity in rows]


def test_a_device_enrolled_again_is_sent_its_profile_on_its_new_identity(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    enrolled: Callable[[Device], Device],
) -> None:
    """P-PROFILE-1: a new enrolment listens on new topics, where the profile published to the
    old identity never went: it is published again, to the new identity."""
    device = make_device(home=places.trolley, platform=Platform.LINUX)
    first = _identity(session, enrolled(device))
    services.assign(session, lead, make_profile("Kiosks"), "location", places.trolley.id)
    row = _desired(session, device)
    assert _due(session) == [(device.id, first.mqtt_id)]
    services.mark_published(session, device.id, row.sha256, NOW)
    session.commit()
    assert _due(session) == []
    second = _identity(session, enrolled(device))
    assert _due(session) == [(device.id, second.mqtt_id)]


def test_an_erased_device_enforces_nothing_known_until_it_reports_again(
    client: FlaskClient,
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1: settings a device reported before its storage was erased are not counted,
    on its page, its trolley's, the compliance list or the governors' figures."""
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    row = _report_all(session, device, NOW)
    assert _state(session, device) == "compliant"

    confirm_reset(session, device, NOW + timedelta(hours=1))
    assert _state(session, device) == "erased"
    assert services.compliance_summary(session, lead.school_id)["compliant"] == 0
    view = services.applied_view(session, device)
    assert {r.state for r in view.rows} == {"not_known"} and view.reported_at is None
    assert "erased after its last report" in view.note
    figures = reports.compliance_figures(session, lead.school_id)
    assert [line.applied for line in figures.settings] == [0] * len(figures.settings)
    log_in_as(client, lead)
    page = client.get(f"/locations/{places.trolley.id}").get_data(as_text=True)
    table = page[page.index('id="place-profiles"') :]
    assert "Erased, not reported since" in table.split("</tr>")[1]
    listed = client.get("/profiles/compliance").get_data(as_text=True)
    assert "1 erased, not reported since" in listed
    waiting = listed[listed.index('id="pending"') :]
    assert device.asset_tag in waiting and '<code title="">nothing</code>' in waiting

    # Enrolled again, it echoes the hash: its settings from before the erase still do not count.
    services.record_applied(session, device, row.sha256, NOW + timedelta(hours=2))
    session.commit()
    assert _state(session, device) == "unconfirmed"
    assert "since its storage was erased" in services.applied_view(session, device).note
    _report_all(session, device, NOW + timedelta(hours=3))
    assert _state(session, device) == "compliant"


def _state(session: Session, device: Device) -> str:
    row = services.device_compliance(session, device)
    assert row is not None
    return row.state
