"""Signing: CMS SignedData, DER, content embedded, checked by `openssl cms -verify`."""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from device_profiles import (
    SigningError,
    builtin_profiles,
    compile_profile,
    load_signing_identity,
    sign_mobileconfig,
)
from device_profiles.signing import SigningKey

OPENSSL = "/usr/bin/openssl"
NOW = datetime.datetime(2025, 9, 1, 9, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: SigningKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Primary School"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _cert(
    subject: str,
    key: SigningKey,
    issuer: x509.Certificate | None,
    issuer_key: SigningKey,
    *,
    ca: bool,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 365 * DAY,
    digital_signature: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature and not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(kind: str) -> Pki:
    def key() -> SigningKey:
        if kind == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    root_key, inter_key, leaf_key = key(), key(), key()
    root = _cert("Trolley Test Root", root_key, None, root_key, ca=True)
    inter = _cert("Trolley Test Intermediate", inter_key, root, root_key, ca=True)
    leaf = _cert("Profile Signing", leaf_key, inter, inter_key, ca=False)
    return Pki(root, inter, leaf, leaf_key)


@pytest.fixture(scope="module")
def ec_pki() -> Pki:
    return make_pki("ec")


@pytest.fixture(scope="module")
def profile_bytes() -> bytes:
    return compile_profile(builtin_profiles()["ks1-ipad"], "apple").content


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def openssl_verify(tmp_path: Path, signed: bytes, root: x509.Certificate) -> bytes:
    """Run `openssl cms -verify` against the root and return the embedded content."""
    (tmp_path / "signed.mobileconfig").write_bytes(signed)
    (tmp_path / "ca.pem").write_bytes(pem(root))
    run = subprocess.run(
        [
            OPENSSL,
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "signed.mobileconfig"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-out",
            str(tmp_path / "content"),
            # Certificates are checked at the signing time we chose, not the test machine's clock.
            "-attime",
            str(int(NOW.timestamp())),
        ],
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert b"Verification successful" in run.stderr
    return (tmp_path / "content").read_bytes()


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_signed_profile_verifies_with_openssl_and_embeds_the_exact_bytes(
    kind: str, tmp_path: Path, profile_bytes: bytes
) -> None:
    pki = make_pki(kind)
    signed = sign_mobileconfig(profile_bytes, pki.leaf, pki.leaf_key, [pki.intermediate], now=NOW)
    assert signed[:1] == b"\x30"  # DER SEQUENCE, not PEM or S/MIME text
    assert openssl_verify(tmp_path, signed, pki.root) == profile_bytes


def test_signature_is_not_detached(tmp_path: Path, ec_pki: Pki, profile_bytes: bytes) -> None:
    signed = sign_mobileconfig(
        profile_bytes, ec_pki.leaf, ec_pki.leaf_key, [ec_pki.intermediate], now=NOW
    )
    assert profile_bytes in signed  # Binary: the plist is embedded verbatim, \n not \r\n


def test_missing_chain_fails_verification(
    tmp_path: Path, ec_pki: Pki, profile_bytes: bytes
) -> None:
    # Without the intermediate the device cannot build a path to the root: proof the chain is
    # really embedded in the passing test above.
    signed = sign_mobileconfig(profile_bytes, ec_pki.leaf, ec_pki.leaf_key, now=NOW)
    (tmp_path / "s").write_bytes(signed)
    (tmp_path / "ca.pem").write_bytes(pem(ec_pki.root))
    run = subprocess.run(
        [
            OPENSSL,
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "s"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-out",
            str(tmp_path / "c"),
            "-attime",
            str(int(NOW.timestamp())),
        ],
        capture_output=True,
        check=False,
    )
    assert run.returncode != 0


def test_key_that_does_not_match_the_certificate(ec_pki: Pki, profile_bytes: bytes) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningError) as info:
        sign_mobileconfig(profile_bytes, ec_pki.leaf, other, now=NOW)
    assert info.value.key_path == "private_key"
    assert "does not belong to the certificate" in info.value.message
    assert "CN=Profile Signing" in info.value.message


def test_expired_certificate(ec_pki: Pki, profile_bytes: bytes) -> None:
    later = NOW + 400 * DAY
    with pytest.raises(SigningError) as info:
        sign_mobileconfig(profile_bytes, ec_pki.leaf, ec_pki.leaf_key, now=later)
    assert info.value.key_path == "certificate"
    assert "expired on" in info.value.message


def test_not_yet_valid_certificate(ec_pki: Pki, profile_bytes: bytes) -> None:
    with pytest.raises(SigningError, match="not valid until"):
        sign_mobileconfig(profile_bytes, ec_pki.leaf, ec_pki.leaf_key, now=NOW - 2 * DAY)


def test_expired_intermediate(profile_bytes: bytes) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Root", root_key, None, root_key, ca=True)
    inter = _cert(
        "Old Intermediate",
        inter_key,
        root,
        root_key,
        ca=True,
        not_after=NOW - DAY,
        not_before=NOW - 10 * DAY,
    )
    leaf = _cert("Leaf", leaf_key, inter, inter_key, ca=False)
    with pytest.raises(SigningError) as info:
        sign_mobileconfig(profile_bytes, leaf, leaf_key, [inter], now=NOW)
    assert info.value.key_path == "chain"


def test_now_must_have_a_timezone(ec_pki: Pki, profile_bytes: bytes) -> None:
    with pytest.raises(SigningError, match="timezone"):
        sign_mobileconfig(profile_bytes, ec_pki.leaf, ec_pki.leaf_key, now=NOW.replace(tzinfo=None))


def test_certificate_without_digital_signature_usage(profile_bytes: bytes) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Root", root_key, None, root_key, ca=True)
    leaf = _cert("Encrypt only", key, root, root_key, ca=False, digital_signature=False)
    with pytest.raises(SigningError, match="digitalSignature"):
        sign_mobileconfig(profile_bytes, leaf, key, now=NOW)


def test_content_must_be_a_profile(ec_pki: Pki) -> None:
    with pytest.raises(SigningError, match="nothing to sign"):
        sign_mobileconfig(b"", ec_pki.leaf, ec_pki.leaf_key, now=NOW)
    with pytest.raises(SigningError, match="not a property list"):
        sign_mobileconfig(b"hello", ec_pki.leaf, ec_pki.leaf_key, now=NOW)


def test_ed25519_is_refused(ec_pki: Pki, profile_bytes: bytes) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(SigningError, match="RSA or ECDSA"):
        sign_mobileconfig(profile_bytes, ec_pki.leaf, key, now=NOW)  # type: ignore[arg-type]


def test_load_signing_identity(ec_pki: Pki) -> None:
    key_pem = ec_pki.leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    identity = load_signing_identity(pem(ec_pki.leaf), key_pem, pem(ec_pki.intermediate))
    assert identity.certificate == ec_pki.leaf
    assert identity.chain == (ec_pki.intermediate,)
    with pytest.raises(SigningError) as bad_key:
        load_signing_identity(pem(ec_pki.leaf), b"not a key")
    assert bad_key.value.key_path == "private_key"
    with pytest.raises(SigningError) as bad_cert:
        load_signing_identity(b"nope", key_pem)
    assert bad_cert.value.key_path == "certificate"
