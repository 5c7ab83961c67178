"""A school certificate authority: device, broker and profile-signing certificates.

Issuers are pure: `now` is passed in, serial numbers are derived from the certificate's
content and ECDSA signatures are deterministic (RFC 6979), so the same inputs (keys included)
always give the same DER and can be checked against golden files.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.errors import (
    CertificateAuthorityError,
    CertificateVerificationError,
    KeyFormatError,
)
from provisioning.keys import (
    Passphrase,
    PrivateKey,
    PublicKey,
    certificate_to_pem,
    load_certificates_pem,
    load_private_key_pem,
    new_tls_key,
    private_key_to_pem,
)

__all__ = [
    "CA_VALID_DAYS",
    "DEVICE_ID_PATTERN",
    "DEVICE_VALID_DAYS",
    "SERVER_VALID_DAYS",
    "SIGNING_VALID_DAYS",
    "Identity",
    "SchoolCA",
    "create_school_ca",
    "device_id_from_certificate",
    "fingerprint",
    "issue_device_certificate",
    "issue_server_certificate",
    "issue_signing_certificate",
    "new_server_identity",
    "new_signing_identity",
    "verify_device_certificate",
    "verify_issued_by",
    "verify_server_certificate",
]

CA_VALID_DAYS = 3650
# 825 days is the longest life browsers ever accepted for a leaf; renewal stays a yearly-ish chore.
DEVICE_VALID_DAYS = 825
SERVER_VALID_DAYS = 825
SIGNING_VALID_DAYS = 825

# Certificates start a little in the past so a device whose clock runs slow still accepts them.
CLOCK_SKEW = timedelta(minutes=5)

# The device id is the MQTT username, client id and a topic level: no '/', '+', '#' or spaces,
# and it must fit the 64-character limit of an X.509 common name.
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEVICE_URI_PREFIX = "urn:trolley:device:"
_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_UB_NAME = 64  # upper bound of CN and O in RFC 5280

_SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS = 2048


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, as 64 lowercase hex digits."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def _bundle_to_pem(
    certificate: x509.Certificate, key: PrivateKey, passphrase: Passphrase | None
) -> bytes:
    """One PEM text holding the private key then the certificate."""
    return private_key_to_pem(key, passphrase) + certificate_to_pem(certificate)


def _bundle_from_pem(
    data: bytes, passphrase: Passphrase | None
) -> tuple[x509.Certificate, PrivateKey]:
    """Split a key-and-certificate PEM bundle, refusing a key that does not match."""
    key = load_private_key_pem(data, passphrase)
    certificates = load_certificates_pem(data)
    if len(certificates) != 1:
        raise KeyFormatError(f"expected exactly one PEM certificate, found {len(certificates)}")
    return certificates[0], key


def _public_der(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER, used to compare keys and derive serial numbers."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_matches(certificate: x509.Certificate, key: PrivateKey) -> None:
    """Refuse a certificate paired with someone else's private key."""
    if _public_der(key.public_key()) != certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeyFormatError("the private key does not belong to the certificate")


@dataclass(frozen=True)
class Identity:
    """A certificate with its private key: a broker listener, a signer, or a device."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def __post_init__(self) -> None:
        """Check the key belongs to the certificate."""
        _check_key_matches(self.certificate, self.private_key)

    def cert_pem(self) -> bytes:
        """The certificate as PEM (for a `certfile`)."""
        return certificate_to_pem(self.certificate)

    def key_pem(self, passphrase: Passphrase | None = None) -> bytes:
        """The private key as PKCS#8 PEM (for a `keyfile`), encrypted if a passphrase is given."""
        return private_key_to_pem(self.private_key, passphrase)

    def to_pem(self, passphrase: Passphrase | None = None) -> bytes:
        """Key and certificate in one PEM bundle."""
        return _bundle_to_pem(self.certificate, self.private_key, passphrase)

    @classmethod
    def from_pem(cls, data: bytes, passphrase: Passphrase | None = None) -> Identity:
        """Load a bundle written by `to_pem`."""
        certificate, key = _bundle_from_pem(data, passphrase)
        return cls(certificate, key)


