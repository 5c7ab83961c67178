"""Enrolment refuses a device key that could not be a real Ed25519 key."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from server.crypto import SecretBox
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity, EnrolmentToken
from server.enrolment.services import enrol, issue_enrolment_token
from server.errors import ValidationFailed

# The identity point: of small order, so one made-up signature would verify for every message.
SMALL_ORDER_KEY = base64.urlsafe_b64encode(bytes([1]) + bytes(31)).rstrip(b"=").decode()


def test_a_key_of_small_order_is_refused_and_the_code_stays_usable(
    app: Flask, session: Session, make_device: Callable[..., Device]
) -> None:
    settings = app.extensions["trolley.settings"]
    device = make_device(asset_tag="OAK-IPAD-001")
    token, payload = issue_enrolment_token(session, None, device, settings)
    with pytest.raises(ValidationFailed, match="not a valid Ed25519 key"):
        enrol(
            session,
            SecretBox(settings.data_keys),
            settings,
            token=payload.token,
            public_key=SMALL_ORDER_KEY,
            platform="simulated",
        )
    assert session.get(EnrolmentToken, token.id).used_at is None  # type: ignore[union-attr]
    assert session.query(DeviceIdentity).filter_by(device_id=device.id).count() == 0
