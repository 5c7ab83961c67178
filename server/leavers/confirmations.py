"""What signing off a leaver case will do, asked before it is done."""

from __future__ import annotations

from server.leavers.models import LeaverCase
from server.web import Confirmation


def sign_off(case: LeaverCase) -> Confirmation:
    """A signature is recorded for good; the last of the three closes the case."""
    return Confirmation(
        question=f"Sign off {case.leaver_name}'s leaving checklist?",
        consequences=(
            "Your sign-off is recorded in the activity trail and cannot be taken back.",
            "When the leaver, the line manager and the technician have all signed, the case "
            "closes.",
        ),
        button="Sign off",
    )


def own_sign_off(case: LeaverCase) -> Confirmation:
    """The leaver signs their own checklist with their personal link."""
    return Confirmation(
        question="Sign your leaving checklist?",
        consequences=(
            "You confirm you have given back every device on the list and said how each is to "
            "be reset.",
            "Your signature is recorded with the time and cannot be taken back.",
        ),
        button="Sign my checklist",
    )


def reset(case: LeaverCase, item_id: int) -> Confirmation | None:
    """A factory reset of one of the leaver's devices; None for an item not on the case."""
    item = next((i for i in case.items if i.id == item_id and i.device is not None), None)
    if item is None or item.device is None:
        return None
    tag = item.device.asset_tag
    return Confirmation(
        question=f"Factory reset {tag}?",
        consequences=(
            f"Everything on {tag} is erased: apps, settings, photos and files. This cannot be "
            "undone.",
            "A second person (another technician or the headteacher) must approve it first.",
        ),
        button=f"Factory reset {tag}",
    )
