"""What waits for a person's decision: the typed hook each domain contributes to.

The home page's "waiting for you" panel and the count in the navigation read every source in
`server.dashboard.services.SOURCES`; each is a domain's own function, so no domain is named by a
string and each keeps its own rule for who may decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.auth.models import User


@dataclass(frozen=True)
class Waiting:
    """One decision this person can make: what, how many devices or requests, since, where."""

    what: str  # in a school's words, e.g. "Factory reset of 84 devices, asked by Raj Shah"
    count: int
    since: datetime
    link: str


WaitingSource = Callable[["Session", "User"], list[Waiting]]
