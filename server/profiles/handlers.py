"""What the profiles domain does when the device channel reports something."""

from __future__ import annotations

from server.events import DeviceEnrolled, ProfileReported
from server.profiles import services


def on_record_applied(event: ProfileReported) -> None:
    """The profile a device reports, and each setting as it reports it, is what it enforces."""
    services.record_applied(
        event.session,
        event.device,
        event.sha256,
        event.at,
        settings=event.settings,
        settings_sha256=event.settings_sha256,
    )


def on_enrolled(event: DeviceEnrolled) -> None:
    """A new identity listens on new topics: the device's profile goes out to it again."""
    services.publish_again(event.session, event.device)


HANDLERS = (
    (ProfileReported, on_record_applied),
    (DeviceEnrolled, on_enrolled),
)
