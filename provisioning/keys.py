"""Key generation and the PEM and text encodings of keys and certificates."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from provisioning.errors import KeyFormatError, PassphraseError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "PrivateKey",
    "PublicKey",
    "certificate_to_pem",
    "decode_public_key",
    "encode_public_key",
    "load_certificate_pem",
    "load_certificates_pem",
    "load_private_key_pem",
    "new_device_key",
    "new_tls_key",
    "private_key_to_pem",
]

# The key types this package issues certificates for and stores; DSA and the rest are refused.
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

Passphrase = str | bytes

_RAW_ED25519_LEN = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?",
    re.DOTALL,
)


def new_device_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 key: the kiosk signs its acks and reports with it."""
    return ed25519.Ed25519PrivateKey.generate()


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key, the kind every TLS stack and Apple profile signing accept."""
    return ec.generate_private_key(ec.SECP256R1())


def encode_public_key(key: ed25519.Ed25519PublicKey) -> str:
    """The raw 32-byte Ed25519 public key as unpadded base64url (43 characters)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_public_key(text: str) -> ed25519.Ed25519PublicKey:
    """Parse an unpadded base64url Ed25519 public key, as sent by a kiosk at enrolment."""
    text = text.strip()
    # Only 43 characters can hold 32 bytes; checking first keeps huge inputs cheap to refuse.
    if len(text) != 43 or not _BASE64URL.fullmatch(text):
        raise KeyFormatError("device public key must be 43 characters of unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("device public key is not valid base64url") from exc
    if len(raw) != _RAW_ED25519_LEN:
        raise KeyFormatError("device public key must decode to 32 bytes")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _passphrase_bytes(passphrase: Passphrase) -> bytes:
    """The passphrase as bytes, refusing an empty one (it would protect nothing)."""
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if not data:
        raise PassphraseError("passphrase must not be empty")
    return data


def private_key_to_pem(key: PrivateKey, passphrase: Passphrase | None = None) -> bytes:
    """PKCS#8 PEM of a private key, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if passphrase is None
        else serialization.BestAvailableEncryption(_passphrase_bytes(passphrase))
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key_pem(data: bytes, passphrase: Passphrase | None = None) -> PrivateKey:
    """Read a PEM private key; a wrong or missing passphrase raises `PassphraseError`."""
    blocks = [match for match in _PEM_BLOCK.finditer(data) if b"PRIVATE KEY" in match.group(1)]
    if len(blocks) != 1:
        raise KeyFormatError(f"expected exactly one PEM private key, found {len(blocks)}")
    block = blocks[0].group(0)
    encrypted = blocks[0].group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and passphrase is None:
        raise PassphraseError("the private key is encrypted: a passphrase is needed")
    if not encrypted and passphrase is not None:
        # A configured passphrase that protects nothing usually means the wrong file was given.
        raise PassphraseError("a passphrase was given but the private key is not encrypted")
    password = None if passphrase is None else _passphrase_bytes(passphrase)
    try:
        key = serialization.load_pem_private_key(block, password=password)
    except ValueError as exc:
        if encrypted:
            raise PassphraseError("wrong passphrase for the encrypted private key") from exc
        raise KeyFormatError("the PEM private key is corrupt or not supported") from exc
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError("the PEM private key is corrupt or not supported") from exc
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KeyFormatError(f"unsupported private key type {type(key).__name__}")
    return key


def certificate_to_pem(certificate: x509.Certificate) -> bytes:
    """PEM of one certificate."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def load_certificates_pem(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order (other PEM blocks are ignored)."""
    # Imported here: X.509 is large, and a running kiosk only needs its key, not certificates.
    from cryptography import x509

    certificates: list[x509.Certificate] = []
    for match in _PEM_BLOCK.finditer(data):
        if match.group(1) != b"CERTIFICATE":
            continue
        try:
            certificates.append(x509.load_pem_x509_certificate(match.group(0)))
        except ValueError as exc:
            raise KeyFormatError("a PEM certificate is corrupt") from exc
    return certificates


def load_certificate_pem(data: bytes) -> x509.Certificate:
    """Exactly one certificate from a PEM text."""
    certificates = load_certificates_pem(data)
    if len(certificates) != 1:
        raise KeyFormatError(f"expected exactly one PEM certificate, found {len(certificates)}")
    return certificates[0]
