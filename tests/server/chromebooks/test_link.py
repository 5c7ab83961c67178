"""Linking a school to its Google domain: the sealed key, and a test that names what is missing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.chromebooks import services
from server.chromebooks.models import GoogleDevice, GoogleLink
from server.chromebooks.services.google import GoogleApi
from server.chromebooks.services.policies import DISABLED_MESSAGE, WIPE_USER_DATA
from server.commands import services as commands
from server.crypto import SecretBox
from server.devices.models import Device
from server.errors import ValidationFailed
from tests.server.chromebooks.conftest import ADMIN
from tests.server.chromebooks.fake_google import FakeGoogle


def _actions(session: Session, school_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ActivityEntry.action)
            .where(ActivityEntry.school_id == school_id, ActivityEntry.action.like("google.%"))
            .order_by(ActivityEntry.id)
        )
    )


def test_the_key_is_sealed_and_the_link_test_checks_scopes_apis_and_policy_names(
    session: Session, link: GoogleLink, box: SecretBox
) -> None:
    assert "PRIVATE KEY" not in link.key_sealed
    assert json.loads(box.open(link.key_sealed))["client_email"] == link.client_email
    assert link.working and link.tested_at is not None
    assert {DISABLED_MESSAGE, WIPE_USER_DATA, "chrome.users.UrlBlocking"} <= set(link.known_schemas)
    assert _actions(session, link.school_id) == ["google.linked", "google.link_tested"]


def test_a_scope_missing_from_domain_wide_delegation_is_named(
    session: Session, box: SecretBox, google: FakeGoogle, api: GoogleApi, technician: User
) -> None:
    key = google.service_account(granted={services.DIRECTORY_SCOPE})
    services.save_link(
        session,
        box,
        technician,
        key_text=json.dumps(key),
        customer_id=google.customer_id,
        admin_email=ADMIN,
    )
    link = services.check_link(session, box, api, technician)
    assert not link.working
    assert len(link.test_problems) == 1
    problem = link.test_problems[0]
    assert services.POLICY_SCOPE in problem and "Chrome policy" in problem
    assert "domain-wide delegation" in problem


def test_an_administrator_without_the_chrome_policy_privilege_is_named(
    session: Session, box: SecretBox, google: FakeGoogle, api: GoogleApi, technician: User
) -> None:
    google.admin("devices.only@oakfield.example", "devices")
    services.save_link(
        session,
        box,
        technician,
        key_text=json.dumps(google.service_account()),
        customer_id=google.customer_id,
        admin_email="devices.only@oakfield.example",
    )
    link = services.check_link(session, box, api, technician)
    assert link.test_problems == [
        "Reading Chrome policy schemas (Chrome Policy API): Google refused: The caller does "
        "not have permission. Check that the administrator Trolley acts as has the ChromeOS "
        "device and Chrome policy admin privileges."
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "it is not JSON"),
        ('{"type": "authorized_user"}', "not a service-account key"),
        ('{"type": "service_account", "client_email": "a@b.c"}', "incomplete"),
        (
            '{"type": "service_account", "client_email": "a@b.c", "client_id": "1", '
            '"private_key": "nonsense", "private_key_id": "k"}',
            "cannot be read",
        ),
    ],
)
def test_a_wrong_key_file_is_refused_in_plain_words(
    session: Session, box: SecretBox, technician: User, text: str, words: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        services.save_link(
            session, box, technician, key_text=text, customer_id="C03az79cb", admin_email=ADMIN
        )
    assert words in refused.value.message
    assert services.get_link(session, technician.school_id) is None


def test_replacing_the_key_keeps_the_rest_and_removing_the_link_forgets_the_chromebooks(
    session: Session,
    box: SecretBox,
    google: FakeGoogle,
    api: GoogleApi,
    link: GoogleLink,
    technician: User,
    chromebook: Callable[..., tuple[Device, dict[str, object]]],
) -> None:
    device, _resource = chromebook()
    services.sync_devices(session, box, api, link.school_id)
    assert commands.can_reach(session, device)
    new_key = google.service_account()
    services.save_link(
        session,
        box,
        technician,
        key_text=json.dumps(new_key),
        customer_id=link.customer_id,
        admin_email=ADMIN,
        school_networks="81.2.69.0/24",
    )
    assert link.client_email == new_key["client_email"]
    assert link.tested_at is None  # a changed link must be tested again
    services.remove_link(session, technician)
    assert session.scalars(select(GoogleDevice)).all() == []
    assert not commands.can_reach(session, device)
    assert _actions(session, technician.school_id)[-2:] == [
        "google.key_replaced",
        "google.unlinked",
    ]


def test_school_networks_must_be_addresses(
    session: Session, box: SecretBox, technician: User
) -> None:
    with pytest.raises(ValidationFailed, match="not an IP address"):
        services.parse_networks("81.2.69.0/24, the school")
    assert services.parse_networks("81.2.69.160\n10.0.0.0/8") == ["10.0.0.0/8", "81.2.69.160/32"]
