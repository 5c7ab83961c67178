"""PIN escrow: sealed at rest, technician-only reads, every read logged, destroyed on reset."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mqtt.messages import AckState, build_ack
from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.auth.services import create_user
from server.commands.models import Command, CommandStatus
from server.commands.services import record_ack
from server.crypto import SecretBox
from server.db import Database, make_engine, migrate, utcnow
from server.devices.models import Device, DeviceStatus, Platform
from server.enrolment.models import DeviceIdentity
from server.escrow import services
from server.escrow.models import CredentialEscrow, SecretKind
from server.schools.services import create_school

PIN = "739158"


def _deposit(client: FlaskClient, headers: dict[str, str], tag: str, secret: str = PIN) -> int:
    made = client.post(
        f"/api/v1/devices/{tag}/escrow", headers=headers, json={"kind": "pin", "secret": secret}
    )
    assert made.status_code == 201, made.get_json()
    assert secret not in made.get_data(as_text=True)
    return int(made.get_json()["id"])


@pytest.mark.parametrize("role", list(Role))
def test_only_technicians_read_and_every_read_is_logged(
    role: Role,
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-LEAVE-2: PINs readable only by the technician role, every read logged."""
    device = make_device()
    escrow_id = _deposit(client, token_for(make_user(Role.TECHNICIAN)), device.asset_tag)
    reader = make_user(role)
    answer = client.post(
        f"/api/v1/escrow/{escrow_id}/reveal",
        headers=token_for(reader),
        json={"reason": "leaver reset"},
    )
    reads = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "escrow.read")
    ).all()
    if role is Role.TECHNICIAN:
        assert answer.status_code == 200 and answer.get_json()["secret"] == PIN
        assert len(reads) == 1 and reads[0].actor_id == reader.id
        assert reads[0].details["reason"] == "leaver reset" and PIN not in str(reads[0].details)
    else:
        assert answer.status_code == 403
        assert reads == []


