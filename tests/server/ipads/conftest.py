"""Fixtures for iPads: a technician and an iPad enrolled through the real profile download."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device
from server.ipads import services
from server.ipads.simulator import SimulatedIpad

Enrol = Callable[..., tuple[SimulatedIpad, Device]]


@pytest.fixture
def technician(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN)


@pytest.fixture
def enrol_ipad(
    app: Flask,
    client: FlaskClient,
    session: Session,
    make_device: Callable[..., Device],
    technician: User,
) -> Enrol:
    settings = app.extensions["trolley.settings"]

    def make(device: Device | None = None, **kwargs: object) -> tuple[SimulatedIpad, Device]:
        device = device or make_device()
        link = services.enrolment_link(session, technician, device, settings, now=utcnow())
        path = "/" + link.url.split("/", 3)[3]
        profile = client.get(path)
        assert profile.status_code == 200, profile.get_data(as_text=True)
        ipad = SimulatedIpad(client, **kwargs)  # type: ignore[arg-type]
        ipad.enrol(profile.data)
        assert client.get(path).status_code == 410  # the link works once
        return ipad, device

    return make
