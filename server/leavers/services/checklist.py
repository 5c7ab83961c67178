"""The leaver's checklist: hand over the PIN and account details, or book the reset meeting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from server.crypto import SecretBox
from server.db import utcnow
from server.devices.models import Platform
from server.errors import Conflict, Forbidden, ValidationFailed
from server.escrow import services as escrow
from server.escrow.models import SecretKind
from server.leavers.models import HandoverRoute, LeaverCase, LeaverItem, Signer
from server.leavers.services.cases import _case_for, _leaver_case, roles_on
from server.leavers.services.common import (
    MEETING_MINUTES,
    LinkAccess,
    Who,
    _event,
    _item,
    _open,
    _short,
    _stand_in,
    _trail,
    _user_or_none,
    is_manager,
)
from server.leavers.services.invitation import meeting_ics, send_cancellation
from server.leavers.services.state import _state_of
from server.notifications.services import Attachment, notify
from server.schools.services.clock import day_text, from_local, local, when

# The kind of account a device is signed in with, by its platform.
ACCOUNT_KINDS = {Platform.IPADOS: SecretKind.APPLE_ID, Platform.CHROMEOS: SecretKind.GOOGLE_ACCOUNT}


def hand_over_credentials(
    session: Session,
    box: SecretBox,
    who: Who,
    case_id: int,
    item_id: int,
    *,
    passcode: str = "",
    account_email: str = "",
    account_password: str = "",
    now: datetime | None = None,
) -> LeaverItem:
    """Route (a): the leaver's PIN and account details go into escrow, sealed (P-LEAVE-2)."""
    now = now or utcnow()
    case = _leaver_case(session, who, case_id)
    _open(case)
    state = _state_of(session, case, item_id, now)
    item, device = state.item, state.item.device
    assert device is not None
    if state.reset_done:
        raise Conflict(
            f"{device.asset_tag} has already been reset, so there is nothing to hand over.",
            code="already_reset",
        )
    account_email = account_email.strip()
    problems = []
    if account_email and not account_password:
        problems.append({"field": "account_password", "message": "Enter the account's password."})
    if account_password and not account_email:
        problems.append({"field": "account_email", "message": "Enter the account's e-mail."})
    if not passcode.strip() and not account_email and not account_password:
        problems.append(
            {"field": "passcode", "message": "Enter the passcode, or the account details."}
        )
    if problems:
        raise ValidationFailed(
            "Enter the device's passcode or PIN, and the account it is signed in with if any.",
            details=problems,
        )
    actor = _stand_in(case) if isinstance(who, LinkAccess) else who
    sealed: list[tuple[SecretKind, str, str]] = []
    if passcode.strip():
        sealed.append(
            (SecretKind.PASSCODE, passcode.strip(), "Screen passcode or PIN, from the leaver")
        )
    if account_email:
        sealed.append(
            (
                ACCOUNT_KINDS.get(device.platform, SecretKind.OTHER),
                f"{account_email}\n{account_password}",
                "Account e-mail and password, from the leaver",
            )
        )
    kept = [
        escrow.deposit(session, box, actor, device, kind, secret, label=label, commit=False)
        for kind, secret, label in sealed
    ]
    item.route = HandoverRoute.CREDENTIALS
    item.credentials_at = now
    item.escrow_ids = [*item.escrow_ids, *(entry.id for entry in kept)]
    _event(
        session, case, who, f"{device.asset_tag}: PIN and account details handed over safely", now
    )
    _trail(
        session,
        case,
        who,
        "credentials_handed_over",
        now,
        item=item.id,
        device=device.asset_tag,
        kinds=[entry.kind.value for entry in kept],
    )
    session.commit()
    return item


def choose_meeting(
    session: Session, who: Who, case_id: int, item_id: int, *, now: datetime | None = None
) -> LeaverItem:
    """Route (b) for one device: it is reset at a meeting on the last day."""
    now = now or utcnow()
    case = _case_for(session, who, case_id)
    if not isinstance(who, LinkAccess) and not (
        is_manager(who) or Signer.LEAVER in roles_on(case, who)
    ):
        raise Forbidden("The leaver chooses how their devices are reset.")
    _open(case)
    item = _item(case, item_id)
    item.route = HandoverRoute.MEETING
    _event(session, case, who, f"{_short(item)}: to be reset at a meeting on the last day", now)
    _trail(session, case, who, "meeting_chosen", now, item=item.id)
    session.commit()
    return item


