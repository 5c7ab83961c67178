"""What the loss pages show: the 72-hour countdown, lost mode, the facts, the record and the log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from server.commands.models import Command
from server.losses.models import LossEvent, LossKind, LossReport
from server.notifications.models import EmailMessage, Notification
from server.schools.services import plural

# The regulator's window runs from awareness (UK GDPR Art. 33(1)).
CLOCK = timedelta(hours=72)
NOT_ENROLLED = "Lost mode not possible: device not enrolled"
LOST_MODE_LABELS = {
    "waiting_approval": "Waiting for a second person to approve it: not sent yet",
    "pending": "Pending: waiting for the device to collect it",
    "active": "Active: the device is locked and shows the return message",
    "in_google": "Disabled in Google: the Chromebook locks and shows the return message when it "
    "next syncs with Google, which it has not done since",
    "locked_only": "Not lost mode: the device could only be locked with the return message (an "
    "iPad that is not supervised), and it opens with its passcode",
    "turning_off": "Turning off: waiting for the device",
    "off": "Off",
    "erased": "Not known: the device was erased after it confirmed lost mode",
    "failed": "Not confirmed",
    "not_possible": NOT_ENROLLED,
    "none": "Not asked for",
}


def duration(delta: timedelta, *, in_days: bool = False) -> str:
    """'71 h 5 min' or '40 min' for a span of time (sign ignored); '2 days 3 h' if `in_days`."""
    minutes = int(abs(delta).total_seconds() // 60)
    hours, mins = divmod(minutes, 60)
    if in_days and hours >= 24:
        days, hours = divmod(hours, 24)
        return f"{plural(days, 'day')} {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


@dataclass(frozen=True)
class Clock:
    """The 72 hours from awareness, and where the case stands against them."""

    aware_at: datetime
    deadline: datetime
    stopped_at: datetime | None
    now: datetime

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @property
    def remaining(self) -> timedelta:
        return self.deadline - (self.stopped_at or self.now)

    @property
    def overdue(self) -> bool:
        return self.running and self.now >= self.deadline

    @property
    def met(self) -> bool | None:
        """Whether the decision came inside the 72 hours (None while the clock runs)."""
        return None if self.stopped_at is None else self.stopped_at <= self.deadline

    @property
    def stage(self) -> str:
        """'stopped', 'running', '24h', '48h' or 'overdue' (for styling and the API)."""
        if not self.running:
            return "stopped"
        gone = self.now - self.aware_at
        for name, after in (("overdue", CLOCK), ("48h", timedelta(hours=48))):
            if gone >= after:
                return name
        return "24h" if gone >= timedelta(hours=24) else "running"

    @property
    def text(self) -> str:
        if self.stopped_at is not None:
            if self.met:
                return f"Decided with {duration(self.remaining)} to spare"
            return f"Decided {duration(self.remaining)} after the 72 hours ran out"
        if self.overdue:
            return f"Overdue by {duration(self.remaining)}"
        return f"{duration(self.remaining)} left"


@dataclass(frozen=True)
class LostMode:
    """Lost mode as the report shows it: pending → active, from the command's own status."""

    state: str
    command: Command | None = None

    @property
    def standing(self) -> bool:
        """Asked for and not refused: sending it again would only repeat it."""
        return self.state in ("waiting_approval", "pending", "in_google", "active")

    @property
    def label(self) -> str:
        text = LOST_MODE_LABELS[self.state]
        if self.state == "failed" and self.command is not None:
            reason = self.command.detail or self.command.status.label
            return f"{text}: {reason}"
        return text


@dataclass(frozen=True)
class Facts:
    """What Trolley knows that bears on the risk to people (prefills the assessment).

    Every fact is what the device itself reported, with how long before the loss it said it;
    what it never said is "not known", never what its profile asked for (P-LOSS-2).
    """

    photo_count: int | None
    photo_count_at: datetime | None
    photos: str
    last_check_in: datetime | None
    profile_name: str | None  # the profile the device reported applying
    passcode: str
    restrictions: list[str]  # settings the device reported enforcing
    lost_mode: str
    enrolled: bool
    encryption: str = "Not known"
    settings: str = "Not known"  # when the device last reported its settings
    not_enforced: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "photo_count": self.photo_count,
            "photo_count_at": self.photo_count_at.isoformat() if self.photo_count_at else None,
            "photos": self.photos,
            "last_check_in": self.last_check_in.isoformat() if self.last_check_in else None,
            "profile_name": self.profile_name,
            "passcode": self.passcode,
            "encryption": self.encryption,
            "settings": self.settings,
            "restrictions": list(self.restrictions),
            "not_enforced": list(self.not_enforced),
            "lost_mode": self.lost_mode,
            "enrolled": self.enrolled,
        }


@dataclass(frozen=True)
class Case:
    """Everything the report page and the API show about one loss."""

    loss: LossReport
    clock: Clock
    lost_mode: LostMode
    facts: Facts
    deliveries: Sequence[EmailMessage]
    notices: list[tuple[Notification, str]]
    commands: Sequence[Command]
    events: Sequence[LossEvent]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One line of the incident record."""

    at: datetime
    what: str
    who: str | None = None
    kind: str = ""


@dataclass(frozen=True)
class LogEntry:
    """One loss with nothing that identifies a person or a device beyond its model."""

    reported_on: date
    model: str
    kind: LossKind
    outcome: str
    ico: str
    on_time: str


@dataclass(frozen=True)
class TermLog:
    """One term's losses in the governors' log."""

    name: str
    entries: list[LogEntry]
