"""Waking iPads through Apple's push service, against a local APNs stand-in (both databases)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.config import Settings
from server.crypto import SecretBox
from server.db import utcnow
from server.errors import ValidationFailed
from server.ipads import services
from server.ipads.models import IpadEnrolment, PushAuth
from server.ipads.services import credentials, push
from server.ipads.simulator import SimulatedIpad
from server.jobs import JobContext, discover_jobs
from server.schools.models import School
from tests.server.conftest import csrf_token, log_in_as
from tests.server.ipads.conftest import Enrol
from tests.server.ipads.fake_apns import FakeApns, issue, key_pem, pem

TOPIC = f"com.apple.mgmt.External.{uuid.uuid4()}"
CertAndKey = tuple[x509.Certificate, rsa.RSAPrivateKey]


@pytest.fixture(scope="module")
def apple() -> CertAndKey:
    """Stands in for Apple's CA that issues MDM push certificates."""
    return issue(None, "Apple Application Integration 2 CA (test)", ca=True)


@pytest.fixture(scope="module")
def push_certificate(apple: CertAndKey) -> CertAndKey:
    return issue(apple, f"APSP:{uuid.uuid4()}", uid=TOPIC)


@pytest.fixture
def fake_apns(tmp_path: Path, apple: CertAndKey) -> Iterator[FakeApns]:
    fake = FakeApns(tmp_path, TOPIC, apple).start()
    yield fake
    fake.stop()


@pytest.fixture
def apns_settings(app: Flask, fake_apns: FakeApns) -> Settings:
    settings: Settings = app.extensions["trolley.settings"]
    return settings.model_copy(update={"apns_url": fake_apns.url, "apns_ca": fake_apns.ca_path})


@pytest.fixture
def box(app: Flask) -> SecretBox:
    return app.extensions["trolley.box"]  # type: ignore[no-any-return]


@pytest.fixture
def with_certificate(
    session: Session, box: SecretBox, technician: User, push_certificate: CertAndKey
) -> None:
    cert, key = push_certificate
    secret = services.check_certificate(
        certificate=pem(cert), key=key_pem(key), password="", school=technician.school, now=utcnow()
    )
    services.save_credential(session, box, technician, secret, now=utcnow())


def _enrolment(session: Session, ipad: SimulatedIpad) -> IpadEnrolment:
    session.expire_all()
    enrolment = session.scalar(select(IpadEnrolment).where(IpadEnrolment.udid == ipad.udid))
    assert enrolment is not None
    return enrolment


def _wake(session: Session, box: SecretBox, settings: Settings, now: datetime) -> int:
    session.expire_all()  # the worker's session is fresh each run; the iPad wrote since
    return services.wake_waiting(session, box, settings, now=now)


@pytest.mark.usefixtures("with_certificate")
def test_a_queued_lock_wakes_the_ipad_which_checks_in_and_is_locked(
    enrol_ipad: Enrol,
    session: Session,
    box: SecretBox,
    technician: User,
    fake_apns: FakeApns,
    apns_settings: Settings,
    client: FlaskClient,
) -> None:
    """P-LOSS-3: a lock reaches the iPad now, through a push, not at its next own check-in."""
    ipad, device = enrol_ipad(supervised=True)
    assert ipad.topic == TOPIC  # the enrolment profile names the uploaded certificate's topic
    ipad.run()
    (lock,) = commands.issue(session, technician, [device], "lock", {})
    now = utcnow()
    # The worker's job does it, after the request that queued the lock has committed.
    discover_jobs()["ipads.wake"].run(JobContext(session, now, apns_settings))
    assert fake_apns.problems == []
    (sent,) = fake_apns.pushes
    assert sent.token == ipad.push_token.hex() and sent.client_topic == TOPIC
    assert sent.body == f'{{"mdm": "{ipad.push_magic}"}}'.encode()
    # The push only wakes it; the command travels over the MDM connection as always.
    ipad.run()
    assert ipad.locked
    session.expire_all()
    assert session.get(Command, lock.id).status is CommandStatus.DONE  # type: ignore[union-attr]
    enrolment = _enrolment(session, ipad)
    assert enrolment.push_result == "delivered to Apple" and enrolment.pushed_at is not None
    log_in_as(client, technician)
    assert "delivered to Apple" in client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    # Nothing new is queued: nothing more is pushed.
    assert _wake(session, box, apns_settings, now + timedelta(minutes=5)) == 0
    assert len(fake_apns.pushes) == 1


