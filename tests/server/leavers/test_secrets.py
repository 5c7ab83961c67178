"""A PIN handed over on the leaver's checklist is never in the database file or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from server import create_app
from server.auth.models import Role
from server.auth.services import create_user
from server.db import make_engine, migrate
from server.devices.models import Device, DeviceStatus, Platform
from server.escrow import services as escrow
from server.leavers import services
from server.schools.services import create_school
from tests.server.conftest import csrf_token, log_in_as
from tests.server.leavers.conftest import BASE, last_day_ahead

PASSCODE = "PIN-7731-leaver-marker"
ACCOUNT_PASSWORD = "Apple-Secret-5522-marker"


def test_secrets_from_the_checklist_never_reach_the_file_or_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """P-LEAVE-2, P-SEC-1: sealed at rest: plain text is in neither the SQLite file nor the logs."""
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'leaver.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    app = create_app(
        {
            "database_url": url,
            "testing": True,
            "instance_dir": tmp_path / "instance",
            "secure_cookies": False,
            "data_keys": [Fernet.generate_key().decode()],
        }
    )
    database = app.extensions["trolley.db"]
    with database.begin() as session:
        school = create_school(session, slug="leakcheck", name="Leak Check Primary")

        def person(role: Role, email: str) -> object:
            return create_user(
                session,
                actor=None,
                school=school,
                email=email,
                name=email.split("@")[0].title(),
                role=role,
                password="long-password-1",
            )

        sbm, tech, manager, leaver = (
            person(Role.SBM, "sbm@leak.example"),
            person(Role.TECHNICIAN, "tech@leak.example"),
            person(Role.COMPUTING_LEAD, "lead@leak.example"),
            person(Role.TEACHER, "leaver@leak.example"),
        )
        device = Device(
            school_id=school.id,
            asset_tag="LEAK-1",
            serial="LEAKSERIAL1",
            platform=Platform.IPADOS,
            make="Apple",
            model="iPad",
            status=DeviceStatus.IN_SERVICE,
            holder_id=leaver.id,  # type: ignore[attr-defined]
        )
        session.add(device)
        session.flush()
    with database.begin() as session:
        opened = services.open_case(
            session,
            session.merge(sbm),
            leaver_id=leaver.id,  # type: ignore[attr-defined]
            last_day=last_day_ahead(),
            line_manager_id=manager.id,  # type: ignore[attr-defined]
            technician_id=tech.id,  # type: ignore[attr-defined]
            base_url=BASE,
        )
        case_id, item_id = opened.case.id, opened.case.items[0].id
    client = app.test_client()
    with database.begin() as session:
        log_in_as(client, session.merge(leaver))
    token = csrf_token(client, "/leavers/mine")
    answer = client.post(
        f"/leavers/{case_id}/items/{item_id}/credentials",
        data={
            "csrf_token": token,
            "passcode": PASSCODE,
            "account_email": "leaver@icloud.example",
            "account_password": ACCOUNT_PASSWORD,
        },
    )
    assert answer.status_code == 302
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert PASSCODE not in page and ACCOUNT_PASSWORD not in page
    with database.begin() as session:
        kept = escrow.history_for_device(session, session.get(Device, device.id))
        assert len(kept) == 2
        shown = {
            escrow.reveal(
                session, app.extensions["trolley.box"], session.merge(tech), e.id, reason="audit"
            )[1]
            for e in kept
        }
    assert PASSCODE in shown  # it really was kept, only sealed
    database.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("leaver.db*"))
    for secret in (PASSCODE, ACCOUNT_PASSWORD):
        assert secret.encode() not in raw
        assert secret not in caplog.text
