"""What the leaver pages show: each item's steps, a case at a glance, and the home card."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from server.auth.models import User
from server.commands.models import Command
from server.leavers.models import HandoverRoute, LeaverCase, LeaverItem, Signer


@dataclass(frozen=True)
class ItemState:
    """One item as people see it: each step, whether it is done, and what happens next."""

    item: LeaverItem
    handed_over: bool
    returned: bool
    reset_done: bool
    reset_at: datetime | None
    reset_words: str
    command: Command | None
    done: bool
    next_step: str

    @property
    def awaiting_reset(self) -> bool:
        return self.command is not None and not self.command.status.finished


@dataclass(frozen=True)
class CaseState:
    """A case at a glance: every item's steps, seen on the school's date."""

    case: LeaverCase
    items: list[ItemState]
    today: date

    @property
    def open_items(self) -> list[ItemState]:
        return [s for s in self.items if not s.done]

    @property
    def devices(self) -> list[ItemState]:
        return [s for s in self.items if s.item.is_device]

    @property
    def personal(self) -> list[ItemState]:
        return [s for s in self.items if not s.item.is_device]

    @property
    def ready(self) -> bool:
        return not self.open_items

    @property
    def overdue(self) -> bool:
        return self.case.is_open and self.today > self.case.last_day

    @property
    def leaver_to_do(self) -> list[ItemState]:
        """Devices the leaver must still give back or say how to reset."""
        return [
            s
            for s in self.devices
            if not s.done and not (s.returned and (s.handed_over or s.reset_done))
        ]

    @property
    def needs_meeting(self) -> bool:
        return self.case.meeting_starts_at is None and any(
            s.item.route is HandoverRoute.MEETING for s in self.devices
        )

    def signatures(self) -> list[tuple[Signer, User | None, datetime | None]]:
        case = self.case
        return [
            (Signer.LEAVER, case.leaver, case.leaver_signed_at),
            (Signer.LINE_MANAGER, case.line_manager, case.line_manager_signed_at),
            (Signer.TECHNICIAN, case.technician, case.technician_signed_at),
        ]


@dataclass(frozen=True)
class HomeCard:
    """The leavers card on the home page: cases due soon or overdue, one's own, ones to sign."""

    manager: bool
    open_cases: Sequence[LeaverCase]
    due_soon: Sequence[LeaverCase]
    overdue: Sequence[LeaverCase]
    mine: LeaverCase | None
    to_sign: Sequence[LeaverCase]
