"""What the device core sends through and hands back: the publisher, a command's outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard

from kiosk_client.state import Stage

_MAX_DETAIL = 500
_MAX_ACK_CMD_ID = 64

Settle = Callable[[], None]


class Publisher(Protocol):
    """How the core sends messages (QoS 1)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a message; never blocks for the network."""

    def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 5.0
    ) -> bool:
        """Publish and wait (bounded) for the broker's PUBACK; whether it came."""


@dataclass(frozen=True)
class Outcome:
    """How a command ended."""

    stage: Stage
    detail: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def _short(text: str) -> str:
    """Text cut to what an ack's `detail` may carry."""
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _shown(value: object) -> str:
    """An untrusted value for a log line: quoted, escaped and cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _ackable(cmd_id: object) -> TypeGuard[str]:
    """Whether an (unverified) cmd_id can be named in an ack at all."""
    return isinstance(cmd_id, str) and 0 < len(cmd_id) <= _MAX_ACK_CMD_ID
