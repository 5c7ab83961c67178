"""Typed domain events: how the device channel tells the domains above it what a device did.

The commands domain sits below escrow, disposals, licences, profiles and losses (they queue
commands), so it cannot import them; nor can enrolment, whose keys profiles signs with. They
publish an event instead; each listening domain's `handlers.py` says what it does with it. Every
handler is connected in one place, `connect_handlers()`, and an event nobody listens to is a
start-up error, never silence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from blinker import Namespace

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.devices.models import Device


@dataclass(frozen=True)
class Event:
    """Something devices reported; handlers write with `session` and never commit."""

    session: Session


@dataclass(frozen=True)
class DeviceEvent(Event):
    """Something one device reported, at `at`."""

    device: Device
    at: datetime


@dataclass(frozen=True)
class FactoryResetConfirmed(DeviceEvent):
    """The device acknowledged a factory reset: it is erased and must be enrolled again."""


@dataclass(frozen=True)
class DeviceEnrolled(DeviceEvent):
    """The device has a new broker identity: what went out on the old one's topics must go again."""


@dataclass(frozen=True)
class AppsReported(DeviceEvent):
    """The device reported the apps installed on it."""

    apps: Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class ProfileReported(DeviceEvent):
    """The device reported the hash of the profile it has applied, and each setting's state.

    `settings` ({setting, state, detail, evidence} each) describe the document `settings_sha256`;
    a device that reports none leaves every setting "not known".
    """

    sha256: str | None
    settings: Sequence[Mapping[str, Any]] | None = None
    settings_sha256: str | None = None


@dataclass(frozen=True)
class DeviceCameOnline(DeviceEvent):
    """The device connected after being offline."""


@dataclass(frozen=True)
class NetworkSighting:
    """A device (or Google, for a Chromebook) said which network the device is on.

    `source` is who said it ("device" or "google"); each fact is None when not said.
    """

    device: Device
    at: datetime
    source: str
    ssid: str | None = None
    gateway: str | None = None
    public_address: str | None = None


@dataclass(frozen=True)
class NetworksReported(Event):
    """Devices said which network they are on: a batch's sightings, judged together."""

    sightings: Sequence[NetworkSighting]


EVENTS: tuple[type[Event], ...] = (
    FactoryResetConfirmed,
    DeviceEnrolled,
    AppsReported,
    ProfileReported,
    DeviceCameOnline,
    NetworksReported,
)

Handler = Callable[[Any], None]

_signals = Namespace()
_lock = threading.Lock()
_connected = False


class MissingHandler(RuntimeError):
    """An event has no listener: a domain's handlers.py is missing or no longer connects it."""


def _signal(kind: type[Event], namespace: Namespace = _signals) -> Any:
    return namespace.signal(f"{kind.__module__}.{kind.__qualname__}")


def wire(modules: Iterable[ModuleType], namespace: Namespace) -> None:
    """Connect each module's `HANDLERS` in `namespace`; fail if an event would go unheard."""
    for module in modules:
        pairs: Sequence[tuple[type[Event], Handler]] = module.HANDLERS
        for kind, handler in pairs:
            if kind not in EVENTS:
                raise MissingHandler(f"{module.__name__} listens for an unknown event {kind}")
            _signal(kind, namespace).connect(handler, weak=False)
    unheard = [kind.__name__ for kind in EVENTS if not _signal(kind, namespace).receivers]
    if unheard:
        raise MissingHandler(f"no domain handles these events: {', '.join(unheard)}")


def connect_handlers() -> None:
    """Connect every domain's handlers once, at start-up (the app, the worker, the channel)."""
    global _connected
    with _lock:
        if _connected:
            return
        from server.domains import import_part

        wire(import_part("handlers"), _signals)
        _connected = True


def publish(event: Event) -> None:
    """Tell every listening domain, in the caller's transaction; a handler's error propagates."""
    connect_handlers()
    _signal(type(event)).send(event)