@dataclass(frozen=True)
class SchoolCA:
    """A school's own certificate authority: its self-signed certificate and ECDSA key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        """Check the pair is a usable CA."""
        _check_key_matches(self.certificate, self.private_key)
        try:
            constraints = self.certificate.extensions.get_extension_for_class(
                x509.BasicConstraints
            ).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CertificateAuthorityError("the certificate is not a CA certificate")

    @property
    def name(self) -> str:
        """The school name recorded in the CA certificate."""
        values = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(values[0].value) if values else ""

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the CA certificate (what a kiosk pins at enrolment)."""
        return fingerprint(self.certificate)

    def cert_pem(self) -> bytes:
        """The CA certificate as PEM (a broker's `cafile`, a kiosk's trust anchor)."""
        return certificate_to_pem(self.certificate)

    def to_pem(self, passphrase: Passphrase | None = None) -> bytes:
        """Key and certificate in one PEM bundle; pass a passphrase to encrypt the key."""
        return _bundle_to_pem(self.certificate, self.private_key, passphrase)

    @classmethod
    def from_pem(cls, data: bytes, passphrase: Passphrase | None = None) -> SchoolCA:
        """Load a bundle written by `to_pem`."""
        certificate, key = _bundle_from_pem(data, passphrase)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyFormatError("a school CA key must be an ECDSA key")
        return cls(certificate, key)


def _utc_seconds(now: datetime) -> datetime:
    """`now` in UTC to whole seconds (X.509 time has no fractions); naive times are refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise CertificateAuthorityError("`now` must be a timezone-aware datetime")
    return now.astimezone(UTC).replace(microsecond=0)


def _check_valid_days(valid_days: int) -> None:
    """Refuse a validity that is not a positive number of days."""
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days < 1:
        raise CertificateAuthorityError("valid_days must be a positive whole number")


def _check_public_key(key: object, *, allow_ed25519: bool) -> PublicKey:
    """Accept only key types and sizes that TLS stacks and verifiers agree on."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _SUPPORTED_CURVES):
            raise CertificateAuthorityError(f"unsupported elliptic curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise CertificateAuthorityError(f"RSA keys must have at least {_MIN_RSA_BITS} bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        if not allow_ed25519:
            # PKCS#7 signing (Apple profiles) and many TLS servers do not take Ed25519.
            raise CertificateAuthorityError("an Ed25519 key cannot be used for this certificate")
        return key
    raise CertificateAuthorityError(f"unsupported public key type {type(key).__name__}")


def _serial_number(*parts: bytes) -> int:
    """A positive serial of at most 159 bits derived from the certificate's content."""
    digest = hashlib.sha256(b"\x00".join([b"trolley-serial-v1", *parts])).digest()
    # RFC 5280 allows 20 octets; dropping the top bit keeps the DER integer positive.
    return (int.from_bytes(digest[:20], "big") >> 1) or 1


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """A KeyUsage extension with only the named bits set."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _clean_name(value: str, what: str) -> str:
    """A name attribute value: trimmed, non-empty, cut to the X.509 upper bound."""
    cleaned = " ".join(value.split())
    if not cleaned:
        raise CertificateAuthorityError(f"{what} must not be empty")
    return cleaned[:_UB_NAME].rstrip()


def create_school_ca(
    school_name: str,
    *,
    now: datetime,
    valid_days: int = CA_VALID_DAYS,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> SchoolCA:
    """A new self-signed school CA (ECDSA P-256 unless a key is given), valid from `now`."""
    organisation = _clean_name(school_name, "school name")
    _check_valid_days(valid_days)
    start = _utc_seconds(now) - CLOCK_SKEW
    private_key = key if key is not None else new_tls_key()
    public_key = _check_public_key(private_key.public_key(), allow_ed25519=False)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, "Trolley school CA"),
        ]
    )
    not_after = start + timedelta(days=valid_days)
    serial = _serial_number(
        b"ca",
        subject.public_bytes(),
        _public_der(public_key),
        start.isoformat().encode(),
        not_after.isoformat().encode(),
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(not_after)
        # Path length 0: the school CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(private_key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return SchoolCA(certificate, private_key)


def _issue(
    ca: SchoolCA,
    *,
    kind: str,
    common_name: str,
    public_key: PublicKey,
    now: datetime,
    valid_days: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Build and sign a leaf certificate; the shared part of every issuer."""
    _check_valid_days(valid_days)
    issued_at = _utc_seconds(now)
    ca_cert = ca.certificate
    if not ca_cert.not_valid_before_utc <= issued_at <= ca_cert.not_valid_after_utc:
        raise CertificateAuthorityError("the school CA is not valid at the issue time")
    start = issued_at - CLOCK_SKEW
    # A leaf outliving its CA would fail verification anyway; stop it at the CA's expiry.
    not_after = min(start + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    subject_attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if ca.name:
        subject_attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.name))
    subject = x509.Name(subject_attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    serial_parts = [
        kind.encode(),
        ca_cert.fingerprint(hashes.SHA256()),
        subject.public_bytes(),
        _public_der(public_key),
        start.isoformat().encode(),
        not_after.isoformat().encode(),
    ]
    serial_parts.extend(extension.public_bytes() for extension, _ in extensions)
    builder = builder.serial_number(_serial_number(*serial_parts))
    return builder.sign(ca.private_key, hashes.SHA256(), ecdsa_deterministic=True)


def issue_device_certificate(
    ca: SchoolCA,
    device_id: str,
    public_key: PublicKey,
    *,
    now: datetime,
    valid_days: int = DEVICE_VALID_DAYS,
) -> x509.Certificate:
    """A TLS client certificate for one device: CN = device_id, used as its MQTT username."""
    if not isinstance(device_id, str) or not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise CertificateAuthorityError(
            "device id must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    key = _check_public_key(public_key, allow_ed25519=True)
    return _issue(
        ca,
        kind="device",
        common_name=device_id,
        public_key=key,
        now=now,
        valid_days=valid_days,
        extensions=[
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            # Verifiers following RFC 5280 (cryptography's among them) insist on a SAN;
            # Mosquitto's use_identity_as_username still reads the CN.
            (
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(DEVICE_URI_PREFIX + device_id)]
                ),
                False,
            ),
        ],
    )