@pytest.mark.usefixtures("with_certificate")
def test_credentials_for_another_topic_do_not_strand_the_enrolled_ipads(
    enrol_ipad: Enrol,
    session: Session,
    box: SecretBox,
    technician: User,
    apple: CertAndKey,
    push_certificate: CertAndKey,
) -> None:
    """P-LOSS-3: Apple wakes an iPad only on the topic it enrolled with, so a new certificate
    (a mistake, or one account's attempt to leave every iPad unwoken) for another topic replaces
    nothing while iPads listen on the old one, and says how to renew; a renewal of the same
    topic is kept."""
    enrol_ipad()
    other, other_key = issue(
        apple, f"APSP:{uuid.uuid4()}", uid=f"com.apple.mgmt.External.{uuid.uuid4()}"
    )
    stranger = services.check_certificate(
        certificate=pem(other),
        key=key_pem(other_key),
        password="",
        school=technician.school,
        now=utcnow(),
    )
    with pytest.raises(ValidationFailed, match="1 enrolled iPad") as refused:
        services.save_credential(session, box, technician, stranger, now=utcnow())
    assert refused.value.code == "other_topic" and "Renew the existing" in refused.value.message
    session.rollback()
    credential = services.push_credential(session, technician.school_id)
    assert credential is not None and credential.topic == TOPIC
    cert, key = push_certificate
    renewed = services.check_certificate(
        certificate=pem(cert), key=key_pem(key), password="", school=technician.school, now=utcnow()
    )
    assert services.save_credential(session, box, technician, renewed, now=utcnow()).topic == TOPIC


def test_token_auth_signs_a_provider_token_and_reuses_it(
    enrol_ipad: Enrol,
    session: Session,
    box: SecretBox,
    technician: User,
    fake_apns: FakeApns,
    apns_settings: Settings,
) -> None:
    """A .p8 key signs an ES256 token Apple accepts, reused for pushes within 50 minutes."""
    key = ec.generate_private_key(ec.SECP256R1())
    fake_apns.team_id, fake_apns.key_id, fake_apns.token_key = (
        "TEAM123456",
        "KEY1234567",
        (key.public_key()),
    )
    secret = services.check_token_key(
        p8=key_pem(key), key_id="key1234567", team_id="TEAM123456", topic=TOPIC
    )
    services.save_credential(session, box, technician, secret, now=utcnow())
    ipad, device = enrol_ipad()
    ipad.run()
    now = utcnow()
    commands.issue(session, technician, [device], "lock", {})
    assert _wake(session, box, apns_settings, now) == 1
    ipad.run()
    commands.issue(session, technician, [device], "report_inventory", {})
    assert _wake(session, box, apns_settings, now + timedelta(minutes=2)) == 1
    assert fake_apns.problems == []
    first, second = fake_apns.pushes
    assert first.headers["authorization"] == second.headers["authorization"]
    assert first.client_topic is None  # no client certificate with token auth


@pytest.mark.usefixtures("with_certificate")
def test_a_gone_token_is_marked_and_not_pushed_until_the_ipad_sends_a_new_one(
    enrol_ipad: Enrol,
    session: Session,
    box: SecretBox,
    technician: User,
    fake_apns: FakeApns,
    apns_settings: Settings,
) -> None:
    """410 Unregistered: the token is dropped; the iPad's next TokenUpdate makes it reachable."""
    ipad, device = enrol_ipad()
    ipad.run()
    fake_apns.answers[ipad.push_token.hex()] = (410, "Unregistered")
    commands.issue(session, technician, [device], "lock", {})
    now = utcnow()
    assert _wake(session, box, apns_settings, now) == 0
    enrolment = _enrolment(session, ipad)
    assert enrolment.push_token is None and "no longer valid" in (enrolment.push_result or "")
    assert _wake(session, box, apns_settings, now + timedelta(minutes=5)) == 0
    assert len(fake_apns.pushes) == 1
    ipad.push_token = bytes.fromhex("ab" * 32)
    assert ipad.check_in("TokenUpdate").status_code == 200
    assert _wake(session, box, apns_settings, now + timedelta(minutes=6)) == 1
    assert fake_apns.pushes[-1].token == "ab" * 32 and fake_apns.problems == []


@pytest.mark.usefixtures("with_certificate")
def test_a_bad_device_token_is_dropped(
    enrol_ipad: Enrol,
    session: Session,
    box: SecretBox,
    technician: User,
    fake_apns: FakeApns,
    apns_settings: Settings,
) -> None:
    """400 BadDeviceToken: the token is not tried again."""
    ipad, device = enrol_ipad()
    ipad.run()
    fake_apns.answers[ipad.push_token.hex()] = (400, "BadDeviceToken")
    commands.issue(session, technician, [device], "lock", {})
    assert _wake(session, box, apns_settings, utcnow()) == 0
    assert _enrolment(session, ipad).push_token is None


