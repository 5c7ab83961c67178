"""What the escrow domain does when the device channel reports something."""

from __future__ import annotations

from server.escrow import services
from server.events import FactoryResetConfirmed


def on_device_reset(event: FactoryResetConfirmed) -> None:
    """The device's escrowed secrets are destroyed when it is erased."""
    services.device_reset(event.session, event.device, event.at)


HANDLERS = ((FactoryResetConfirmed, on_device_reset),)
