"""Dated backup files in a folder, and which of them to keep (newest per day and per month)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

_NAME = "trolley-%Y%m%dT%H%M%SZ.backup"
PATTERN = "trolley-*.backup"


def archive_name(now: datetime) -> str:
    """The file name of a backup taken at `now`; names sort in time order."""
    return now.astimezone(UTC).strftime(_NAME)


def taken_at(path: Path) -> datetime | None:
    """When a dated backup was taken, from its name; None for any other file."""
    try:
        return datetime.strptime(path.name, _NAME).replace(tzinfo=UTC)
    except ValueError:
        return None


def to_remove(folder: Path, *, daily: int, monthly: int) -> list[Path]:
    """Backups beyond the newest of each of the last `daily` days and `monthly` months."""
    dated = sorted(
        ((stamp, path) for path in folder.glob(PATTERN) if (stamp := taken_at(path))),
        reverse=True,
    )
    keep: set[Path] = {dated[0][1]} if dated else set()  # the newest, whatever the counts
    for count, period in ((daily, "%Y-%m-%d"), (monthly, "%Y-%m")):
        seen: set[str] = set()
        for stamp, path in dated:
            label = stamp.strftime(period)
            if label not in seen and len(seen) < count:
                seen.add(label)
                keep.add(path)
    return [path for _stamp, path in dated if path not in keep]


def newest(folder: Path) -> Path | None:
    """The most recent dated backup in a folder."""
    dated = [(stamp, path) for path in folder.glob(PATTERN) if (stamp := taken_at(path))]
    return max(dated)[1] if dated else None
