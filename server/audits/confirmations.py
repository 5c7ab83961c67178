"""What signing off an audit and raising its follow-ups will do, asked before either is done."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.audits import services
from server.schools.services.clock import plural
from server.web import Confirmation


def sign_off(session: Session, school_id: int, audit_id: int) -> Confirmation:
    """The figure that matters is how much was found: a changed figure asks again."""
    found = services.progress(session, school_id, audit_id, recent=0)
    missing = found.expected - found.found
    lines = []
    if missing:
        lines.append(
            f"{plural(missing, 'device')} of {found.expected} not found will be recorded "
            "as missing in the signed-off report."
        )
    lines += [
        "Scanning stops and the report is locked. This cannot be undone.",
        "The school business manager is asked to countersign it.",
    ]
    return Confirmation(
        question=f"Sign off the audit at {found.percent} % found?",
        consequences=tuple(lines),
        button=f"Sign off at {found.percent} % found",
    )


def follow_ups(session: Session, school_id: int, audit_id: int) -> Confirmation:
    """Every missing device becomes a loss report; every damaged one goes for repair."""
    totals = services.report(session, school_id, audit_id).totals
    figures = f"{totals.missing} missing, {totals.damaged} damaged"
    return Confirmation(
        question=f"Raise loss reports and repairs ({figures})?",
        consequences=(
            f"{plural(totals.missing, 'loss report')} will be opened, one for each missing "
            "device, and the headteacher is told at once. Loss reports cannot be deleted.",
            f"{plural(totals.damaged, 'device')} will be sent for repair and the technician "
            "is told.",
        ),
        button=f"Raise them ({figures})",
    )


def photo_wipe(session: Session, school_id: int, check_id: int) -> Confirmation:
    """A wipe for every device in the half-termly check that may still hold photos."""
    devices = plural(services.wipe_count(session, school_id, check_id), "device")
    return Confirmation(
        question=f"Wipe the photos on {devices}?",
        consequences=(
            f"Every photo and video on {devices} is deleted. They cannot be brought back.",
            "More than 10 devices at once waits for a second person to approve it.",
        ),
        button=f"Wipe photos on {devices}",
    )
