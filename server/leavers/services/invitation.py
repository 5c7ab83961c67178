"""The reset meeting's calendar invitation, for everyone's diary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.orm import Session

from server.db import utcnow
from server.errors import NotFound
from server.leavers.models import LeaverCase
from server.leavers.services.cases import _case_for
from server.leavers.services.common import Who
from server.notifications.services import Attachment, notify
from server.schools.services.clock import when

Method = Literal["REQUEST", "CANCEL"]


def _ics_text(value: str) -> str:
    """RFC 5545 TEXT: escape backslashes, semicolons, commas and line breaks."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _ics_name(value: str) -> str:
    """A quoted CN parameter (no double quotes or control characters allowed inside)."""
    return '"' + "".join(ch for ch in value if ch != '"' and ch.isprintable()) + '"'


def _fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character."""
    out: list[str] = []
    current = b""
    for ch in line:
        encoded = ch.encode()
        limit = 75 if not out else 74  # continuation lines start with one space
        if len(current) + len(encoded) > limit:
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def meeting_uid(case: LeaverCase) -> str:
    """The invitation's UID: random once per case, so no two installations ever share one."""
    if case.meeting_uid is None:
        case.meeting_uid = str(uuid.uuid4())
    return f"{case.meeting_uid}@trolley"


def meeting_ics(
    case: LeaverCase,
    now: datetime | None = None,
    method: Method = "REQUEST",
    *,
    for_email: bool = False,
) -> str:
    """The reset meeting as an iTIP REQUEST or CANCEL (RFC 5546; UTC times, CRLF endings);
    `for_email` gives only its time and case number, since names and the place stay in Trolley
    (P-SEC-5)."""
    if case.meeting_starts_at is None or case.meeting_ends_at is None:
        raise NotFound("No reset meeting has been booked for this case yet.")
    now = now or utcnow()
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Trolley//Leaver reset meeting//EN",
        "CALSCALE:GREGORIAN",
        # iTIP needs an organiser and attendees, which e-mail may not carry: an e-mailed copy is
        # a published calendar entry, updated or withdrawn by the same UID and a higher SEQUENCE.
        f"METHOD:{'PUBLISH' if for_email else method}",
        "BEGIN:VEVENT",
        f"UID:{meeting_uid(case)}",
        f"DTSTAMP:{_stamp(now)}",
        f"DTSTART:{_stamp(case.meeting_starts_at)}",
        f"DTEND:{_stamp(case.meeting_ends_at)}",
        f"SEQUENCE:{case.meeting_sequence}",
    ]
    if for_email:
        lines += [
            f"SUMMARY:Device reset meeting (leaver case {case.id})",
            "DESCRIPTION:" + _ics_text("Where, who and which devices: see the case in Trolley."),
        ]
    else:
        lines += _people_and_place(case)
    lines += [
        "STATUS:CONFIRMED" if method == "REQUEST" else "STATUS:CANCELLED",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(_fold(line) + "\r\n" for line in lines)


def _people_and_place(case: LeaverCase) -> list[str]:
    organiser = case.meeting_booked_by or case.technician or case.line_manager
    devices = ", ".join(i.device.asset_tag for i in case.items if i.device is not None)
    lines = [
        f"SUMMARY:{_ics_text(f'Device reset meeting: {case.leaver_name}')}",
        f"LOCATION:{_ics_text(case.meeting_place or '')}",
        "DESCRIPTION:"
        + _ics_text(
            f"{case.leaver_name} signs out of their school devices ({devices}) so the "
            "technician can factory reset them, with their line manager present."
        ),
    ]
    if organiser is not None:
        lines.append(f"ORGANIZER;CN={_ics_name(organiser.name)}:mailto:{organiser.email}")
    people = [(case.leaver_name, case.leaver_email)] + [
        (u.name, u.email) for u in (case.line_manager, case.technician) if u is not None
    ]
    for name, email in people:
        lines.append(
            f"ATTENDEE;CN={_ics_name(name)};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;"
            f"RSVP=TRUE:mailto:{email}"
        )
    return lines


def send_cancellation(session: Session, case: LeaverCase, now: datetime, why: str) -> None:
    """Take the meeting out of everyone's calendar: the same UID, a higher SEQUENCE, CANCEL."""
    if case.meeting_starts_at is None:
        return
    case.meeting_sequence += 1
    cancellation = Attachment(
        "reset-meeting-cancelled.ics",
        "text/calendar; method=PUBLISH; charset=utf-8",
        meeting_ics(case, now, "CANCEL", for_email=True).encode(),
    )
    people = [u for u in (case.leaver, case.line_manager, case.technician) if u is not None]
    notify(
        session,
        school_id=case.school_id,
        users=people,
        kind="leaver_meeting",
        title=f"Cancelled: device reset meeting, {case.leaver_name}",
        body=f"The meeting to reset {case.leaver_name}'s school devices at "
        f"{when(case.meeting_starts_at, case.school)} is cancelled: {why}. The attached "
        "cancellation removes it from your calendar.",
        link=f"/leavers/{case.id}",
        case_id=case.id,
        at=case.meeting_starts_at,
        attachments=(cancellation,),
    )


def meeting_invitation(session: Session, who: Who, case_id: int) -> tuple[LeaverCase, str]:
    """The reset meeting's invitation, for anyone who may see the case."""
    case = _case_for(session, who, case_id)
    if case.meeting_uid is None and case.meeting_starts_at is not None:
        meeting_uid(case)  # booked before UIDs were kept: keep this one from now on
        session.commit()
    return case, meeting_ics(case)
