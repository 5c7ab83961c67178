"""What each kind of entry on a device's timeline is called on its page."""

from __future__ import annotations

EVENT_LABELS = {
    "audit": "Termly audit",
    "command": "Command",
    "created": "Added",
    "damage_report": "Damage reported",
    "device_found": "Found",
    "disposal": "Disposal",
    "edited": "Details changed",
    "enrolled": "Enrolled",
    "erasure": "Erased",
    "escrow": "Passcode kept",
    "google": "Google",
    "home_loan_decision": "Home loan decided",
    "home_loan_request": "Home loan asked for",
    "leaver_reset": "Reset for a leaver",
    "leaver_return": "Given back by a leaver",
    "loan_out": "Taken out",
    "loan_return": "Put back",
    "loan_transfer": "Handed over",
    "loan_undo": "Scan undone",
    "location_change": "Move asked for",
    "lost_mode": "Lost mode",
    "move_declined": "Move declined",
    "move_requested": "Move asked for",
    "moved": "Moved",
    "off_site": "Off site",
    "online_again": "Online again",
    "photo_check": "Photo check",
    "photo_wipe": "Photo wipe",
    "possible_loss": "May be lost",
    "profile": "Profile",
    "report": "Report",
    "scan": "Scanned",
    "scanned": "Scanned",
    "seen_online": "Seen online",
    "spot_check": "Spot check",
    "status": "Status",
    "status_kept": "Status kept",
    "wrong_trolley": "Wrong trolley",
}


def event_label(kind: str) -> str:
    """A timeline entry's kind in words; an unlisted one is spelled out, never shown as code."""
    return EVENT_LABELS.get(kind) or kind.replace("_", " ").replace(".", " ").capitalize()
