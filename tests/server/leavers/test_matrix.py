"""Role × action for leaver cases: who may do each step, through the API and the pages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.auth.models import Role, User
from server.auth.permissions import PUBLIC, ROLE_PERMISSIONS, Permission, declared_permission
from server.devices.models import Device
from server.leavers import services
from server.personal_devices.services import add_entry
from tests.server.conftest import csrf_token, log_in_as
from tests.server.leavers.conftest import PIN, People, last_day_ahead

MANAGERS = {Role.SBM, Role.HEADTEACHER}


def _actions(case_id: int, device: Device, item_id: int, personal_id: int) -> list[tuple]:
    """(name, method, url, body) for every step of a case."""
    base = f"/api/v1/leavers/{case_id}"
    return [
        ("list", "GET", "/api/v1/leavers", None),
        ("view", "GET", base, None),
        ("record", "GET", f"{base}/record", None),
        ("credentials", "POST", f"{base}/items/{item_id}/credentials", {"passcode": PIN}),
        ("return", "POST", f"{base}/returns", {"code": device.asset_tag}),
        ("reset", "POST", f"{base}/items/{item_id}/reset", None),
        ("evidence", "POST", f"{base}/items/{item_id}/evidence", {"evidence": "Wiped by hand"}),
        ("remove", "POST", f"{base}/items/{personal_id}/remove", None),
        ("sign", "POST", f"{base}/sign", None),
        ("close", "POST", f"{base}/close", None),
        ("link", "POST", f"{base}/link", None),
    ]


# What someone NOT named on the case gets, by role (managers see every case).
OUTSIDER = {
    "list": {Role.SBM: 200, Role.HEADTEACHER: 200},
    "view": {Role.SBM: 200, Role.HEADTEACHER: 200},
    "record": {Role.SBM: 200, Role.HEADTEACHER: 200},
    "credentials": {},
    "return": {Role.SBM: 200, Role.HEADTEACHER: 200},
    "reset": {},
    "evidence": {},
    "remove": {Role.SBM: 200, Role.HEADTEACHER: 200},
    "sign": {Role.SBM: 403, Role.HEADTEACHER: 403},
    "close": {Role.SBM: 409, Role.HEADTEACHER: 409},
    "link": {Role.SBM: 201, Role.HEADTEACHER: 201},
}
PERMISSION = {
    "list": Permission.LEAVERS_MANAGE,
    "remove": Permission.LEAVERS_MANAGE,
    "close": Permission.LEAVERS_MANAGE,
    "link": Permission.LEAVERS_MANAGE,
    "reset": Permission.COMMANDS_SEND,
    "evidence": Permission.DEVICES_ENROL,
}


@pytest.fixture
def setting(
    people: People,
    held: list[Device],
    open_case: Callable[..., services.Opened],
    session: object,
) -> tuple[services.Opened, Device, int, int]:
    add_entry(
        session,  # type: ignore[arg-type]
        people.sbm,
        {"owner_id": people.leaver.id, "make": "Apple", "model": "iPhone", "serial": "PX9"},
    )
    opened = open_case()
    device_item = next(i for i in opened.case.items if i.device_id == held[1].id)
    personal = next(i for i in opened.case.items if i.device is None)
    return opened, held[1], device_item.id, personal.id


@pytest.mark.parametrize("role", list(Role))
def test_people_not_on_the_case(
    role: Role,
    client: FlaskClient,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
    setting: tuple[services.Opened, Device, int, int],
) -> None:
    """P-SEC-1, P-LEAVE-1: a role reaches a step only if its permission and its part allow."""
    opened, device, item_id, personal_id = setting
    headers = token_for(make_user(role))
    for name, method, url, body in _actions(opened.case.id, device, item_id, personal_id):
        needed = PERMISSION.get(name, Permission.ACCOUNT_USE)
        if needed not in ROLE_PERMISSIONS[role]:
            expected = 403
        else:
            expected = OUTSIDER[name].get(role, 404)
        answer = client.open(url, method=method, json=body, headers=headers)
        assert answer.status_code == expected, f"{role} {name}: {answer.get_json()}"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (
            "leaver",
            {
                "view": 200,
                "record": 200,
                "credentials": 200,
                "return": 403,
                "reset": 403,
                "evidence": 403,
                "remove": 403,
                "sign": 409,
                "close": 403,
                "link": 403,
            },
        ),
        (
            "manager",
            {
                "view": 200,
                "record": 200,
                "credentials": 404,
                "return": 403,
                "reset": 403,
                "evidence": 403,
                "remove": 403,
                "sign": 409,
                "close": 403,
                "link": 403,
            },
        ),
        (
            "tech",
            {
                "view": 200,
                "record": 200,
                "credentials": 404,
                "return": 200,
                "reset": 400,
                "evidence": 200,
                "remove": 403,
                "sign": 409,
                "close": 403,
                "link": 403,
            },
        ),
    ],
)
def test_the_people_on_the_case(
    part: str,
    expected: dict[str, int],
    client: FlaskClient,
    people: People,
    token_for: Callable[[User], dict[str, str]],
    setting: tuple[services.Opened, Device, int, int],
) -> None:
    """P-LEAVE-1: the leaver hands over, the technician returns and resets, each signs."""
    opened, device, item_id, personal_id = setting
    headers = token_for(getattr(people, part))
    for name, method, url, body in _actions(opened.case.id, device, item_id, personal_id):
        if name == "list":
            continue
        answer = client.open(url, method=method, json=body, headers=headers)
        assert answer.status_code == expected[name], f"{part} {name}: {answer.get_json()}"


def _fill(rule: str, case_id: int, item_id: int) -> str:
    rule = rule.replace("<int:case_id>", str(case_id)).replace("<int:item_id>", str(item_id))
    return rule.replace("<token>", "no-such-token")


@pytest.mark.parametrize("role", list(Role))
def test_every_leaver_page_answers_each_role(
    role: Role,
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    setting: tuple[services.Opened, Device, int, int],
) -> None:
    """P-SEC-1: every leaver route declares its permission and never fails with a 5xx."""
    opened, _device, item_id, _personal = setting
    log_in_as(client, make_user(role))
    token = csrf_token(client, "/account")
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/leavers", "/api/v1/leavers")):
            continue
        permission = declared_permission(app.view_functions[rule.endpoint])
        assert permission is not None
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = _fill(rule.rule, opened.case.id, item_id)
            if rule.rule.startswith("/api/"):
                answer = client.open(
                    url,
                    method=method,
                    headers={"X-CSRFToken": token},
                    json={} if method != "GET" else None,
                )
            else:
                answer = client.open(url, method=method, data={"csrf_token": token})
            allowed = permission == PUBLIC or Permission(permission) in ROLE_PERMISSIONS[role]
            assert answer.status_code < 500, f"{method} {rule.rule} failed for {role}"
            if not allowed:
                assert answer.status_code == 403, f"{role} must not reach {method} {rule.rule}"
            checked += 1
    assert checked >= 40


def test_a_leaver_can_open_the_form_to_open_a_case_only_as_a_manager(
    client: FlaskClient, people: People
) -> None:
    log_in_as(client, people.leaver)
    assert client.get("/leavers/new").status_code == 403
    log_in_as(client, people.sbm)
    page = client.get("/leavers/new")
    assert page.status_code == 200 and "Open a leaver case" in page.get_data(as_text=True)
    token = csrf_token(client, "/leavers/new")
    made = client.post(
        "/leavers/new",
        data={
            "csrf_token": token,
            "leaver_id": str(people.leaver.id),
            "last_day": last_day_ahead().isoformat(),
            "line_manager_id": str(people.manager.id),
            "technician_id": str(people.tech.id),
        },
    )
    assert made.status_code == 302
    page = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "held no school devices" in page
