"""What the losses domain does when the device channel reports something."""

from __future__ import annotations

from server.events import DeviceCameOnline
from server.losses import services


def on_device_seen_online(event: DeviceCameOnline) -> None:
    """A lost device coming online is news for its loss report."""
    services.device_seen_online(event.session, event.device, event.at)


HANDLERS = ((DeviceCameOnline, on_device_seen_online),)
