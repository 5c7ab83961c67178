"""What completing a disposal will do, asked before it is done."""

from __future__ import annotations

from server.disposals.models import Disposal
from server.schools.services.clock import plural
from server.web import Confirmation


def complete(batch: Disposal) -> Confirmation:
    """Completing takes every device in the batch off the register for good."""
    devices = plural(len(batch.items), "device")
    return Confirmation(
        question=f"Complete disposal {batch.reference} of {devices}?",
        consequences=(
            f"{devices} are marked disposed of and leave the register.",
            "They can no longer be lent, sent commands or added to another disposal.",
            "This cannot be undone.",
        ),
        button=f"Complete the disposal of {devices}",
    )