@pytest.mark.usefixtures("with_certificate")
def test_a_busy_apns_is_retried_with_backoff_never_more_than_once_a_minute(
    enrol_ipad: Enrol,
    session: Session,
    box: SecretBox,
    technician: User,
    fake_apns: FakeApns,
    apns_settings: Settings,
) -> None:
    """429 TooManyRequests: retried after one minute, then two; then the push goes through."""
    ipad, device = enrol_ipad()
    ipad.run()
    token = ipad.push_token.hex()
    fake_apns.answers[token] = (429, "TooManyRequests")
    commands.issue(session, technician, [device], "lock", {})
    now = utcnow()
    assert _wake(session, box, apns_settings, now) == 0
    enrolment = _enrolment(session, ipad)
    assert enrolment.push_retry_at == now + timedelta(minutes=1)
    assert "TooManyRequests" in (enrolment.push_result or "")
    assert _wake(session, box, apns_settings, now + timedelta(seconds=30)) == 0
    assert len(fake_apns.pushes) == 1  # not pushed again within the minute
    assert _wake(session, box, apns_settings, now + timedelta(seconds=61)) == 0
    assert len(fake_apns.pushes) == 2
    assert _enrolment(session, ipad).push_retry_at == now + timedelta(seconds=61 + 120)
    del fake_apns.answers[token]
    assert _wake(session, box, apns_settings, now + timedelta(seconds=100)) == 0
    assert _wake(session, box, apns_settings, now + timedelta(seconds=182)) == 1
    assert _enrolment(session, ipad).push_failures == 0 and fake_apns.problems == []


def test_push_credentials_are_sealed_at_rest_and_trailed(
    session: Session, box: SecretBox, technician: User, push_certificate: CertAndKey
) -> None:
    """P-SEC: the push key is stored sealed; the upload and removal are in the activity trail."""
    cert, key = push_certificate
    password = "correct horse"
    p12 = pkcs12.serialize_key_and_certificates(
        b"push", key, cert, None, serialization.BestAvailableEncryption(password.encode())
    )
    secret = services.check_certificate(
        certificate=p12, key=None, password=password, school=technician.school, now=utcnow()
    )
    assert secret.topic == TOPIC and secret.auth is PushAuth.CERTIFICATE
    credential = services.save_credential(session, box, technician, secret, now=utcnow())
    raw = session.execute(
        text("SELECT secret_sealed FROM ipad_push_credentials WHERE id = :id"),
        {"id": credential.id},
    ).scalar_one()
    body = key_pem(key).decode().splitlines()[1]
    assert body not in raw and "PRIVATE KEY" not in raw
    assert credentials.open_secret(box, credential).key_pem == secret.key_pem
    assert credential.not_after == cert.not_valid_after_utc
    services.remove_credential(session, technician)
    actions = session.scalars(
        select(ActivityEntry.action).where(ActivityEntry.school_id == technician.school_id)
    ).all()
    assert "ipad.push_uploaded" in actions and "ipad.push_removed" in actions
    assert services.push_credential(session, technician.school_id) is None


def test_wrong_and_expired_certificates_are_refused_with_a_clear_reason(
    apple: CertAndKey, push_certificate: CertAndKey, school: School
) -> None:
    """A push certificate that cannot work is refused at upload, saying why."""
    now = datetime.now(UTC)
    cert, key = push_certificate
    old = issue(apple, "APSP:old", uid=TOPIC, start=now - timedelta(days=400), days=365)
    with pytest.raises(ValidationFailed, match="expired on"):
        services.check_certificate(
            certificate=pem(old[0]), key=key_pem(old[1]), password="", school=school, now=now
        )
    plain = issue(apple, "www.example.org")
    with pytest.raises(ValidationFailed, match="not an Apple MDM push certificate"):
        services.check_certificate(
            certificate=pem(plain[0]), key=key_pem(plain[1]), password="", school=school, now=now
        )
    with pytest.raises(ValidationFailed, match="does not belong"):
        services.check_certificate(
            certificate=pem(cert), key=key_pem(plain[1]), password="", school=school, now=now
        )
    p12 = pkcs12.serialize_key_and_certificates(
        b"push", key, cert, None, serialization.BestAvailableEncryption(b"right")
    )
    with pytest.raises(ValidationFailed, match="passphrase"):
        services.check_certificate(
            certificate=p12, key=None, password="wrong", school=school, now=now
        )
    with pytest.raises(ValidationFailed, match="not a PEM certificate"):
        services.check_certificate(
            certificate=b"junk", key=key_pem(key), password="", school=school, now=now
        )
    with pytest.raises(ValidationFailed, match="P-256"):
        services.check_token_key(p8=key_pem(key), key_id="ABCDE12345", team_id="T", topic=TOPIC)


