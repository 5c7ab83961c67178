"""Sign a .mobileconfig as CMS SignedData (DER, content embedded) so iPads show "Verified"."""

from __future__ import annotations

import datetime
import plistlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7

from device_profiles.errors import SigningError

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningIdentity:
    """A signing certificate, its private key and the intermediates to embed."""

    certificate: x509.Certificate
    private_key: SigningKey
    chain: tuple[x509.Certificate, ...] = ()


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_validity(cert: x509.Certificate, now: datetime.datetime, role: str) -> None:
    if now < cert.not_valid_before_utc:
        raise SigningError(
            f"the {role} certificate {_subject(cert)} is not valid until "
            f"{cert.not_valid_before_utc.isoformat()}",
            key_path="certificate" if role == "signing" else "chain",
        )
    if now > cert.not_valid_after_utc:
        raise SigningError(
            f"the {role} certificate {_subject(cert)} expired on "
            f"{cert.not_valid_after_utc.isoformat()}",
            key_path="certificate" if role == "signing" else "chain",
        )


def sign_mobileconfig(
    content: bytes,
    certificate: x509.Certificate,
    private_key: SigningKey,
    chain: Sequence[x509.Certificate] = (),
    *,
    now: datetime.datetime,
) -> bytes:
    """Wrap `content` in a DER CMS SignedData with the bytes embedded and unchanged.

    `now` (timezone-aware) is when the signature is made; certificates must be valid then.
    """
    if now.tzinfo is None:
        raise SigningError("`now` must carry a timezone (use datetime.UTC)", key_path="now")
    now = now.astimezone(datetime.UTC)
    if not content:
        raise SigningError("there is nothing to sign: the profile is empty", key_path="content")
    try:
        plistlib.loads(content)
    except Exception as exc:  # plistlib raises several unrelated types on bad input
        raise SigningError(
            f"the content is not a property list, so not a profile: {exc}", key_path="content"
        ) from exc
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningError(
            f"a {type(private_key).__name__} cannot sign profiles; use an RSA or ECDSA P-256 key",
            key_path="private_key",
        )
    if _spki(certificate.public_key()) != _spki(private_key.public_key()):
        raise SigningError(
            f"the private key does not belong to the certificate {_subject(certificate)}",
            key_path="private_key",
        )
    _check_validity(certificate, now, "signing")
    for cert in chain:
        _check_validity(cert, now, "chain")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise SigningError(
            f"the certificate {_subject(certificate)} is not allowed to make digital signatures "
            "(its key usage lacks digitalSignature)",
            key_path="certificate",
        )

    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    builder = builder.add_signer(certificate, private_key, hashes.SHA256())
    for cert in chain:
        builder = builder.add_certificate(cert)
    # Binary keeps the bytes exactly as given (no \n -> \r\n); no DetachedSignature, because
    # iPads need the profile inside the signature.
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def load_signing_identity(
    certificate_pem: bytes,
    private_key_pem: bytes,
    chain_pem: bytes = b"",
    password: bytes | None = None,
) -> SigningIdentity:
    """Parse PEM certificate, key and optional chain, with errors that say which part is wrong."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as exc:
        raise SigningError(f"the certificate is not PEM: {exc}", key_path="certificate") from exc
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=password)
    except (ValueError, TypeError) as exc:
        raise SigningError(
            f"the private key cannot be read: {exc}", key_path="private_key"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningError(
            f"a {type(key).__name__} cannot sign profiles; use an RSA or ECDSA P-256 key",
            key_path="private_key",
        )
    try:
        chain = tuple(x509.load_pem_x509_certificates(chain_pem)) if chain_pem.strip() else ()
    except ValueError as exc:
        raise SigningError(f"the chain is not PEM: {exc}", key_path="chain") from exc
    return SigningIdentity(certificate=certificate, private_key=key, chain=chain)
