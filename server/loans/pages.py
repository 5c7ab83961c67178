"""What loan pages show: trolley rows, devices out, how photo wipes stand, the home card."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from server.loans.models import LoanItem


@dataclass(frozen=True)
class TrolleyRow:
    """A trolley, safe or cupboard on the scan page: its devices out, in it, and in all."""

    id: int
    name: str
    kind: str
    code: str  # the code printed on its label, typed or scanned to choose it
    out: int
    total: int
    here: int


@dataclass(frozen=True)
class OutItem:
    """A device out now, with who has it and since when (P-REG-3)."""

    asset_tag: str
    model: str
    loan_id: int
    kind: str
    teacher: str
    teacher_id: int
    class_label: str
    trolley: str | None
    out_at: datetime
    due_at: datetime
    overdue: bool
    overnight: bool
    last_seen_at: datetime | None


@dataclass(frozen=True)
class WipeSummary:
    """Wipes not yet confirmed, however old, by how they stand, for the leads' card."""

    pending: int
    failed: int
    by_hand: int


@dataclass
class HomeCard:
    """The loans card on the home page: my devices out and, for leads, the whole school."""

    mine: list[OutItem]
    trolleys: list[TrolleyRow] = field(default_factory=list)
    out: list[OutItem] = field(default_factory=list)
    wipes: WipeSummary | None = None
    damage_open: int = 0
    home_waiting: int = 0
    misplaced: list[LoanItem] = field(default_factory=list)

    @property
    def overdue(self) -> list[OutItem]:
        return [i for i in self.out if i.overdue]

    @property
    def overnight(self) -> list[OutItem]:
        return [i for i in self.out if i.overnight]