def test_a_reason_is_required(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    headers = token_for(make_user(Role.TECHNICIAN))
    escrow_id = _deposit(client, headers, make_device().asset_tag)
    assert (
        client.post(
            f"/api/v1/escrow/{escrow_id}/reveal", headers=headers, json={"reason": ""}
        ).status_code
        == 400
    )


def test_tampered_ciphertext_is_detected_never_shown(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """A changed ciphertext fails its integrity check; nothing decrypts to garbage."""
    headers = token_for(make_user(Role.TECHNICIAN))
    escrow_id = _deposit(client, headers, make_device().asset_tag)
    entry = session.get(CredentialEscrow, escrow_id)
    assert entry is not None and entry.secret_sealed
    sealed = entry.secret_sealed
    entry.secret_sealed = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    session.commit()
    answer = client.post(
        f"/api/v1/escrow/{escrow_id}/reveal", headers=headers, json={"reason": "check"}
    )
    assert answer.status_code == 409 and "integrity" in answer.get_json()["error"]["message"]
    actions = session.scalars(select(ActivityEntry.action)).all()
    assert "escrow.tampered" in actions and "escrow.read" not in actions


def test_school_isolation(
    client: FlaskClient,
    other_school: object,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    escrow_id = _deposit(client, token_for(make_user(Role.TECHNICIAN)), make_device().asset_tag)
    outsider = make_user(Role.TECHNICIAN, in_school=other_school)
    answer = client.post(
        f"/api/v1/escrow/{escrow_id}/reveal", headers=token_for(outsider), json={"reason": "x"}
    )
    assert answer.status_code == 404


def test_no_account_destroys_a_pin_that_may_still_open_its_device(
    client: FlaskClient,
    session: Session,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-LEAVE-2: the PIN must always be known, so one account (stolen or not) cannot destroy
    the escrowed PINs of devices still in the school, not even after escrowing a made-up one for
    each; once a device is disposed of, its PIN may go."""
    technician, sbm = make_user(Role.TECHNICIAN), make_user(Role.SBM)
    devices = [make_device() for _n in range(3)]
    pins = [_deposit(client, token_for(technician), d.asset_tag) for d in devices]
    for device in devices:  # a made-up PIN escrowed over each real one
        _deposit(client, token_for(technician), device.asset_tag, secret="000000")
    for user in (technician, sbm):
        for escrow_id in pins:
            refused = client.post(
                f"/api/v1/escrow/{escrow_id}/destroy",
                headers=token_for(user),
                json={"reason": "tidying up"},
            )
            assert refused.status_code == 400, refused.get_json()
            assert refused.get_json()["error"]["code"] == "still_needed"
    for escrow_id in pins:
        shown = client.post(
            f"/api/v1/escrow/{escrow_id}/reveal",
            headers=token_for(technician),
            json={"reason": "checking it is still there"},
        )
        assert shown.status_code == 200 and shown.get_json()["secret"] == PIN
    assert not session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "escrow.destroyed")
    ).all()

    devices[0].status = DeviceStatus.DISPOSED
    session.commit()
    gone = client.post(
        f"/api/v1/escrow/{pins[0]}/destroy", headers=token_for(sbm), json={"reason": "disposed"}
    )
    assert gone.status_code == 200, gone.get_json()
    session.expire_all()
    entry = session.get_one(CredentialEscrow, pins[0])
    assert entry.secret_sealed is None and entry.destroyed_reason == "disposed"


def test_factory_reset_ack_destroys_the_pin(
    session: Session, make_user: Callable[..., User], make_device: Callable[..., Device], app: Flask
) -> None:
    """P-LEAVE-2: the PIN is rotated on reset: the old one is destroyed when the device confirms."""
    box = app.extensions["trolley.box"]
    tech = make_user(Role.TECHNICIAN)
    device = make_device()
    services.deposit(session, box, tech, device, SecretKind.PIN, PIN)
    identity = DeviceIdentity(
        school_id=device.school_id,
        device_id=device.id,
        mqtt_id=f"dev-{uuid.uuid4().hex[:12]}",
        public_key="x" * 43,
        kid="0" * 16,
        broker_secret_hash="h",
        platform="simulated",
    )
    now = utcnow()
    command = Command(
        school_id=device.school_id,
        device_id=device.id,
        cmd_id=str(uuid.uuid4()),
        type="factory_reset",
        args={},
        reason="",
        status=CommandStatus.RECEIVED,
        expires_at=now,
        attempts=1,
        detail="",
        result={},
        mqtt_id=identity.mqtt_id,
    )
    session.add_all([identity, command])
    session.flush()
    ack = build_ack(
        command.cmd_id,
        AckState.DONE,
        device_id=identity.mqtt_id,
        kid="0" * 16,
        now=int(now.timestamp()),
    )
    record_ack(session, identity, ack, now=now)
    session.commit()
    (entry,) = services.history_for_device(session, device)
    assert entry.destroyed_at is not None and entry.secret_sealed is None
    assert identity.revoked_at is not None


def test_secret_never_reaches_the_database_file_or_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """P-LEAVE-2: sealed at rest: the PIN is not in the SQLite file or the logs as plain text."""
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'escrow.db'}"
    migrate(make_engine(url))
    database = Database(url)
    box = SecretBox((Fernet.generate_key().decode(),))
    secret = "PIN-4419-unique-marker"
    with database.begin() as session:
        school = create_school(session, slug="leakcheck", name="Leak Check Primary")
        tech = create_user(
            session,
            actor=None,
            school=school,
            email="tech@leak.example",
            name="T",
            role=Role.TECHNICIAN,
            password="long-password-1",
        )
        device = Device(
            school_id=school.id,
            asset_tag="LEAK-1",
            serial="LEAKSERIAL1",
            platform=Platform.IPADOS,
            make="Apple",
            model="iPad",
            status=DeviceStatus.IN_SERVICE,
        )
        session.add(device)
        session.flush()
        entry = services.deposit(
            session, box, tech, device, SecretKind.PASSCODE, secret, commit=False
        )
    with database.begin() as session:
        _entry, shown = services.reveal(session, box, session.merge(tech), entry.id, reason="audit")
        assert shown == secret
    database.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("escrow.db*"))
    assert secret.encode() not in raw
    assert secret not in caplog.text


def test_key_rotation_keeps_old_secrets_readable(
    session: Session, make_user: Callable[..., User], make_device: Callable[..., Device]
) -> None:
    """Keys rotate: new key first, old key kept until `trolley keys rotate` re-seals everything."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    tech = make_user(Role.TECHNICIAN)
    entry = services.deposit(session, SecretBox((old,)), tech, make_device(), SecretKind.PIN, PIN)
    both = SecretBox((new, old))
    assert services.reveal(session, both, tech, entry.id, reason="r")[1] == PIN
    services.rotate(session, both)
    assert services.reveal(session, SecretBox((new,)), tech, entry.id, reason="r")[1] == PIN
    with pytest.raises(Exception, match="integrity"):
        services.reveal(session, SecretBox((old,)), tech, entry.id, reason="r")
