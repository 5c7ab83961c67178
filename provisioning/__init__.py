"""Provisioning: the school CA, enrolment tokens and payloads, QR codes and asset labels.

Modules: `ca` (certificates), `keys` (key generation and PEM), `tokens` (enrolment tokens),
`payload` (enrolment codes and label URLs), `qr` (QR rendering), `labels` (label sheets).
A leaf package: it never imports flask, `server` or `kiosk_client`.
"""

from provisioning.errors import (
    CertificateAuthorityError,
    CertificateVerificationError,
    KeyFormatError,
    LabelCodeError,
    LabelLayoutError,
    PassphraseError,
    PayloadError,
    ProvisioningError,
    QRCodeError,
)

__all__ = [
    "CertificateAuthorityError",
    "CertificateVerificationError",
    "KeyFormatError",
    "LabelCodeError",
    "LabelLayoutError",
    "PassphraseError",
    "PayloadError",
    "ProvisioningError",
    "QRCodeError",
]
