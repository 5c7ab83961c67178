"""Profiles through Google: pushed to the org unit, read back into per-setting applied state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.chromebooks import services
from server.chromebooks.models import GoogleLink, GooglePolicySetting, PolicyState
from server.chromebooks.services import policies
from server.chromebooks.services.google import GoogleApi
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device
from server.errors import ValidationFailed
from server.profiles import services as profiles
from server.profiles.models import Profile
from server.schools.models import School
from tests.server.chromebooks.conftest import Chromebook
from tests.server.chromebooks.fake_google import FakeGoogle


def _settings(session: Session) -> dict[tuple[str, str], GooglePolicySetting]:
    return {(r.schema, r.field): r for r in session.scalars(select(GooglePolicySetting))}


def test_a_profile_is_pushed_to_the_org_unit_and_read_back_setting_by_setting(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    profiled: Device,
    technician: User,
    school: School,
    unit: str,
) -> None:
    """P-PROFILE-1, P-PHOTO-1: ephemeral sessions and the return message go with the profile."""
    assert policies.push_profiles(session, box, api, technician) == []
    in_google = google.policies[unit]
    assert in_google["chrome.devices.WipeUserData"] == {"ephemeralUsersEnabled": True}
    assert in_google[policies.DISABLED_MESSAGE] == {"deviceDisabledMessage": school.return_message}
    assert in_google["chrome.users.IncognitoMode"] == {
        "incognitoModeAvailability": "INCOGNITO_MODE_AVAILABILITY_ENUM_UNAVAILABLE"
    }
    # One body per root namespace, as Google requires.
    modified = [body for name, _p, body in google.calls if name.endswith("batchModify")]
    assert len(modified) == 2
    rows = _settings(session)
    ephemeral = rows[("chrome.devices.WipeUserData", "ephemeralUsersEnabled")]
    assert (ephemeral.state, ephemeral.applied) == (PolicyState.ENFORCED, True)
    assert ephemeral.evidence == "Google reports it in force" and ephemeral.checked_at
    assert all(r.state is PolicyState.ENFORCED for (schema, _f), r in rows.items() if schema), {
        k: r.state for k, r in rows.items()
    }
    idle = rows[("", "device.auto_lock_minutes")]
    assert idle.state is PolicyState.NOT_SUPPORTED and "Admin console" in idle.evidence
    assert ("", "device.ephemeral_sessions") not in rows  # sent as a device policy instead


def test_a_setting_changed_in_the_admin_console_shows_as_not_in_force(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    profiled: Device,
    technician: User,
    unit: str,
) -> None:
    """The record never claims more than Google says is in force."""
    policies.push_profiles(session, box, api, technician)
    google.policies[unit]["chrome.devices.WipeUserData"]["ephemeralUsersEnabled"] = False
    policies.check_policies(session, box, api, link.school_id, link.updated_at)
    row = _settings(session)[("chrome.devices.WipeUserData", "ephemeralUsersEnabled")]
    assert row.state is PolicyState.FAILED
    assert row.evidence == "Google reports false in force instead"


def test_a_policy_name_google_does_not_publish_is_never_sent(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    profiled: Device,
    technician: User,
) -> None:
    link.known_schemas = [n for n in link.known_schemas if n != "chrome.users.IncognitoMode"]
    with pytest.raises(ValidationFailed, match=r"does not know .*chrome\.users\.IncognitoMode"):
        policies.push_profiles(session, box, api, technician)
    assert not [name for name, _p, _b in google.calls if name.endswith("batchModify")]


def test_two_profiles_in_one_org_unit_are_refused_not_guessed(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    chromebook: Chromebook,
    assign_ks2: Callable[[], Profile],
    lead: User,
    technician: User,
    unit: str,
) -> None:
    first, _ = chromebook(orgUnitId=unit)
    chromebook(orgUnitId=unit)
    assign_ks2()
    other = profiles.create_profile(session, lead, name="Exams", start_from="exam-kiosk")
    profiles.assign(session, lead, other, "device", first.id)
    services.sync_devices(session, box, api, link.school_id)
    (problem,) = policies.push_profiles(session, box, api, technician)
    assert problem.startswith("Org unit /Pupils holds Chromebooks with different profiles")
    assert "Exams on " + first.asset_tag in problem
    assert not [name for name, _p, _b in google.calls if name.endswith("batchModify")]


def _pushes(google: FakeGoogle) -> int:
    return len([name for name, _p, _b in google.calls if name.endswith("batchModify")])


def test_a_profile_assigned_to_chromebooks_reaches_google_without_the_button(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    profiled_after_sync: Device,
    unit: str,
) -> None:
    """P-PROFILE-1, P-PHOTO-1: assigning the profile is enough; it is sent once, not every run."""
    session.commit()
    assert services.push_changed(session, box, api, link.school_id, utcnow()) == 1
    assert google.policies[unit]["chrome.devices.WipeUserData"] == {"ephemeralUsersEnabled": True}
    row = _settings(session)[("chrome.devices.WipeUserData", "ephemeralUsersEnabled")]
    assert row.state is PolicyState.ENFORCED
    sent = _pushes(google)
    assert services.push_changed(session, box, api, link.school_id, utcnow()) == 0
    assert _pushes(google) == sent  # nothing changed, so nothing is sent again


def test_a_refusal_shows_in_googles_words_and_is_not_sent_again(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    profiled_after_sync: Device,
    unit: str,
) -> None:
    google.fail(400, match="batchModify", message="Invalid value at 'requests[0].policy_value'")
    assert services.push_changed(session, box, api, link.school_id, utcnow()) == 0
    rows = [r for (schema, _f), r in _settings(session).items() if schema]
    assert rows and all(r.state is PolicyState.FAILED for r in rows)
    assert all("Invalid value at 'requests[0].policy_value'" in r.evidence for r in rows)
    sent = _pushes(google)
    services.push_changed(session, box, api, link.school_id, utcnow())
    assert _pushes(google) == sent


def test_google_down_leaves_the_profile_waiting_and_the_next_run_sends_it(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    profiled_after_sync: Device,
    unit: str,
) -> None:
    google.fail(503, match="batchModify")
    assert services.push_changed(session, box, api, link.school_id, utcnow()) == 0
    row = _settings(session)[("chrome.devices.WipeUserData", "ephemeralUsersEnabled")]
    assert row.state is PolicyState.PENDING and "try again" in row.evidence
    assert "currently unavailable" in row.evidence
    assert services.push_changed(session, box, api, link.school_id, utcnow()) == 1
    session.refresh(row)
    assert row.state is PolicyState.ENFORCED


def test_a_deprovisioned_chromebook_is_not_told_its_policy_is_in_force(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    link: GoogleLink,
    profiled: Device,
    chromebook: Chromebook,
    technician: User,
    unit: str,
) -> None:
    """P-PROFILE-2: Google's read-back of an org unit's policy speaks for the Chromebooks Google
    still manages; one deprovisioned out of management (still listed in the unit) is not
    recorded as having the profile in force."""
    gone, _resource = chromebook(orgUnitId=unit, status="DEPROVISIONED")
    profiles.recompute_desired(session, link.school_id, [gone.id])  # the school's profile
    session.commit()
    services.sync_devices(session, box, api, link.school_id)
    policies.push_profiles(session, box, api, technician)
    assert profiles.applied_view(session, profiled).applied
    view = profiles.applied_view(session, gone)
    assert not view.applied and view.reported_at is None
    assert all(row.state != "enforced" for row in view.rows)


def test_googles_read_back_is_the_chromebooks_applied_state_as_for_a_kiosk(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    profiled: Device,
    technician: User,
    unit: str,
) -> None:
    """P-PHOTO-1, P-PROFILE-2: only what Google reports in force, with when it said so."""
    policies.push_profiles(session, box, api, technician)
    view = profiles.applied_view(session, profiled)
    states = {r.setting: r for r in view.rows}
    ephemeral = states["device.ephemeral_sessions"]
    assert (ephemeral.state, ephemeral.detail) == ("enforced", "Google reports it in force")
    assert ephemeral.evidence["in_force"] == {
        "chrome.devices.WipeUserData.ephemeralUsersEnabled": True
    }
    assert states["browser.incognito"].state == "enforced"
    assert states["device.auto_lock_minutes"].state == "not_supported"
    assert view.applied and view.reported_at is not None
    google.policies[unit]["chrome.devices.WipeUserData"]["ephemeralUsersEnabled"] = False
    later = utcnow()
    policies.check_policies(session, box, api, link.school_id, later)
    view = profiles.applied_view(session, profiled)
    ephemeral = next(r for r in view.rows if r.setting == "device.ephemeral_sessions")
    assert ephemeral.state == "failed" and "false in force instead" in ephemeral.detail
    assert not view.applied
