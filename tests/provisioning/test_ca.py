"""The school CA: what it issues, that the chains verify, determinism and PEM storage."""

from __future__ import annotations

import os
import ssl
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.ca import (
    DEVICE_VALID_DAYS,
    Identity,
    SchoolCA,
    create_school_ca,
    device_id_from_certificate,
    fingerprint,
    issue_device_certificate,
    issue_server_certificate,
    issue_signing_certificate,
    new_server_identity,
    new_signing_identity,
    verify_device_certificate,
    verify_issued_by,
    verify_server_certificate,
)
from provisioning.errors import (
    CertificateAuthorityError,
    CertificateVerificationError,
    KeyFormatError,
    PassphraseError,
    ProvisioningError,
)
from provisioning.keys import PrivateKey, certificate_to_pem, new_tls_key
from tests.provisioning.support import (
    NOW,
    SCHOOL,
    fixed_ec_key,
    fixed_ed25519_key,
    openssl,
)

GOLDEN = Path(__file__).parent / "golden"
LATER = NOW + timedelta(days=1)


def _write(path: Path, data: bytes) -> Path:
    """Write a file for openssl and return its path."""
    path.write_bytes(data)
    return path


ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[ExtensionT]) -> x509.Extension[ExtensionT]:
    """One extension of a certificate (failing the test if it is missing)."""
    return cert.extensions.get_extension_for_class(kind)


# --- the CA itself ---------------------------------------------------------------------------


def test_school_ca_is_a_self_signed_ecdsa_ca(school_ca: SchoolCA) -> None:
    cert = school_ca.certificate
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert isinstance(school_ca.private_key.curve, ec.SECP256R1)
    assert cert.subject == cert.issuer
    assert school_ca.name == SCHOOL
    verify_issued_by(cert, cert, now=LATER)


def test_school_ca_validity_starts_now_minus_skew_and_lasts_ten_years(school_ca: SchoolCA) -> None:
    cert = school_ca.certificate
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)


def test_school_ca_without_a_key_generates_a_fresh_one() -> None:
    first = create_school_ca(SCHOOL, now=NOW)
    second = create_school_ca(SCHOOL, now=NOW)
    assert first.fingerprint != second.fingerprint
    assert isinstance(first.private_key.curve, ec.SECP256R1)


def test_long_school_names_are_cut_to_the_x509_limit() -> None:
    name = "St Mary's Church of England Voluntary Aided Primary School and Nursery, Llanfair"
    ca = create_school_ca(name, now=NOW, key=fixed_ec_key(3))
    assert len(ca.name) <= 64 and name.startswith(ca.name)


@pytest.mark.parametrize("name", ["", "   ", "\n"])
def test_school_ca_needs_a_name(name: str) -> None:
    with pytest.raises(CertificateAuthorityError, match="school name"):
        create_school_ca(name, now=NOW)


def test_issuers_refuse_a_naive_now(school_ca: SchoolCA) -> None:
    with pytest.raises(CertificateAuthorityError, match="timezone-aware"):
        create_school_ca(SCHOOL, now=datetime(2025, 9, 1))
    with pytest.raises(CertificateAuthorityError, match="timezone-aware"):
        issue_device_certificate(
            school_ca,
            "dev-1",
            new_tls_key().public_key(),
            now=datetime(2025, 9, 1),
        )


@pytest.mark.parametrize("days", [0, -1, True])
def test_issuers_refuse_a_bad_validity(school_ca: SchoolCA, days: int) -> None:
    with pytest.raises(CertificateAuthorityError, match="valid_days"):
        issue_device_certificate(
            school_ca, "dev-1", new_tls_key().public_key(), now=NOW, valid_days=days
        )


def test_a_non_ca_certificate_cannot_be_a_school_ca(school_ca: SchoolCA) -> None:
    key = fixed_ec_key(9)
    leaf = issue_signing_certificate(school_ca, key.public_key(), now=NOW)
    with pytest.raises(CertificateAuthorityError, match="not a CA"):
        SchoolCA(leaf, key)


# --- device certificates ---------------------------------------------------------------------


def test_device_certificate_names_the_device_and_is_for_client_auth(school_ca: SchoolCA) -> None:
    cert = issue_device_certificate(school_ca, "ipad-042", fixed_ec_key(4).public_key(), now=NOW)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ipad-042"
    assert device_id_from_certificate(cert) == "ipad-042"
    eku = _ext(cert, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert not _ext(cert, x509.BasicConstraints).value.ca
    assert cert.issuer == school_ca.certificate.subject
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=DEVICE_VALID_DAYS)


