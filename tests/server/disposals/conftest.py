"""Fixtures for disposals: people, devices with erasure evidence, a ready draft batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.disposals.models import Disposal
from server.disposals.services import create_batch, mark_reset_confirmed

DETAILS = {
    "collection_date": date(2025, 7, 18),
    "agency_name": "Green IT Recycling Ltd",
    "waste_transfer_note": "WTN-2025-0412",
    "erasure_certificate": "CERT-88231",
}


@pytest.fixture
def sbm(make_user: Callable[..., User]) -> User:
    return make_user(Role.SBM)


@pytest.fixture
def technician(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN)


@pytest.fixture
def reset_device(session: Session, make_device: Callable[..., Device]) -> Callable[..., Device]:
    """A device in stock whose factory reset the device itself acknowledged."""

    def make(**fields: Any) -> Device:
        fields.setdefault("status", DeviceStatus.IN_STOCK)
        device = make_device(**fields)
        mark_reset_confirmed(session, device, utcnow())
        session.commit()
        return device

    return make


@pytest.fixture
def batch(session: Session, sbm: User) -> Disposal:
    """A draft batch with every detail filled in."""
    return create_batch(session, sbm, DETAILS)
