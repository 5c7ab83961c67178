"""What the loans domain does when devices say where they are."""

from __future__ import annotations

from server.events import NetworksReported
from server.loans.services.off_site import seen_on_networks


def on_networks_reported(event: NetworksReported) -> None:
    """A device outside school's networks without an approved home loan is flagged."""
    seen_on_networks(event.session, event.sightings)


HANDLERS = ((NetworksReported, on_networks_reported),)
