"""One test walks every role × every route and checks the declared permission holds."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.auth.models import Role, User
from server.auth.permissions import PUBLIC, ROLE_PERMISSIONS, Permission, declared_permission
from server.devices.models import Device
from tests.server.conftest import csrf_token, log_in_as

# Routes that only make sense mid-log-in or that end a session: checked in test_auth.
LOGIN_FLOW = {"/login", "/login/code", "/login/code/setup", "/logout", "/api/v1/openapi.json"}
# Served to anyone, logged in or not: checked in test_favicon; the iPads' MDM endpoints, which
# authenticate by one-time code or the iPad's signature, in tests/server/ipads.
EVERYONE = {"/favicon.ico", "/mdm/enrol/<token>", "/mdm/checkin", "/mdm/connect"}


def _routes(app: Flask) -> list[tuple[str, str, object]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in LOGIN_FLOW | EVERYONE:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append(
                (rule.rule, method, declared_permission(app.view_functions[rule.endpoint]))
            )
    return found


def _fill(rule: str, device: Device) -> str:
    rule = rule.replace("<asset_tag>", device.asset_tag)
    rule = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", rule)
    return re.sub(r"<int:\w+>", "999999", rule)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_against_every_route(
    role: Role,
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-SEC-1: every route declares a permission; each role gets exactly what its map allows."""
    device = make_device()
    log_in_as(client, make_user(role))
    token = csrf_token(client, "/account")
    checked = 0
    for rule, method, permission in _routes(app):
        assert permission is not None, f"{rule} declares no permission"
        url = _fill(rule, device)
        if rule.startswith("/api/"):
            response = client.open(
                url,
                method=method,
                json={} if method != "GET" else None,
                headers={"X-CSRFToken": token},
            )
        else:
            response = client.open(url, method=method, data={"csrf_token": token})
        allowed = permission == PUBLIC or Permission(permission) in ROLE_PERMISSIONS[role]
        if allowed:
            assert response.status_code != 403, f"{role} should reach {method} {rule}"
            assert response.status_code < 500, f"{method} {rule} failed for {role}"
        else:
            assert response.status_code == 403, f"{role} must not reach {method} {rule}"
        checked += 1
    assert checked >= 20


def test_anonymous_visitors_are_sent_to_log_in(
    app: Flask, client: FlaskClient, make_device: Callable[..., Device]
) -> None:
    device = make_device()
    for rule, method, _permission in _routes(app):
        url = _fill(rule, device)
        response = client.open(url, method=method)
        if rule.startswith("/api/"):
            assert response.status_code in (400, 401), f"{method} {rule}: {response.status_code}"
        elif method == "GET":
            assert response.status_code == 302 and "/login" in response.headers["Location"], rule
        else:
            assert response.status_code in (400, 302), rule  # CSRF refuses before anything else


def test_a_label_url_opens_the_device_page_after_log_in(
    client: FlaskClient, make_user: Callable[..., User], make_device: Callable[..., Device]
) -> None:
    """P-REG-3: a phone opening a label's QR URL lands on that device, through log-in if needed."""
    device = make_device()
    response = client.get(f"/d/{device.asset_tag}")
    assert response.status_code == 302 and "next=%2Fd%2F" in response.headers["Location"]
    user = make_user()
    token = csrf_token(client)
    after = client.post(
        f"/login?next=/d/{device.asset_tag}",
        data={"csrf_token": token, "email": user.email, "password": "correct-horse-battery"},
    )
    assert after.headers["Location"] == f"/d/{device.asset_tag}"
    page = client.get(after.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert device.serial in page
