"""Which CA a kiosk trusts for a TLS broker: pinned in its enrolment code, sent at enrolment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.ca import create_school_ca, fingerprint
from server.cli import main
from server.config import ConfigError, load_settings, replace
from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.enrolment.models import EnrolmentToken
from server.enrolment.services import (
    enrol,
    issue_enrolment_token,
    issue_enrolment_tokens,
    school_authority,
)
from server.errors import ValidationFailed
from server.schools.models import School


def _public_key() -> str:
    """A new device's Ed25519 public key, as it sends it at enrolment."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mqtt.envelope import encode_public_key

    return encode_public_key(Ed25519PrivateKey.generate().public_key())


def _enrol(session: Session, settings: object, device: Device) -> tuple[str | None, str | None]:
    """Issue a code and enrol with it: the code's pin and the CA the answer carries."""
    _token, payload = issue_enrolment_token(session, None, device, settings)  # type: ignore[arg-type]
    answer = enrol(
        session,
        SecretBox(settings.data_keys),  # type: ignore[attr-defined]
        settings,  # type: ignore[arg-type]
        token=payload.token,
        public_key=_public_key(),
        platform="simulated",
    )
    return payload.ca_fingerprint, answer.ca_pem


def test_a_plain_broker_pins_nothing(
    app: Flask, session: Session, make_device: Callable[..., Device], school: School
) -> None:
    settings = app.extensions["trolley.settings"]
    device = make_device(asset_tag="OAK-IPAD-001")
    assert _enrol(session, settings, device) == (None, None)


def test_a_tls_broker_pins_the_schools_own_ca(
    app: Flask, session: Session, make_device: Callable[..., Device], school: School
) -> None:
    """P-SEC-3: devices verify the TLS broker through the CA printed (as a hash) on their code."""
    settings = replace(app.extensions["trolley.settings"], mqtt_device_url="mqtts://127.0.0.1:8883")
    device = make_device(asset_tag="OAK-IPAD-001")
    pin, ca_pem = _enrol(session, settings, device)
    ca = school_authority(session, SecretBox(settings.data_keys), school)[0]
    assert pin == ca.fingerprint
    assert (
        ca_pem is not None and fingerprint(x509.load_pem_x509_certificate(ca_pem.encode())) == pin
    )


def test_a_trolleys_codes_are_issued_together_each_pinned_and_each_usable(
    app: Flask,
    session: Session,
    make_device: Callable[..., Device],
    school: School,
    other_school: School,
) -> None:
    """Codes printed together pin each device's own school CA, in order, and each enrols."""
    settings = replace(app.extensions["trolley.settings"], mqtt_device_url="mqtts://127.0.0.1:8883")
    devices = [make_device(asset_tag=f"OAK-IPAD-{n:03d}") for n in range(3)]
    devices.append(make_device(in_school=other_school, asset_tag="ELM-IPAD-001"))
    issued = issue_enrolment_tokens(session, None, devices, settings)
    box = SecretBox(settings.data_keys)
    pins = {s.id: school_authority(session, box, s)[0].fingerprint for s in (school, other_school)}
    assert [p.asset_tag for _t, p in issued] == [d.asset_tag for d in devices]
    assert [p.ca_fingerprint for _t, p in issued] == [pins[d.school_id] for d in devices]
    assert len({p.token for _t, p in issued}) == len(devices)
    for _token, payload in issued:
        answer = enrol(
            session,
            box,
            settings,
            token=payload.token,
            public_key=_public_key(),
            platform="simulated",
        )
        assert answer.ca_pem is not None


def test_no_codes_are_issued_when_one_device_has_been_disposed_of(
    app: Flask, session: Session, make_device: Callable[..., Device], school: School
) -> None:
    settings = app.extensions["trolley.settings"]
    devices = [make_device(), make_device(status=DeviceStatus.DISPOSED)]
    with pytest.raises(ValidationFailed, match="disposed"):
        issue_enrolment_tokens(session, None, devices, settings)
    assert session.scalar(select(func.count()).select_from(EnrolmentToken)) == 0


def test_a_trust_listener_is_pinned_for_every_school(
    app: Flask,
    session: Session,
    make_device: Callable[..., Device],
    school: School,
    other_school: School,
    tmp_path: Path,
) -> None:
    """One listener for a trust: both schools' codes pin the CA named in the settings."""
    trust_ca = create_school_ca("Oak Trust", now=utcnow())
    ca_file = tmp_path / "broker-ca.pem"
    ca_file.write_bytes(trust_ca.cert_pem())
    settings = replace(
        app.extensions["trolley.settings"],
        mqtt_device_url="mqtts://mqtt.trust.example:8883",
        mqtt_device_ca=ca_file,
    )
    for owner, tag in ((school, "OAK-IPAD-001"), (other_school, "ELM-IPAD-001")):
        pin, ca_pem = _enrol(session, settings, make_device(in_school=owner, asset_tag=tag))
        assert pin == trust_ca.fingerprint, tag
        assert ca_pem is not None and ca_pem.encode() == trust_ca.cert_pem()


def test_a_device_ca_setting_must_be_a_certificate(tmp_path: Path) -> None:
    base = {"TROLLEY_TESTING": "1", "TROLLEY_INSTANCE_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({**base, "TROLLEY_MQTT_DEVICE_CA": str(tmp_path / "missing.pem")})
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        load_settings({**base, "TROLLEY_MQTT_DEVICE_CA": str(tmp_path / "junk.pem")})


def test_mqtt_config_trusts_every_school_and_names_the_listeners_ca(tmp_path: Path) -> None:
    """`ca.pem` accepts every school's device certificates; `broker-ca.pem` signed the listener."""
    env = {
        "TROLLEY_INSTANCE_DIR": str(tmp_path / "instance"),
        "TROLLEY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "TROLLEY_DEMO": "1",
        "TROLLEY_MQTT_DEVICE_URL": "mqtts://mqtt.trust.example:8883",
    }
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("db", "upgrade")
    run("schools", "create", "oakfield", "Oakfield Primary")
    run("schools", "create", "elmwood", "Elmwood Primary")
    out_dir = tmp_path / "mosquitto"
    said = run("mqtt-config", str(out_dir), "--tls-port", "8883", "--school", "oakfield")
    assert "TROLLEY_MQTT_DEVICE_CA=" in said and "2 schools" in said
    bundle = x509.load_pem_x509_certificates((out_dir / "ca.pem").read_bytes())
    subjects = sorted(c.subject.rfc4514_string() for c in bundle)
    assert len(bundle) == 2 and any("Elmwood" in s for s in subjects), subjects
    broker_ca = x509.load_pem_x509_certificate((out_dir / "broker-ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((out_dir / "server.pem").read_bytes())
    assert server.issuer == broker_ca.subject and "Oakfield" in broker_ca.subject.rfc4514_string()
    server.verify_directly_issued_by(broker_ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mqtt.trust.example" in names.get_values_for_type(x509.DNSName)
    assert "listener 8883" in (out_dir / "mosquitto.conf").read_text()
