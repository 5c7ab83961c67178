"""What the disposals domain does when the device channel reports something."""

from __future__ import annotations

from server.disposals import services
from server.events import FactoryResetConfirmed


def on_mark_reset_confirmed(event: FactoryResetConfirmed) -> None:
    """The device itself vouches for an erasure awaiting disposal (its default source)."""
    services.mark_reset_confirmed(event.session, event.device, event.at)


HANDLERS = ((FactoryResetConfirmed, on_mark_reset_confirmed),)
