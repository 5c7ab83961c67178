"""The Trolley topic tree: `trolley/v1/dev/{device_id}/{kind}`, and the filters each side uses.

```
trolley/v1/dev/{device_id}/cmd       server → device  QoS 1, never retained
trolley/v1/dev/{device_id}/desired   server → device  QoS 1, retained
trolley/v1/dev/{device_id}/ack       device → server  QoS 1
trolley/v1/dev/{device_id}/reported  device → server  QoS 1
trolley/v1/dev/{device_id}/status    device → server  QoS 1, retained ("online"; LWT "offline")
trolley/v1/srv/{client_id}/heartbeat worker → itself  QoS 1 (proves the broker still delivers)
```

The device id is also the device's MQTT username and client id, so the broker ACL can pin a
device to its own topics. Device ids are checked here so that no `+`, `#` or `/` can reach a
topic or an ACL pattern.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TypeGuard

from mqtt.errors import TopicError

__all__ = [
    "DEVICE_ID_PATTERN",
    "DEVICE_KINDS",
    "PREFIX",
    "QOS",
    "SERVER_KINDS",
    "STATUS_OFFLINE",
    "STATUS_ONLINE",
    "TopicKind",
    "ack_topic",
    "cmd_topic",
    "desired_topic",
    "device_subscriptions",
    "device_topic",
    "is_device_id",
    "parse_device_topic",
    "reported_topic",
    "server_subscriptions",
    "status_topic",
    "validate_device_id",
    "worker_heartbeat_topic",
]

PREFIX = "trolley/v1"
QOS = 1
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

# Lower-case letters, digits and hyphens only: safe as a topic level, an MQTT username, a client
# id and a Mosquitto `%u` substitution (which refuses `+`, `#` and `/`).
DEVICE_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")

# The shared-subscription group the server's workers join on Mosquitto/EMQX.
DEFAULT_SHARE_GROUP = "trolley"
_SHARE_GROUP_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A worker's client id, as a topic level of its own heartbeat.
_CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TopicKind(StrEnum):
    """The last level of a device topic."""

    CMD = "cmd"
    DESIRED = "desired"
    ACK = "ack"
    REPORTED = "reported"
    STATUS = "status"


# Server → device kinds (a device subscribes to these) and device → server kinds.
DEVICE_KINDS: tuple[TopicKind, ...] = (TopicKind.CMD, TopicKind.DESIRED)
SERVER_KINDS: tuple[TopicKind, ...] = (TopicKind.ACK, TopicKind.REPORTED, TopicKind.STATUS)


def is_device_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a well-formed device id."""
    return isinstance(value, str) and DEVICE_ID_PATTERN.fullmatch(value) is not None


def validate_device_id(device_id: object) -> str:
    """Return `device_id` unchanged if well formed, else raise `TopicError`."""
    if not is_device_id(device_id):
        raise TopicError(
            f"invalid device id {device_id!r}: 3-64 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return device_id


def device_topic(device_id: str, kind: TopicKind | str) -> str:
    """The topic of one kind for one device."""
    try:
        kind = TopicKind(kind)
    except ValueError:
        raise TopicError(f"unknown topic kind {kind!r}") from None
    return f"{PREFIX}/dev/{validate_device_id(device_id)}/{kind.value}"


def cmd_topic(device_id: str) -> str:
    """Signed commands for one device (never retained)."""
    return device_topic(device_id, TopicKind.CMD)


def desired_topic(device_id: str) -> str:
    """The signed desired state of one device (retained)."""
    return device_topic(device_id, TopicKind.DESIRED)


def ack_topic(device_id: str) -> str:
    """Signed command acknowledgements from one device."""
    return device_topic(device_id, TopicKind.ACK)


def reported_topic(device_id: str) -> str:
    """Signed inventory and applied state from one device."""
    return device_topic(device_id, TopicKind.REPORTED)


def status_topic(device_id: str) -> str:
    """Presence of one device: retained `online`, or the `offline` will."""
    return device_topic(device_id, TopicKind.STATUS)


def worker_heartbeat_topic(client_id: str) -> str:
    """A worker's heartbeat: only server users may use it, and only that worker subscribes."""
    if not isinstance(client_id, str) or not _CLIENT_ID_PATTERN.fullmatch(client_id):
        raise TopicError(
            f"invalid worker client id {client_id!r}: 1-64 characters of A-Z, a-z, 0-9, '_', '-'"
        )
    return f"{PREFIX}/srv/{client_id}/heartbeat"


def parse_device_topic(topic: str) -> tuple[str, TopicKind]:
    """Split a device topic into (device_id, kind); raise `TopicError` for anything else."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/dev":
        raise TopicError(f"not a Trolley device topic: {topic!r}")
    device_id, kind = parts[3], parts[4]
    if not is_device_id(device_id):
        raise TopicError(f"not a Trolley device topic (bad device id): {topic!r}")
    try:
        return device_id, TopicKind(kind)
    except ValueError:
        raise TopicError(f"not a Trolley device topic (unknown kind): {topic!r}") from None


def device_subscriptions(device_id: str) -> list[str]:
    """The filters a kiosk subscribes to: its own `cmd` and `desired` topics."""
    return [device_topic(device_id, kind) for kind in DEVICE_KINDS]


def server_subscriptions(*, shared: bool = False, group: str = DEFAULT_SHARE_GROUP) -> list[str]:
    """The filters a server worker subscribes to: every device's `ack`, `reported` and `status`.

    With `shared=True` the filters are `$share/{group}/...` so several workers split the load;
    only Mosquitto and EMQX implement that (amqtt refuses it, see `mqtt.broker`). Retained
    `status` messages are not delivered to shared subscriptions, so presence comes from the DB.
    """
    filters = [f"{PREFIX}/dev/+/{kind.value}" for kind in SERVER_KINDS]
    if not shared:
        return filters
    if not _SHARE_GROUP_PATTERN.fullmatch(group):
        raise TopicError(f"invalid shared-subscription group {group!r}")
    return [f"$share/{group}/{topic_filter}" for topic_filter in filters]