def test_device_certificate_verifies_with_cryptography(school_ca: SchoolCA) -> None:
    cert = issue_device_certificate(school_ca, "ipad-042", fixed_ec_key(4).public_key(), now=NOW)
    assert verify_device_certificate(cert, school_ca.certificate, now=LATER) == "ipad-042"
    verify_issued_by(cert, school_ca.certificate, now=LATER)


def test_device_certificate_verifies_with_openssl(school_ca: SchoolCA, tmp_path: Path) -> None:
    ca_file = _write(tmp_path / "ca.pem", school_ca.cert_pem())
    keys: list[tuple[str, PrivateKey]] = [
        ("ec", fixed_ec_key(4)),
        ("ed25519", fixed_ed25519_key(4)),
    ]
    for name, key in keys:
        cert = issue_device_certificate(school_ca, f"dev-{name}", key.public_key(), now=NOW)
        leaf = _write(tmp_path / f"{name}.pem", certificate_to_pem(cert))
        result = openssl(
            "verify", "-CAfile", ca_file, "-purpose", "sslclient",
            "-attime", str(int(LATER.timestamp())), leaf,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().strip().endswith(": OK")


def test_openssl_rejects_a_device_certificate_from_another_school(
    school_ca: SchoolCA, other_ca: SchoolCA, tmp_path: Path
) -> None:
    cert = issue_device_certificate(other_ca, "dev-1", fixed_ec_key(4).public_key(), now=NOW)
    result = openssl(
        "verify", "-CAfile", _write(tmp_path / "ca.pem", school_ca.cert_pem()),
        "-attime", str(int(LATER.timestamp())),
        _write(tmp_path / "leaf.pem", certificate_to_pem(cert)),
    )  # fmt: skip
    assert result.returncode != 0


def test_device_certificate_from_another_ca_is_rejected(
    school_ca: SchoolCA, other_ca: SchoolCA
) -> None:
    cert = issue_device_certificate(other_ca, "dev-1", fixed_ec_key(4).public_key(), now=NOW)
    with pytest.raises(CertificateVerificationError, match="not issued by this CA"):
        verify_issued_by(cert, school_ca.certificate)
    with pytest.raises(CertificateVerificationError, match="device certificate rejected"):
        verify_device_certificate(cert, school_ca.certificate, now=LATER)


def test_a_server_certificate_is_not_a_device_certificate(school_ca: SchoolCA) -> None:
    cert = issue_server_certificate(school_ca, fixed_ec_key(5).public_key(), now=NOW)
    with pytest.raises(CertificateVerificationError):
        verify_device_certificate(cert, school_ca.certificate, now=LATER)


def test_device_certificate_is_rejected_outside_its_validity(school_ca: SchoolCA) -> None:
    cert = issue_device_certificate(
        school_ca, "dev-1", fixed_ec_key(4).public_key(), now=NOW, valid_days=30
    )
    for moment in (NOW - timedelta(days=1), NOW + timedelta(days=31)):
        with pytest.raises(CertificateVerificationError):
            verify_device_certificate(cert, school_ca.certificate, now=moment)
        with pytest.raises(CertificateVerificationError, match="not valid at this time"):
            verify_issued_by(cert, school_ca.certificate, now=moment)


@pytest.mark.parametrize(
    "device_id",
    ["", "a/b", "dev+1", "dev#1", " dev", "dev 1", "-dev", "x" * 65, "dév"],
)
def test_device_ids_that_cannot_be_mqtt_usernames_are_refused(
    school_ca: SchoolCA, device_id: str
) -> None:
    with pytest.raises(CertificateAuthorityError, match="device id"):
        issue_device_certificate(school_ca, device_id, fixed_ec_key(4).public_key(), now=NOW)


def test_weak_or_unsupported_keys_are_refused(school_ca: SchoolCA) -> None:
    weak_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CertificateAuthorityError, match="2048"):
        issue_device_certificate(school_ca, "dev-1", weak_rsa.public_key(), now=NOW)
    p521 = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(CertificateAuthorityError, match="curve"):
        issue_device_certificate(school_ca, "dev-1", p521.public_key(), now=NOW)
    with pytest.raises(CertificateAuthorityError, match="Ed25519"):
        issue_signing_certificate(school_ca, fixed_ed25519_key(1).public_key(), now=NOW)


