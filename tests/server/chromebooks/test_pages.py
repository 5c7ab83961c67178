"""The pages a technician uses: linking the domain, syncing, a Chromebook's page, enrolment."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.chromebooks.models import GoogleDevice, GoogleLink
from server.devices.models import Device, Platform
from tests.server.chromebooks.conftest import ADMIN
from tests.server.chromebooks.fake_google import FakeGoogle
from tests.server.conftest import csrf_token, log_in_as


def _link_by_form(client: FlaskClient, google: FakeGoogle) -> str:
    token = csrf_token(client, "/chromebooks")
    key = json.dumps(google.service_account()).encode()
    response = client.post(
        "/chromebooks/link",
        data={
            "csrf_token": token,
            "key_file": (io.BytesIO(key), "school-project-1234.json"),
            "customer_id": google.customer_id,
            "admin_email": ADMIN,
            "school_networks": "81.2.69.0/24",
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == 200
    return token


def test_a_technician_links_tests_and_syncs_the_domain_from_the_page(
    client: FlaskClient,
    session: Session,
    google: FakeGoogle,
    technician: User,
    make_device: Callable[..., Device],
) -> None:
    device = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    google.add_device(device.serial)
    google.add_device("NEWCB00042", model="Acer Chromebook Spin 512")
    log_in_as(client, technician)
    token = _link_by_form(client, google)
    page = client.get("/chromebooks").get_data(as_text=True)
    assert "Not tested since it was saved" in page
    assert "PRIVATE KEY" not in page  # the key is never shown again
    page = client.post(
        "/chromebooks/link/test", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "The link works" in page
    page = client.post(
        "/chromebooks/sync", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "2 Chromebooks in Google, 1 matched to the register, 1 not in the register yet" in page
    assert "NEWCB00042" in page
    (unknown,) = session.scalars(select(GoogleDevice).where(GoogleDevice.device_id.is_(None)))
    response = client.post(
        f"/chromebooks/devices/{unknown.id}/add",
        data={"csrf_token": token, "asset_tag": "CB-042"},
    )
    assert response.status_code == 302 and response.location.endswith("/devices/CB-042")
    session.refresh(unknown)
    assert unknown.device is not None and unknown.device.platform is Platform.CHROMEOS
    assert unknown.device.model == "Acer Chromebook Spin 512"


def test_a_wrong_key_upload_is_explained_and_nothing_is_saved(
    client: FlaskClient, session: Session, google: FakeGoogle, technician: User
) -> None:
    log_in_as(client, technician)
    token = csrf_token(client, "/chromebooks")
    page = client.post(
        "/chromebooks/link",
        data={
            "csrf_token": token,
            "key_file": (io.BytesIO(b"<html>not a key</html>"), "key.json"),
            "customer_id": google.customer_id,
            "admin_email": ADMIN,
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "not a Google service-account key" in page
    assert session.scalar(select(GoogleLink)) is None


def test_a_chromebooks_page_shows_its_google_facts_and_commands_can_be_sent(
    client: FlaskClient,
    session: Session,
    link: GoogleLink,
    box: object,
    api: object,
    google: FakeGoogle,
    technician: User,
    make_device: Callable[..., Device],
) -> None:
    from server.chromebooks import services

    device = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    google.add_device(device.serial, osVersion="126.0.6478.132")
    services.sync_devices(session, box, api, link.school_id)  # type: ignore[arg-type]
    log_in_as(client, technician)
    page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert "In Google" in page and "126.0.6478.132" in page and "/Pupils" in page
    assert "2 (names are not kept)" in page
    assert "Reached through the school's Google domain" in page
    assert f"/devices/{device.asset_tag}/commands/wipe_photos" in page
    api_facts = client.get(f"/api/v1/devices/{device.asset_tag}/google").get_json()
    assert api_facts["in_google"] and api_facts["os_version"] == "126.0.6478.132"


def test_the_enrolment_page_explains_google_enrolment_for_a_chromebook(
    client: FlaskClient, make_user: Callable[..., User], make_device: Callable[..., Device]
) -> None:
    """A Chromebook is enrolled with Google, not with the Linux kiosk client."""
    device = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    log_in_as(client, make_user(Role.TECHNICIAN))
    page = client.get(f"/enrolment/{device.asset_tag}").get_data(as_text=True)
    assert "enrolled with Google, then found by Trolley" in page
    assert "trolley-kiosk enrol" not in page and "Make an enrolment code" not in page


def test_only_the_sbm_and_technicians_manage_the_google_link(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    for role, status in ((Role.TEACHER, 403), (Role.COMPUTING_LEAD, 403), (Role.SBM, 200)):
        log_in_as(client, make_user(role))
        assert client.get("/chromebooks").status_code == status, role


def test_a_pushed_profile_shows_each_settings_state_on_the_page(
    client: FlaskClient,
    session: Session,
    link: GoogleLink,
    box: object,
    api: object,
    google: FakeGoogle,
    technician: User,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-PROFILE-1: the applied side, read back from Google, is what the page shows."""
    from server.chromebooks import services
    from server.profiles import services as profiles

    lead = make_user(Role.COMPUTING_LEAD)
    profile = profiles.create_profile(session, lead, name="KS2 CB", start_from="ks2-chromebook")
    profiles.assign(session, lead, profile, "school", technician.school_id)
    device = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    google.add_device(device.serial, orgUnitId=next(iter(google.org_units)))
    services.sync_devices(session, box, api, link.school_id)  # type: ignore[arg-type]
    log_in_as(client, technician)
    token = csrf_token(client, "/chromebooks")
    page = client.post(
        "/chromebooks/profiles/push", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Profiles sent to Google and read back" in page
    assert "chrome.devices.WipeUserData</code> ephemeralUsersEnabled" in page
    assert "Google reports it in force" in page and "not supported" in page
    device_page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert "Chrome policy in force on its org unit" in device_page
    # Each row says when Google read it back (P-PROFILE-2: a state with its time).
    table = device_page.split("Chrome policy in force on its org unit", 1)[1].split("</table>")[0]
    assert "<th>Google read it back</th>" in table
    row = table.split("ephemeralUsersEnabled", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert re.search(r"\d\d:\d\d on \w{3} \d{1,2} \w{3} \d{4}", cells[-1]), cells


def test_the_termly_audit_flags_chromebooks_google_does_not_list_or_has_not_heard_from(
    client: FlaskClient,
    session: Session,
    link: GoogleLink,
    box: object,
    api: object,
    google: FakeGoogle,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-REG-3, P-AUDIT-1: the audit is checked against Google's directory, not only scans."""
    from datetime import timedelta

    from server.audits import services as audits
    from server.chromebooks import services
    from server.db import utcnow

    listed = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    quiet = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    unlisted = make_device(platform=Platform.CHROMEOS, make="Lenovo", model="300e")
    google.add_device(listed.serial, lastSync=utcnow().strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    long_ago = utcnow() - timedelta(days=45)
    google.add_device(quiet.serial, lastSync=long_ago.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    services.sync_devices(session, box, api, link.school_id)  # type: ignore[arg-type]
    sbm = make_user(Role.SBM)
    audit = audits.start_audit(session, sbm)
    session.commit()
    log_in_as(client, sbm)
    page = client.get(f"/audits/{audit.id}").get_data(as_text=True)
    assert "Chromebooks checked against Google" in page
    google_part = page.split('id="google-title"', 1)[1].split("</section>", 1)[0]
    assert "Google does not list them (1)" in google_part and unlisted.asset_tag in google_part
    assert "30 days or more (1)" in google_part and quiet.asset_tag in google_part
    assert listed.asset_tag not in google_part
