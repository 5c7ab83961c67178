"""The single exception hierarchy of the provisioning package."""

from __future__ import annotations


class ProvisioningError(Exception):
    """Base class: every error this package raises on purpose."""


class CertificateAuthorityError(ProvisioningError):
    """A certificate could not be issued (bad input, or the CA itself is unusable)."""


class CertificateVerificationError(ProvisioningError):
    """A certificate was not issued by the expected CA, or is not valid at the given time."""


class KeyFormatError(ProvisioningError):
    """A key or certificate could not be read from its PEM or text encoding."""


class PassphraseError(KeyFormatError):
    """An encrypted private key needs a passphrase, or the one given is wrong."""


class PayloadError(ProvisioningError):
    """An enrolment payload is malformed; the message says which rule it broke."""


class LabelCodeError(ProvisioningError):
    """A label URL or scanned label code is malformed, or points at another server."""


class QRCodeError(ProvisioningError):
    """A text cannot be rendered as a QR code (usually: too long)."""


class LabelLayoutError(ProvisioningError):
    """A label or label sheet cannot be laid out (bad field, or bad start position)."""
