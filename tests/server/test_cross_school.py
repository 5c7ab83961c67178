"""Every route that names a device refuses a user of another school, in every role."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.auth.models import Role, User
from server.devices.models import Device
from server.schools.models import School
from tests.server.conftest import csrf_token, log_in_as


@pytest.mark.parametrize("role", [Role.SBM, Role.TECHNICIAN, Role.HEADTEACHER, Role.COMPUTING_LEAD])
def test_no_route_reaches_another_schools_device(
    role: Role,
    app: Flask,
    client: FlaskClient,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1 / P-REG-1: school-scoped queries on every resource that takes an asset tag."""
    theirs = make_device(in_school=other_school, asset_tag="ELM-0001", serial="ELMCROSS0001")
    me = make_user(role)
    headers = token_for(me)
    log_in_as(client, me)
    token = csrf_token(client, "/account")
    checked = 0
    for rule in app.url_map.iter_rules():
        if "<asset_tag>" not in rule.rule:
            continue
        url = rule.rule.replace("<asset_tag>", theirs.asset_tag)
        url = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", url)
        url = re.sub(r"<int:\w+>", "1", url)
        url = re.sub(r"<\w+>", "x", url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if rule.rule.startswith("/api/"):
                response = client.open(url, method=method, json={}, headers=headers)
            else:
                response = client.open(url, method=method, data={"csrf_token": token})
            body = response.get_data(as_text=True)
            assert response.status_code in (400, 403, 404, 302), (
                f"{method} {url}: {response.status_code}"
            )
            assert theirs.serial not in body, f"{method} {url} leaked the other school's device"
            checked += 1
    assert checked >= 8
    # A redirect must not hide an action: nothing happened to their device.
    from sqlalchemy import func, select

    from server.devices.models import DeviceEvent

    session = app.extensions["trolley.db"].session()
    events = session.scalar(select(func.count()).where(DeviceEvent.device_id == theirs.id))
    assert events == 0