def _server_names(
    hostnames: Iterable[str], ips: Iterable[str]
) -> tuple[list[x509.GeneralName], str]:
    """The SAN entries for a server certificate and the name to use as its CN."""
    names: list[x509.GeneralName] = []
    first = ""
    for hostname in hostnames:
        host = hostname.strip().rstrip(".").lower()
        labels = host.split(".")
        if not host or len(host) > 253 or not all(_HOSTNAME_LABEL.fullmatch(x) for x in labels):
            raise CertificateAuthorityError(f"not a valid DNS host name: {hostname!r}")
        names.append(x509.DNSName(host))
        first = first or host
    for ip in ips:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError as exc:
            raise CertificateAuthorityError(f"not a valid IP address: {ip!r}") from exc
        names.append(x509.IPAddress(address))
        first = first or str(address)
    if not names:
        raise CertificateAuthorityError("a server certificate needs at least one host name or IP")
    return names, first


def issue_server_certificate(
    ca: SchoolCA,
    public_key: PublicKey,
    *,
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    now: datetime,
    valid_days: int = SERVER_VALID_DAYS,
) -> x509.Certificate:
    """A TLS server certificate (the broker's listener) for the given host names and IPs."""
    key = _check_public_key(public_key, allow_ed25519=False)
    names, common_name = _server_names(hostnames, ips)
    return _issue(
        ca,
        kind="server",
        common_name=common_name,
        public_key=key,
        now=now,
        valid_days=valid_days,
        extensions=[
            # TLS 1.2 RSA key exchange encrypts to the key, so RSA keys also need keyEncipherment.
            (
                _key_usage(
                    digital_signature=True,
                    key_encipherment=isinstance(key, rsa.RSAPublicKey),
                ),
                True,
            ),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(names), False),
        ],
    )


