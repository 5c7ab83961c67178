"""Who may change and read filtering (P-PROFILE-4), the trail of every change, and isolation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.devices.models import Device
from server.errors import Forbidden, NotFound
from server.profiles import services
from server.profiles.models import Profile
from server.schools.models import School
from tests.server.conftest import csrf_token, log_in_as
from tests.server.profiles.conftest import NOW, Places

NOT_FILTERING = [r for r in Role if r is not Role.COMPUTING_LEAD]


@pytest.mark.parametrize("role", NOT_FILTERING)
def test_only_the_filtering_role_changes_or_reads_profiles(
    role: Role,
    session: Session,
    client: FlaskClient,
    make_user: Callable[..., User],
    make_profile: Callable[..., Profile],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-PROFILE-4: only staff with 'web filtering management' make or read filtering changes."""
    profile = make_profile("KS2 iPads")
    user = make_user(role)
    text = services.latest_version(session, profile).yaml_text
    with pytest.raises(Forbidden):
        services.save_version(session, user, profile, text + "# x\n")
    with pytest.raises(Forbidden):
        services.create_profile(session, user, name="Mine", start_from="ks1-ipad")
    with pytest.raises(Forbidden):
        services.assign(session, user, profile, "school", None)
    with pytest.raises(Forbidden):
        services.history(session, user, profile)
    with pytest.raises(Forbidden):
        services.filtering_history(session, user)
    headers = token_for(user)
    assert client.get(f"/api/v1/profiles/{profile.id}", headers=headers).status_code == 403
    body = {"yaml_text": text + "# x\n"}
    saved = client.post(f"/api/v1/profiles/{profile.id}/versions", json=body, headers=headers)
    assert saved.status_code == 403
    log_in_as(client, user)
    assert client.get(f"/profiles/{profile.id}/history").status_code == 403
    assert client.get("/profiles/activity").status_code == 403
    assert [v.number for v in services.versions(session, profile)] == [1]


def test_every_change_is_in_the_activity_trail_with_its_diff(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-4: profile, assignment, group and exception changes are all logged."""
    device = make_device(home=places.trolley)
    profile = make_profile("KS2 iPads")
    text = services.latest_version(session, profile).yaml_text
    services.save_version(
        session, lead, profile, text.replace("airdrop: blocked", "airdrop: allowed")
    )
    group = services.create_group(session, lead, "Readers")
    services.add_to_group(session, lead, group, [device.asset_tag])
    assignment = services.assign(session, lead, profile, "location", places.trolley.id)
    services.unassign(session, lead, assignment.id)
    request = services.request_exception(
        session,
        teacher,
        urls=["https://www.scratch.mit.edu"],
        reason="Coding unit for the term",
        class_label="Year 4 Oak",
        target_type="group",
        target_id=group.id,
        starts_at=NOW,
        ends_at=NOW.replace(day=5),
        now=NOW,
    )
    services.approve_exception(session, lead, request.id, now=NOW)
    entries = services.filtering_history(session, lead)
    actions = [e.action for e in reversed(entries)]
    assert actions == [
        "profile.created",
        "profile.version_saved",
        "device_group.created",
        "device_group.devices_added",
        "profile.assigned",
        "profile.unassigned",
        "filter_exception.requested",
        "filter_exception.approved",
    ]
    saved = next(e for e in entries if e.action == "profile.version_saved")
    assert saved.details["changes"] == ["AirDrop: Blocked → Allowed"]
    assert saved.actor_id == lead.id
    assigned = next(e for e in entries if e.action == "profile.assigned")
    assert assigned.details["target"] == "Main site › Juniors › Year 4 › Year 4 trolley"
    # The trail itself is intact.
    assert services.filtering_history(session, lead)[0].hash


def test_a_school_cannot_see_or_touch_another_schools_filtering(
    session: Session,
    client: FlaskClient,
    other_school: School,
    lead: User,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    profile = make_profile("KS2 iPads")
    their_lead = make_user(Role.COMPUTING_LEAD, in_school=other_school)
    their_device = make_device(in_school=other_school, asset_tag="ELM-1", serial="ELMSER1")
    theirs = services.create_profile(session, their_lead, name="Elm iPads", start_from="ks1-ipad")
    with pytest.raises(NotFound):
        services.get_profile(session, their_lead, profile.id)
    with pytest.raises(NotFound):
        services.assign(session, lead, theirs, "school", None)
    with pytest.raises(NotFound):
        services.assign(session, lead, profile, "device", their_device.id)
    with pytest.raises(NotFound):
        services.assign(session, lead, profile, "school", other_school.id)
    services.assign(session, their_lead, theirs, "school", None)
    assert services.recompute_desired(session, lead.school_id) == 0

    headers = token_for(lead)
    listed = client.get("/api/v1/profiles", headers=headers).get_json()["items"]
    assert [p["name"] for p in listed] == ["KS2 iPads"]
    assert client.get(f"/api/v1/profiles/{theirs.id}", headers=headers).status_code == 404
    assert client.get("/api/v1/profiles/assignments", headers=headers).get_json()["items"] == []
    assert client.get("/api/v1/devices/ELM-1/profile", headers=headers).status_code == 404
    log_in_as(client, lead)
    assert client.get(f"/profiles/{theirs.id}").status_code == 404
    token = csrf_token(client, "/profiles")
    posted = client.post(
        f"/profiles/{theirs.id}/assign", data={"csrf_token": token, "target": "school"}
    )
    assert posted.status_code == 404
    trail = session.scalars(
        select(ActivityEntry.action).where(ActivityEntry.school_id == lead.school_id)
    ).all()
    assert "profile.assigned" not in trail
