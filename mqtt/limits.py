"""How much each message and each client may weigh: the sizes both brokers, the server and the
kiosk enforce.

A message is refused at the first place that sees it: the kiosk does not publish an oversize
report, the brokers close a connection that sends a packet over `MAX_PACKET_BYTES`, and the
server and the kiosk drop (and log) a payload over its kind's limit before parsing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mqtt.errors import BrokerConfigError
from mqtt.topics import TopicKind

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_ACK_BYTES",
    "MAX_COMMAND_BYTES",
    "MAX_DESIRED_BYTES",
    "MAX_INFLIGHT_BYTES",
    "MAX_PACKET_BYTES",
    "MAX_QUEUED_BYTES",
    "MAX_QUEUED_MESSAGES",
    "MAX_REPORT_BYTES",
    "MAX_STATUS_BYTES",
    "BrokerLimits",
    "max_payload_bytes",
]

KIB = 1024
MIB = 1024 * KIB

# A signed command or ack is a few hundred bytes; 64 KiB leaves room for any arguments.
MAX_COMMAND_BYTES = 64 * KIB
MAX_ACK_BYTES = 64 * KIB
# A signed desired profile (the largest built-in one signs to a few KiB).
MAX_DESIRED_BYTES = 512 * KIB
# A report listing 5,000 apps of 200 characters signs to about 1.0 MB (a realistic 5,000-app
# inventory to about 190 KB).
MAX_REPORT_BYTES = 1536 * KIB
# "online" or "offline".
MAX_STATUS_BYTES = 16
# The brokers' limit on a whole MQTT packet: the largest message plus headroom for the topic
# and the header. A client that sends more is disconnected.
MAX_PACKET_BYTES = 2 * MIB

# A connection must send CONNECT within this many seconds (the embedded broker; Mosquitto 2.0
# closes it after about 90 s, 1.5 times its 60-second default keep-alive).
CONNECT_TIMEOUT = 10.0
# Per client: messages waiting for it (offline, or not yet read) and not yet acknowledged. The
# server's own session receives every device's acks, so the count allows a trust's fleet (two
# acks for each of 10,000 devices, twice over) and stays under the 65,535 packet identifiers
# one client can have in flight; the bytes are what bound memory when a client stops reading.
# Over either cap, new messages for that client are dropped (and logged): the worker's outbox
# sends commands again.
MAX_QUEUED_MESSAGES = 50_000
MAX_QUEUED_BYTES = 64 * MIB
# Mosquitto: outgoing QoS 1 messages in flight to one client, by size.
MAX_INFLIGHT_BYTES = 4 * MIB

_PAYLOAD_LIMITS = {
    TopicKind.CMD: MAX_COMMAND_BYTES,
    TopicKind.DESIRED: MAX_DESIRED_BYTES,
    TopicKind.ACK: MAX_ACK_BYTES,
    TopicKind.REPORTED: MAX_REPORT_BYTES,
    TopicKind.STATUS: MAX_STATUS_BYTES,
}


def max_payload_bytes(kind: TopicKind) -> int:
    """The largest payload a message of this kind may carry."""
    return _PAYLOAD_LIMITS[kind]


@dataclass(frozen=True)
class BrokerLimits:
    """The limits a broker is configured with (the defaults above unless a test asks for less)."""

    max_packet_bytes: int = MAX_PACKET_BYTES
    connect_timeout: float = CONNECT_TIMEOUT
    max_queued_messages: int = MAX_QUEUED_MESSAGES
    max_queued_bytes: int = MAX_QUEUED_BYTES
    max_inflight_bytes: int = MAX_INFLIGHT_BYTES

    def __post_init__(self) -> None:
        """Every limit is positive: no limit at all is what these exist to prevent."""
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise BrokerConfigError(f"{name} must be a positive number, not {value!r}")
