"""Downloading an iPad's enrolment profile makes a new RSA key; nobody else waits for it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.db import Database, make_engine, migrate, utcnow
from server.devices.models import Device
from server.ipads.services import enrolling
from server.ipads.services.enrolling import enrolment_link
from server.schools.demo import MDM_IPADS, seed_demo
from tests.server.conftest import file_app, settings_on


def test_the_identity_key_is_made_without_holding_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making a 2048-bit key takes a good part of a second on a school's server: a teacher's
    scan written meanwhile must not wait for it (a class of iPads enrolling would stall scans)."""
    url = f"sqlite:///{tmp_path / 'school.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    database = Database(url)
    with database.begin() as session:
        seed_demo(session)
        device = session.scalar(select(Device).where(Device.asset_tag == MDM_IPADS[0]))
        assert device is not None
        settings = settings_on(url, tmp_path / "instance")
        link = enrolment_link(session, None, device, settings, now=utcnow()).url
    database.engine.dispose()

    others: list[str] = []
    make_key = enrolling.rsa.generate_private_key

    def slow_key(**kwargs: Any) -> Any:
        # Another writer, with little patience, while the key is being made.
        other = sqlite3.connect(tmp_path / "school.db", timeout=0.5, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            others.append("wrote")
        except sqlite3.OperationalError as exc:
            others.append(str(exc))
        finally:
            other.close()
        return make_key(**kwargs)

    monkeypatch.setattr(enrolling.rsa, "generate_private_key", slow_key)
    app = file_app(url, tmp_path / "instance")
    try:
        profile = app.test_client().get("/" + link.split("/", 3)[3])
        assert profile.status_code == 200, profile.get_data(as_text=True)
        assert others == ["wrote"]
        # The code is spent all the same, once.
        assert app.test_client().get("/" + link.split("/", 3)[3]).status_code == 410
    finally:
        app.extensions["trolley.db"].dispose()
