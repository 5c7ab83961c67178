"""The sides of the device channel a worker process can run (light: the CLI imports it)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Which side of the channel a process runs: both, or one of them (`trolley worker` runs
    each in a process of its own, so that each has an interpreter to itself)."""

    BOTH = "both"
    PUBLISH = "publish"  # commands and desired state out
    RECORD = "record"  # acks, reports and presence in

    @property
    def publishes(self) -> bool:
        return self is not Role.RECORD

    @property
    def records(self) -> bool:
        return self is not Role.PUBLISH
