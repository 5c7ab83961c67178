"""The single exception hierarchy of the mqtt package."""

from __future__ import annotations

from typing import ClassVar


class MqttError(Exception):
    """Base class: every error this package raises on purpose."""


class TopicError(MqttError):
    """A device id or topic is not part of the Trolley topic tree."""


class MessageError(MqttError):
    """A message body does not match its schema; the text says which rule it broke."""


class UnknownCommandError(MessageError):
    """A command names a type this version of the protocol does not know."""


class EnvelopeError(MqttError):
    """A signed envelope was refused; `reason` is a stable code fit for an ack or a log."""

    reason: ClassVar[str] = "malformed"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class OversizedError(EnvelopeError):
    """The raw envelope is larger than the receiver accepts."""

    reason = "oversized"


class MalformedError(EnvelopeError):
    """The envelope or its body is not canonical JSON of the expected shape."""

    reason = "malformed"


class UnknownKidError(EnvelopeError):
    """The body names a key id the receiver does not hold."""

    reason = "unknown_kid"


class BadSignatureError(EnvelopeError):
    """The signature does not verify against the named key."""

    reason = "bad_signature"


class WrongDeviceError(EnvelopeError):
    """The body is addressed to (or comes from) another device."""

    reason = "wrong_device"


class ExpiredError(EnvelopeError):
    """The body's `exp` has passed."""

    reason = "expired"


class NotYetValidError(EnvelopeError):
    """The body's `iat` lies further in the future than the allowed clock skew."""

    reason = "not_yet_valid"


class ReplayedError(EnvelopeError):
    """The command was seen before, or its sequence number is too old."""

    reason = "replayed"


class BrokerURLError(MqttError):
    """A broker URL cannot be used; the text says why (never the password)."""


class ClientSetupError(MqttError):
    """A paho client cannot be built from the given settings."""


class PublishError(MqttError):
    """A publish was refused by paho or not acknowledged in time."""


class PasswordFileError(MqttError):
    """A broker password file or entry is malformed."""


class BrokerError(MqttError):
    """The embedded broker could not start or stop."""


class BrokerConfigError(MqttError):
    """Broker configuration (embedded or Mosquitto) is invalid."""


class ProtocolViolationError(MqttError):
    """A client sent something MQTT 3.1.1 forbids; the broker closes its connection."""


class OversizePacketError(ProtocolViolationError):
    """A client sent a packet larger than the broker accepts."""