def test_leaf_certificates_never_outlive_the_ca(school_ca: SchoolCA) -> None:
    near_the_end = school_ca.certificate.not_valid_after_utc - timedelta(days=10)
    cert = issue_device_certificate(
        school_ca, "dev-1", fixed_ec_key(4).public_key(), now=near_the_end
    )
    assert cert.not_valid_after_utc == school_ca.certificate.not_valid_after_utc


def test_an_expired_ca_issues_nothing(school_ca: SchoolCA) -> None:
    after_expiry = school_ca.certificate.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(CertificateAuthorityError, match="not valid at the issue time"):
        issue_device_certificate(school_ca, "dev-1", fixed_ec_key(4).public_key(), now=after_expiry)


# --- server certificates ---------------------------------------------------------------------


def test_server_certificate_has_the_requested_sans(school_ca: SchoolCA) -> None:
    cert = issue_server_certificate(
        school_ca,
        fixed_ec_key(5).public_key(),
        hostnames=["broker.oakfield.example", "LocalHost"],
        ips=["127.0.0.1", "::1"],
        now=NOW,
    )
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["broker.oakfield.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1"), ip_address("::1")]
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "broker.oakfield.example"
    )


def test_server_certificate_defaults_to_localhost(school_ca: SchoolCA) -> None:
    cert = issue_server_certificate(school_ca, fixed_ec_key(5).public_key(), now=NOW)
    for host in ("localhost", "127.0.0.1"):
        verify_server_certificate(cert, school_ca.certificate, host, now=LATER)
    with pytest.raises(CertificateVerificationError, match="server certificate rejected"):
        verify_server_certificate(cert, school_ca.certificate, "broker.example", now=LATER)
    with pytest.raises(CertificateVerificationError, match="server certificate rejected"):
        verify_server_certificate(cert, school_ca.certificate, "10.0.0.1", now=LATER)


def test_server_certificate_verifies_with_openssl(school_ca: SchoolCA, tmp_path: Path) -> None:
    cert = issue_server_certificate(school_ca, fixed_ec_key(5).public_key(), now=NOW)
    result = openssl(
        "verify", "-CAfile", _write(tmp_path / "ca.pem", school_ca.cert_pem()),
        "-purpose", "sslserver", "-verify_hostname", "localhost", "-verify_ip", "127.0.0.1",
        "-attime", str(int(LATER.timestamp())),
        _write(tmp_path / "server.pem", certificate_to_pem(cert)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


def test_rsa_server_keys_also_get_key_encipherment(school_ca: SchoolCA) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = issue_server_certificate(school_ca, key.public_key(), now=NOW)
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment


@pytest.mark.parametrize(
    ("hostnames", "ips", "message"),
    [
        ([], [], "at least one"),
        (["bad host"], [], "host name"),
        (["-bad.example"], [], "host name"),
        (["a..b"], [], "host name"),
        ([], ["300.1.1.1"], "IP address"),
        ([], ["localhost"], "IP address"),
    ],
)
def test_server_certificate_refuses_bad_names(
    school_ca: SchoolCA, hostnames: list[str], ips: list[str], message: str
) -> None:
    with pytest.raises(CertificateAuthorityError, match=message):
        issue_server_certificate(
            school_ca, fixed_ec_key(5).public_key(), hostnames=hostnames, ips=ips, now=NOW
        )


# --- a real mutual-TLS handshake, as the broker and a kiosk would do it ----------------------


def _handshake(server: ssl.SSLObject, client: ssl.SSLObject, bios: list[ssl.MemoryBIO]) -> None:
    """Drive a TLS handshake between two in-memory endpoints."""
    server_in, server_out, client_in, client_out = bios
    done = {"server": False, "client": False}
    for _ in range(50):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            # TLS 1.3: the server checks the client's certificate after the client finishes.
            return
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("device_key_kind", ["ec", "ed25519"])
def test_mutual_tls_handshake_with_issued_certificates(
    tmp_path: Path, device_key_kind: str
) -> None:
    now = datetime.now(UTC)  # the ssl module checks validity against the real clock
    ca = create_school_ca(SCHOOL, now=now)
    broker = new_server_identity(ca, now=now)
    device_key = new_tls_key() if device_key_kind == "ec" else fixed_ed25519_key(7)
    device = Identity(
        issue_device_certificate(ca, "ipad-042", device_key.public_key(), now=now), device_key
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(
        _write(tmp_path / "broker.pem", broker.cert_pem()),
        _write(tmp_path / "broker.key", broker.key_pem("broker secret")),
        password="broker secret",
    )
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cadata=ca.cert_pem().decode())
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca.cert_pem().decode())
    client_ctx.load_cert_chain(
        _write(tmp_path / "device.pem", device.cert_pem()),
        _write(tmp_path / "device.key", device.key_pem()),
    )
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname="localhost")
    _handshake(server, client, bios)
    client.write(b"ping")
    bios[0].write(bios[3].read())
    assert server.read(4) == b"ping"
    # What Mosquitto's use_identity_as_username reads: the client certificate's CN.
    peer = server.getpeercert()
    assert peer is not None
    subject = [attribute for rdn in peer["subject"] for attribute in rdn]
    assert ("commonName", "ipad-042") in subject