def book_meeting(
    session: Session,
    who: Who,
    case_id: int,
    *,
    starts_at: datetime,
    minutes: int,
    place: str,
    now: datetime | None = None,
) -> LeaverCase:
    """Book (or move) the reset meeting on the last day; everyone gets an invitation."""
    now = now or utcnow()
    case = _case_for(session, who, case_id)
    _open(case)
    school = case.school
    # A time without a zone was typed on the school's clocks.
    starts_at = (
        from_local(starts_at, school) if starts_at.tzinfo is None else starts_at.astimezone(UTC)
    )
    place = " ".join(place.split())
    problems = []
    if local(starts_at, school).date() != case.last_day:
        problems.append(
            {
                "field": "starts_at",
                "message": f"The meeting is on the last day, {day_text(case.last_day, long=True)}.",
            }
        )
    elif starts_at <= now:
        problems.append({"field": "starts_at", "message": "That time has already passed."})
    if not MEETING_MINUTES[0] <= minutes <= MEETING_MINUTES[1]:
        problems.append(
            {
                "field": "minutes",
                "message": f"Between {MEETING_MINUTES[0]} and {MEETING_MINUTES[1]} minutes.",
            }
        )
    if not place or len(place) > 200:
        problems.append({"field": "place", "message": "Say where to meet, e.g. the IT office."})
    if problems:
        raise ValidationFailed(
            "The meeting needs a time on the last day and a place.", details=problems
        )
    moved = case.meeting_starts_at is not None
    case.meeting_starts_at = starts_at
    case.meeting_ends_at = starts_at + timedelta(minutes=minutes)
    case.meeting_place = place
    case.meeting_sequence = case.meeting_sequence + 1 if moved else 0
    actor = _user_or_none(who)
    case.meeting_booked_by_id = actor.id if actor else None
    case.meeting_booked_by = actor
    for item in case.items:
        if item.is_device and item.route is None:
            item.route = HandoverRoute.MEETING
    what = (
        f"Reset meeting {'moved to' if moved else 'booked for'} {when(starts_at, school)}, {place}"
    )
    _event(session, case, who, what, now)
    _trail(session, case, who, "meeting_booked", now, starts_at=starts_at.isoformat(), place=place)
    # The e-mailed invitation gives the time only; the full one is on the case page.
    invitation = Attachment(
        "reset-meeting.ics",
        "text/calendar; method=PUBLISH; charset=utf-8",
        meeting_ics(case, now, for_email=True).encode(),
    )
    people = [u for u in (case.leaver, case.line_manager, case.technician) if u is not None]
    notify(
        session,
        school_id=case.school_id,
        users=people,
        kind="leaver_meeting",
        title=f"Device reset meeting: {case.leaver_name}, {when(starts_at, school)}",
        body=f"A meeting to reset {case.leaver_name}'s school devices, with their line manager "
        f"and the technician, at {when(starts_at, school)} in {place}. The invitation is attached.",
        link=f"/leavers/{case.id}",
        case_id=case.id,
        at=starts_at,
        attachments=(invitation,),
    )
    session.commit()
    return case


def cancel_meeting(
    session: Session, who: Who, case_id: int, *, now: datetime | None = None
) -> LeaverCase:
    """Call off the reset meeting; everyone's calendar entry is cancelled."""
    now = now or utcnow()
    case = _case_for(session, who, case_id)
    _open(case)
    if case.meeting_starts_at is None:
        raise Conflict("No reset meeting is booked for this case.")
    send_cancellation(session, case, now, "it was called off")
    case.meeting_starts_at = case.meeting_ends_at = None
    case.meeting_place = None
    for item in case.items:
        if item.route is HandoverRoute.MEETING:
            item.route = None  # each device needs a way to be handed over again
    _event(session, case, who, "Reset meeting cancelled", now)
    _trail(session, case, who, "meeting_cancelled", now)
    session.commit()
    return case