def test_expiry_is_warned_thirty_days_ahead(
    session: Session, box: SecretBox, technician: User, push_certificate: CertAndKey
) -> None:
    """The school is told a month before its push certificate stops waking iPads."""
    cert, key = push_certificate
    secret = services.check_certificate(
        certificate=pem(cert), key=key_pem(key), password="", school=technician.school, now=utcnow()
    )
    credential = services.save_credential(session, box, technician, secret, now=utcnow())
    ends = cert.not_valid_after_utc
    school = technician.school
    assert services.expiry_warning(credential, school, ends - timedelta(days=31)) is None
    warning = services.expiry_warning(credential, school, ends - timedelta(days=29))
    assert "expires on" in (warning or "")
    assert "has expired" in (services.expiry_warning(credential, school, ends) or "")


def test_certificate_expiry_is_a_day_on_the_school_calendar(
    session: Session, box: SecretBox, technician: User, apple: CertAndKey
) -> None:
    """An expiry at 23:30 UTC in summer is the next day in school, in the one date format."""
    ends = datetime(2025, 7, 1, 23, 30, tzinfo=UTC)
    cert, key = issue(apple, "APSP:summer", uid=TOPIC, start=ends - timedelta(days=365))
    school = technician.school
    with pytest.raises(ValidationFailed, match="expired on Wed 2 July 2025\\. "):
        services.check_certificate(
            certificate=pem(cert), key=key_pem(key), password="", school=school, now=ends
        )
    secret = services.check_certificate(
        certificate=pem(cert),
        key=key_pem(key),
        password="",
        school=school,
        now=ends - timedelta(days=2),
    )
    credential = services.save_credential(session, box, technician, secret, now=utcnow())
    warning = services.expiry_warning(credential, school, ends - timedelta(days=2))
    assert warning is not None and warning.startswith(
        "The push certificate expires on Wed 2 July 2025. "
    )


def test_the_push_address_must_be_https(app: Flask) -> None:
    """A push service address that is not https is refused at start-up."""
    settings: Settings = app.extensions["trolley.settings"]
    with pytest.raises(ValueError, match="TROLLEY_APNS_URL"):
        Settings.model_validate(settings.model_dump() | {"apns_url": "http://127.0.0.1:1"})


def test_a_provider_token_is_renewed_after_fifty_minutes() -> None:
    """Apple refuses tokens over an hour old: a new one is signed after 50 minutes."""
    key = ec.generate_private_key(ec.SECP256R1())
    secret = services.check_token_key(
        p8=key_pem(key), key_id="KEY1234567", team_id="TEAM123456", topic=TOPIC
    )
    now = datetime.now(UTC)
    first = push.provider_token(secret, now)
    assert push.provider_token(secret, now + timedelta(minutes=49)) == first
    assert push.provider_token(secret, now + timedelta(minutes=51)) != first


def test_the_ipads_page_takes_a_certificate_and_refuses_an_expired_one(
    client: FlaskClient,
    session: Session,
    technician: User,
    apple: CertAndKey,
    push_certificate: CertAndKey,
) -> None:
    """Upload through the page (with CSRF); the topic and expiry show, the key never does."""
    log_in_as(client, technician)
    token = csrf_token(client, "/ipads")
    old = issue(apple, "APSP:old", uid=TOPIC, start=utcnow() - timedelta(days=400), days=365)
    refused = client.post(
        "/ipads/push",
        data={
            "csrf_token": token,
            "auth": "certificate",
            "certificate_file": (io.BytesIO(pem(old[0])), "old.pem"),
            "key_file": (io.BytesIO(key_pem(old[1])), "old.key"),
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert (
        "expired on" in refused and services.push_credential(session, technician.school_id) is None
    )
    cert, key = push_certificate
    page = client.post(
        "/ipads/push",
        data={
            "csrf_token": token,
            "auth": "certificate",
            "certificate_file": (io.BytesIO(pem(cert)), "push.pem"),
            "key_file": (io.BytesIO(key_pem(key)), "push.key"),
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    expires = cert.not_valid_after_utc
    assert TOPIC in page and f"{expires.day} {expires:%B %Y}" in page
    assert key_pem(key).decode().splitlines()[1] not in page
    assert client.post("/ipads/push/remove", data={}).status_code == 400  # no CSRF token
    assert services.push_credential(session, technician.school_id) is not None