def test_mutual_tls_refuses_a_device_of_another_school(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = create_school_ca(SCHOOL, now=now)
    stranger_ca = create_school_ca("Elm Tree Primary School", now=now)
    broker = new_server_identity(ca, now=now)
    key = new_tls_key()
    stranger = Identity(
        issue_device_certificate(stranger_ca, "dev-1", key.public_key(), now=now), key
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(
        _write(tmp_path / "broker.pem", broker.to_pem()),
    )
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cadata=ca.cert_pem().decode())
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca.cert_pem().decode())
    client_ctx.load_cert_chain(_write(tmp_path / "stranger.pem", stranger.to_pem()))
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLError):
        _handshake(server, client, bios)


# --- profile-signing certificates ------------------------------------------------------------


def test_signing_certificate_is_for_digital_signatures_only(school_ca: SchoolCA) -> None:
    cert = issue_signing_certificate(school_ca, fixed_ec_key(6).public_key(), now=NOW)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign or usage.value.key_encipherment)
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert not _ext(cert, x509.BasicConstraints).value.ca
    verify_issued_by(cert, school_ca.certificate, now=LATER)


def _sign_profile(identity: Identity, content: bytes) -> bytes:
    """Sign like the profile exporter does: CMS SignedData, DER, content embedded."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(identity.certificate, identity.private_key, hashes.SHA256())  # type: ignore[arg-type]
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def test_a_profile_signed_with_the_signing_certificate_verifies_with_openssl(
    school_ca: SchoolCA, tmp_path: Path
) -> None:
    signer = new_signing_identity(school_ca, now=NOW, key=fixed_ec_key(6))
    content = b'<?xml version="1.0"?>\n<plist version="1.0"><dict/></plist>\n'
    signed = _write(tmp_path / "p.mobileconfig", _sign_profile(signer, content))
    out = tmp_path / "content.xml"
    result = openssl(
        "cms", "-verify", "-inform", "DER", "-in", signed, "-out", out,
        "-CAfile", _write(tmp_path / "ca.pem", school_ca.cert_pem()),
        "-attime", str(int(LATER.timestamp())),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes() == content


def test_a_device_certificate_cannot_sign_profiles(school_ca: SchoolCA, tmp_path: Path) -> None:
    key = fixed_ec_key(4)
    device = Identity(issue_device_certificate(school_ca, "dev-1", key.public_key(), now=NOW), key)
    signed = _write(tmp_path / "p.mobileconfig", _sign_profile(device, b"<plist/>"))
    result = openssl(
        "cms", "-verify", "-inform", "DER", "-in", signed, "-out", tmp_path / "out",
        "-CAfile", _write(tmp_path / "ca.pem", school_ca.cert_pem()),
        "-attime", str(int(LATER.timestamp())),
    )  # fmt: skip
    assert result.returncode != 0
    assert b"purpose" in result.stderr


# --- determinism -----------------------------------------------------------------------------


def _der(cert: x509.Certificate) -> bytes:
    """The DER encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


def _issue_everything(ca: SchoolCA, now: datetime) -> dict[str, x509.Certificate]:
    """One certificate of each kind from fixed keys."""
    return {
        "ca": ca.certificate,
        "device": issue_device_certificate(ca, "ipad-042", fixed_ec_key(4).public_key(), now=now),
        "device-ed25519": issue_device_certificate(
            ca, "ipad-043", fixed_ed25519_key(4).public_key(), now=now
        ),
        "server": issue_server_certificate(ca, fixed_ec_key(5).public_key(), now=now),
        "signing": issue_signing_certificate(ca, fixed_ec_key(6).public_key(), now=now),
    }


def test_same_inputs_give_the_same_der() -> None:
    first = _issue_everything(create_school_ca(SCHOOL, now=NOW, key=fixed_ec_key(1)), NOW)
    second = _issue_everything(create_school_ca(SCHOOL, now=NOW, key=fixed_ec_key(1)), NOW)
    assert {k: _der(v) for k, v in first.items()} == {k: _der(v) for k, v in second.items()}


