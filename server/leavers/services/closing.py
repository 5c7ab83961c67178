"""Signing off and closing a leaver case: the leaver, the line manager and the technician."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.errors import Conflict, Forbidden
from server.leavers.models import CaseStatus, LeaverCase, Signer
from server.leavers.services.account import end_leaver_account
from server.leavers.services.cases import _leaver_case, _managed_case, get_case, roles_on
from server.leavers.services.common import LinkAccess, Who, _event, _names, _open, _trail
from server.leavers.services.invitation import send_cancellation
from server.leavers.services.state import _note_resets, case_state
from server.schools.services.clock import when


def sign(session: Session, who: Who, case_id: int, *, now: datetime | None = None) -> LeaverCase:
    """The leaver, the line manager or the technician confirms; the last one closes the case."""
    now = now or utcnow()
    if isinstance(who, LinkAccess):
        case, part = _leaver_case(session, who, case_id), Signer.LEAVER
    else:
        case = get_case(session, who, case_id)
        parts = roles_on(case, who)
        if not parts:
            raise Forbidden("Only the leaver, their line manager and the technician sign off.")
        (part,) = parts
    _open(case)
    _note_resets(session, case, now)
    state = case_state(session, case, now=now)
    signed = {signer: at for signer, _user, at in state.signatures()}[part]
    if signed is not None:
        raise Conflict(
            f"You signed this off at {when(signed, case.school)}.", code="already_signed"
        )
    if part is Signer.LEAVER:
        if state.leaver_to_do:
            raise Conflict(
                "Not yet: first give back and say how to reset "
                f"{_names(s.item for s in state.leaver_to_do)}.",
                code="open_items",
            )
        case.leaver_signed_at = now
        case.leaver_signed_via = "link" if isinstance(who, LinkAccess) else "account"
    else:
        if state.open_items:
            raise Conflict(
                f"Not yet: still open: {_names(s.item for s in state.open_items)}.",
                code="open_items",
            )
        if part is Signer.LINE_MANAGER:
            case.line_manager_signed_at = now
        else:
            case.technician_signed_at = now
    _event(session, case, who, f"Signed off as {part.label.lower()}", now)
    _trail(session, case, who, "signed", now, part=part.value)
    if (
        state.ready
        and case.leaver_signed_at
        and case.line_manager_signed_at
        and case.technician_signed_at
    ):
        _close(session, case, None, now, note="Closed when the last of the three signed off.")
    session.commit()
    return case


def close_case(
    session: Session, actor: User, case_id: int, *, now: datetime | None = None
) -> LeaverCase:
    """Close a case by hand: only with nothing open and all three sign-offs."""
    now = now or utcnow()
    case = _managed_case(session, actor, case_id)
    _note_resets(session, case, now)
    state = case_state(session, case, now=now)
    if state.open_items:
        session.commit()  # keep any resets just noted
        raise Conflict(
            f"The case cannot close with open items: {_names(s.item for s in state.open_items)}.",
            code="open_items",
        )
    missing = [part.label.lower() for part, _user, at in state.signatures() if at is None]
    if missing:
        session.commit()
        raise Conflict(
            f"The case cannot close until these sign off: {', '.join(missing)}.",
            code="sign_off_missing",
        )
    _close(session, case, actor, now, note=f"Closed by {actor.name}.")
    session.commit()
    return case


def _close(
    session: Session, case: LeaverCase, actor: User | None, now: datetime, *, note: str
) -> None:
    case.status = CaseStatus.CLOSED
    case.closed_at = now
    case.closed_by_id = actor.id if actor else None
    case.close_note = note[:500]
    case.link_token_hash = None  # the personal link stops working
    case.link_expires_at = None
    for item in case.items:
        item.settled_at = now
    if case.meeting_ends_at is not None and case.meeting_ends_at > now:
        send_cancellation(session, case, now, "the case is closed")
    _event(session, case, actor, f"Case closed. {note}", now)
    _trail(session, case, actor, "closed", now, note=note[:500])
    # In the sign-off's own transaction: the case never closes with the log-in left behind.
    end_leaver_account(session, case, now)
