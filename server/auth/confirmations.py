"""What turning an account off will do, asked before it is done."""

from __future__ import annotations

from server.auth.models import User
from server.web import Confirmation


def deactivate(person: User) -> Confirmation:
    """Turning someone off signs them out everywhere at once."""
    return Confirmation(
        question=f"Turn off {person.name}'s account?",
        consequences=(
            f"{person.name} is signed out on every device at once and cannot log in.",
            "Every access token of theirs stops working; new ones must be made if the account "
            "is turned back on.",
        ),
        button=f"Turn off {person.name}",
    )