def test_certificates_match_the_golden_files(school_ca: SchoolCA) -> None:
    """Any change to names, extensions or serials shows up here; set TROLLEY_UPDATE_GOLDEN=1."""
    for name, cert in _issue_everything(school_ca, NOW).items():
        path = GOLDEN / f"{name}.pem"
        pem = certificate_to_pem(cert)
        if os.environ.get("TROLLEY_UPDATE_GOLDEN") == "1":
            path.write_bytes(pem)
        assert path.read_bytes() == pem, f"{path.name} differs from the issued certificate"


def test_serials_are_positive_at_most_20_octets_and_differ(school_ca: SchoolCA) -> None:
    issued = _issue_everything(school_ca, NOW)
    later = issue_device_certificate(school_ca, "ipad-042", fixed_ec_key(4).public_key(), now=LATER)
    other_key = issue_device_certificate(
        school_ca, "ipad-042", fixed_ec_key(8).public_key(), now=NOW
    )
    serials = [c.serial_number for c in [*issued.values(), later, other_key]]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**159 for s in serials)


# --- PEM storage -----------------------------------------------------------------------------


def test_school_ca_pem_round_trip(school_ca: SchoolCA) -> None:
    loaded = SchoolCA.from_pem(school_ca.to_pem())
    assert loaded.certificate == school_ca.certificate
    assert loaded.private_key.private_numbers() == school_ca.private_key.private_numbers()
    assert b"ENCRYPTED" not in school_ca.to_pem()


def test_school_ca_pem_round_trip_with_a_passphrase(school_ca: SchoolCA) -> None:
    pem = school_ca.to_pem(passphrase="correct horse battery staple")
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem
    loaded = SchoolCA.from_pem(pem, passphrase="correct horse battery staple")
    assert loaded.private_key.private_numbers() == school_ca.private_key.private_numbers()
    # A reloaded CA issues exactly what the original would.
    key = fixed_ec_key(4).public_key()
    assert _der(issue_device_certificate(loaded, "d-1", key, now=NOW)) == _der(
        issue_device_certificate(school_ca, "d-1", key, now=NOW)
    )


def test_wrong_passphrase_gives_a_clear_error(school_ca: SchoolCA) -> None:
    pem = school_ca.to_pem(passphrase=b"right")
    with pytest.raises(PassphraseError, match="wrong passphrase") as caught:
        SchoolCA.from_pem(pem, passphrase=b"wrong")
    assert isinstance(caught.value, ProvisioningError)
    with pytest.raises(PassphraseError, match="passphrase is needed"):
        SchoolCA.from_pem(pem)
    with pytest.raises(PassphraseError, match="not encrypted"):
        SchoolCA.from_pem(school_ca.to_pem(), passphrase="unneeded")
    with pytest.raises(PassphraseError, match="empty"):
        school_ca.to_pem(passphrase="")


def test_corrupt_or_mismatched_bundles_are_refused(school_ca: SchoolCA, other_ca: SchoolCA) -> None:
    mismatched = other_ca.to_pem().split(b"-----BEGIN CERTIFICATE-----")[0] + school_ca.cert_pem()
    with pytest.raises(KeyFormatError, match="does not belong"):
        SchoolCA.from_pem(mismatched)
    with pytest.raises(KeyFormatError, match="private key"):
        SchoolCA.from_pem(school_ca.cert_pem())
    with pytest.raises(KeyFormatError, match="certificate"):
        SchoolCA.from_pem(school_ca.to_pem() + other_ca.cert_pem())
    corrupt = school_ca.to_pem().replace(b"MIG", b"AAA", 1)
    with pytest.raises(KeyFormatError):
        SchoolCA.from_pem(corrupt)


def test_identity_pem_round_trip(school_ca: SchoolCA) -> None:
    identity = new_server_identity(school_ca, now=NOW, key=fixed_ec_key(5))
    loaded = Identity.from_pem(identity.to_pem("s3cret"), "s3cret")
    assert loaded.certificate == identity.certificate
    assert loaded.key_pem() == identity.key_pem()


def test_fingerprint_is_the_sha256_of_the_der(school_ca: SchoolCA) -> None:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(_der(school_ca.certificate))
    assert fingerprint(school_ca.certificate) == digest.finalize().hex()
    assert school_ca.fingerprint == fingerprint(school_ca.certificate)
    assert len(school_ca.fingerprint) == 64
