"""What a device last said about its photos, as it stands now: a count it reported before its
storage was last erased describes storage that no longer exists, so it is not known."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case

from server.devices.models import Device
from server.devices.services.register import reported_since_erase


def known_photo_count() -> ColumnElement[Any]:
    """SQL for its reported photo count, NULL (not known) if it has been erased since."""
    return case((reported_since_erase(Device.photo_count_at), Device.photo_count))


def known_photo_count_at() -> ColumnElement[datetime | None]:
    """SQL for when it reported that count, NULL if the count is not known."""
    return case((reported_since_erase(Device.photo_count_at), Device.photo_count_at))


def counted_since(moment: Any) -> ColumnElement[bool]:
    """SQL for "it counted its photos at or after `moment`, and has not been erased since"."""
    return and_(Device.photo_count_at >= moment, reported_since_erase(Device.photo_count_at))