def issue_signing_certificate(
    ca: SchoolCA,
    public_key: PublicKey,
    *,
    now: datetime,
    valid_days: int = SIGNING_VALID_DAYS,
    common_name: str = "Trolley profile signing",
) -> x509.Certificate:
    """A certificate for signing Apple `.mobileconfig` profiles (CMS SignedData)."""
    key = _check_public_key(public_key, allow_ed25519=False)
    return _issue(
        ca,
        kind="signing",
        common_name=_clean_name(common_name, "common name"),
        public_key=key,
        now=now,
        valid_days=valid_days,
        extensions=[
            (_key_usage(digital_signature=True), True),
            # emailProtection is the purpose `openssl cms -verify` (S/MIME) checks by default.
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
        ],
    )


def new_server_identity(
    ca: SchoolCA,
    *,
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    now: datetime,
    valid_days: int = SERVER_VALID_DAYS,
    key: PrivateKey | None = None,
) -> Identity:
    """A fresh key (unless given) and a server certificate for it."""
    private_key = key if key is not None else new_tls_key()
    certificate = issue_server_certificate(
        ca,
        private_key.public_key(),
        hostnames=hostnames,
        ips=ips,
        now=now,
        valid_days=valid_days,
    )
    return Identity(certificate, private_key)


def new_signing_identity(
    ca: SchoolCA,
    *,
    now: datetime,
    valid_days: int = SIGNING_VALID_DAYS,
    key: PrivateKey | None = None,
) -> Identity:
    """A fresh key (unless given) and a profile-signing certificate for it."""
    private_key = key if key is not None else new_tls_key()
    certificate = issue_signing_certificate(
        ca, private_key.public_key(), now=now, valid_days=valid_days
    )
    return Identity(certificate, private_key)


def verify_issued_by(
    certificate: x509.Certificate, ca_cert: x509.Certificate, *, now: datetime | None = None
) -> None:
    """Check `certificate` is signed by `ca_cert` (and, given `now`, that both are in date)."""
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateVerificationError("the issuer certificate is not a CA")
    try:
        certificate.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateVerificationError("the certificate was not issued by this CA") from exc
    if now is not None:
        moment = _utc_seconds_for_check(now)
        for cert, what in ((certificate, "certificate"), (ca_cert, "CA certificate")):
            if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
                raise CertificateVerificationError(f"the {what} is not valid at this time")


def _utc_seconds_for_check(now: datetime) -> datetime:
    """Like `_utc_seconds`, but raising the verification error a caller expects."""
    try:
        return _utc_seconds(now)
    except CertificateAuthorityError as exc:
        raise CertificateVerificationError(str(exc)) from exc


def device_id_from_certificate(certificate: x509.Certificate) -> str:
    """The device id (the subject CN) of a device certificate."""
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1:
        raise CertificateVerificationError("a device certificate has exactly one common name")
    device_id = str(values[0].value)
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise CertificateVerificationError("the certificate's common name is not a device id")
    return device_id


def verify_device_certificate(
    certificate: x509.Certificate, ca_cert: x509.Certificate, *, now: datetime
) -> str:
    """Verify a device's client certificate against the school CA; return its device id."""
    moment = _utc_seconds_for_check(now)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([ca_cert]))
        .time(moment)
        .max_chain_depth(0)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(certificate, [])
    except verification.VerificationError as exc:
        raise CertificateVerificationError(f"device certificate rejected: {exc}") from exc
    device_id = device_id_from_certificate(certificate)
    expected = x509.UniformResourceIdentifier(DEVICE_URI_PREFIX + device_id)
    if expected not in (verified.subjects or []):
        raise CertificateVerificationError("the certificate's SAN does not match its device id")
    return device_id


def verify_server_certificate(
    certificate: x509.Certificate, ca_cert: x509.Certificate, host: str, *, now: datetime
) -> None:
    """Verify a server certificate against the school CA for a host name or IP address."""
    moment = _utc_seconds_for_check(now)
    subject: verification.Subject
    try:
        subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        try:
            subject = x509.DNSName(host)
        except ValueError as exc:
            raise CertificateVerificationError("not a valid host name or IP address") from exc
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([ca_cert]))
        .time(moment)
        .max_chain_depth(0)
        .build_server_verifier(subject)
    )
    try:
        verifier.verify(certificate, [])
    except verification.VerificationError as exc:
        raise CertificateVerificationError(f"server certificate rejected: {exc}") from exc
