"""What the licences domain does when the device channel reports something."""

from __future__ import annotations

from server.events import AppsReported
from server.licences import services


def on_record_installed_apps(event: AppsReported) -> None:
    """What the device says is installed counts against the school's licences."""
    services.record_installed_apps(event.session, event.device, event.apps, event.at)


HANDLERS = ((AppsReported, on_record_installed_apps),)
