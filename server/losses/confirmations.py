"""What the remote steps on a lost device will do, asked before they are done."""

from __future__ import annotations

from server.losses.models import LossReport
from server.web import Confirmation


def lost_mode(loss: LossReport) -> Confirmation:
    tag = loss.device.asset_tag
    return Confirmation(
        question=f"Put {tag} in lost mode?",
        consequences=(
            f"{tag} is locked and shows the school's return message until lost mode is turned off.",
        ),
        button=f"Put {tag} in lost mode",
    )


def factory_reset(loss: LossReport) -> Confirmation:
    tag = loss.device.asset_tag
    return Confirmation(
        question=f"Ask for a factory reset of {tag}?",
        consequences=(
            f"Once approved, everything on {tag} is erased: apps, settings, photos and files. "
            "This cannot be undone.",
            "A second person (a technician) must approve it before it is sent.",
        ),
        button=f"Ask for a factory reset of {tag}",
    )


def wipe_photos(loss: LossReport) -> Confirmation:
    tag = loss.device.asset_tag
    return Confirmation(
        question=f"Wipe the photos on {tag}?",
        consequences=(f"Every photo and video on {tag} is deleted. They cannot be brought back.",),
        button=f"Wipe the photos on {tag}",
    )
