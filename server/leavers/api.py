"""JSON API for leaver cases: every step from opening to the closed record (P-LEAVE-1)."""

from __future__ import annotations

from flask import Response, current_app

from server.auth.models import User
from server.auth.permissions import Permission
from server.errors import NotFound
from server.extensions import db_session
from server.leavers import services
from server.leavers.models import LeaverCase
from server.leavers.schemas import (
    AddDeviceIn,
    CaseIn,
    CaseList,
    CaseOut,
    CaseQuery,
    CaseSummary,
    CredentialsIn,
    EventOut,
    EvidenceIn,
    ItemOut,
    LinkOut,
    MeetingIn,
    MeetingOut,
    PersonOut,
    RecordOut,
    ResetOut,
    ReturnIn,
    SignatureOut,
)
from server.openapi import current_api_user, endpoint

TAG = "leavers"
PERSONAL_HIDDEN = "Their own device in the staff personal devices register"


def _base_url() -> str:
    return str(current_app.extensions["trolley.settings"].base_url)


def _person(user: User | None) -> PersonOut | None:
    return PersonOut(id=user.id, name=user.name) if user is not None else None


def _summary(case: LeaverCase) -> CaseSummary:
    return CaseSummary(
        id=case.id,
        leaver_name=case.leaver_name,
        last_day=case.last_day,
        status=case.status,
        opened_at=case.opened_at,
        closed_at=case.closed_at,
    )


def _out(case: LeaverCase, link: str | None = None) -> CaseOut:
    viewer = current_api_user()
    state = services.case_state(db_session(), case)
    # The staff personal devices register is the SBM's and headteacher's (and the leaver's own).
    sees_personal = services.is_manager(viewer) or viewer.id == case.leaver_id
    meeting = None
    if case.meeting_starts_at and case.meeting_ends_at:
        meeting = MeetingOut(
            starts_at=case.meeting_starts_at,
            ends_at=case.meeting_ends_at,
            place=case.meeting_place or "",
            sequence=case.meeting_sequence,
        )
    return CaseOut(
        **_summary(case).model_dump(),
        leaver_id=case.leaver_id,
        leaver_email=case.leaver_email,
        line_manager=_person(case.line_manager),
        technician=_person(case.technician),
        opened_by=case.opened_by.name if case.opened_by else None,
        ready_at=case.ready_at,
        close_note=case.close_note,
        overdue=state.overdue,
        open_items=len(state.open_items),
        meeting=meeting,
        signatures=[
            SignatureOut(part=part, name=user.name if user else None, signed_at=at)
            for part, user, at in state.signatures()
        ],
        items=[
            ItemOut(
                id=s.item.id,
                kind=s.item.kind,
                asset_tag=s.item.device.asset_tag if s.item.device else None,
                description=s.item.description
                if s.item.is_device or sees_personal
                else PERSONAL_HIDDEN,
                source=s.item.source,
                route=s.item.route,
                handed_over=s.handed_over,
                credentials_at=s.item.credentials_at,
                returned_at=s.item.returned_at,
                reset_state=s.reset_words,
                reset_at=s.reset_at,
                reset_source=s.item.reset_source,
                reset_evidence=s.item.reset_evidence,
                command_id=s.command.id if s.command else None,
                command_status=s.command.status if s.command else None,
                removed_at=s.item.removed_at,
                done=s.done,
                next_step=s.next_step,
            )
            for s in state.items
        ],
        link=link,
    )


def _case(case_id: int) -> CaseOut:
    return _out(services.get_case(db_session(), current_api_user(), case_id))


@endpoint(
    "/leavers",
    "GET",
    permission=Permission.LEAVERS_MANAGE,
    summary="List leaver cases",
    tag=TAG,
    query=CaseQuery,
    response=CaseList,
)
def list_leaver_cases(query: CaseQuery) -> CaseList:
    cases = services.list_cases(db_session(), current_api_user(), status=query.status)
    return CaseList(cases=[_summary(c) for c in cases])


@endpoint(
    "/leavers",
    "POST",
    permission=Permission.LEAVERS_MANAGE,
    summary="Open a leaver case (someone holding nothing gets a closed case at once)",
    tag=TAG,
    body=CaseIn,
    response=CaseOut,
    status=201,
)
def open_leaver_case(body: CaseIn) -> CaseOut:
    opened = services.open_case(
        db_session(),
        current_api_user(),
        leaver_id=body.leaver_id,
        leaver_name=body.leaver_name,
        leaver_email=body.leaver_email,
        last_day=body.last_day,
        line_manager_id=body.line_manager_id,
        technician_id=body.technician_id,
        asset_tags=body.asset_tags,
        base_url=_base_url(),
    )
    return _out(opened.case, opened.link)


@endpoint(
    "/leavers/mine",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="My own leaver checklist",
    tag=TAG,
    response=CaseOut,
)
def my_leaver_checklist() -> CaseOut:
    case = services.my_case(db_session(), current_api_user())
    if case is None:
        raise NotFound("You have no leaver checklist.")
    return _out(case)


@endpoint(
    "/leavers/<int:case_id>",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="One leaver case (for managers and the people on it)",
    tag=TAG,
    response=CaseOut,
)
def get_leaver_case(case_id: int) -> CaseOut:
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/record",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="A leaver case's record: every step with its time",
    tag=TAG,
    response=RecordOut,
)
def leaver_case_record(case_id: int) -> RecordOut:
    case = services.get_case(db_session(), current_api_user(), case_id)
    return RecordOut(
        case=_out(case),
        events=[EventOut(at=e.at, who=e.actor_label, what=e.what) for e in case.events],
    )


@endpoint(
    "/leavers/<int:case_id>/devices",
    "POST",
    permission=Permission.LEAVERS_MANAGE,
    summary="Add a device the register did not know the leaver had",
    tag=TAG,
    body=AddDeviceIn,
    response=CaseOut,
    status=201,
)
def add_leaver_device(case_id: int, body: AddDeviceIn) -> CaseOut:
    services.add_device(db_session(), current_api_user(), case_id, body.asset_tag)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/refresh",
    "POST",
    permission=Permission.LEAVERS_MANAGE,
    summary="Look again at what the register, loans and personal register say they hold",
    tag=TAG,
    response=CaseOut,
)
def refresh_leaver_case(case_id: int) -> CaseOut:
    services.refresh(db_session(), current_api_user(), case_id)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/link",
    "POST",
    permission=Permission.LEAVERS_MANAGE,
    summary="A new personal link for a leaver without an account (shown once)",
    tag=TAG,
    response=LinkOut,
    status=201,
)
def new_leaver_link(case_id: int) -> LinkOut:
    case, url = services.issue_link(db_session(), current_api_user(), case_id, base_url=_base_url())
    assert case.link_expires_at is not None
    return LinkOut(url=url, expires_at=case.link_expires_at)


@endpoint(
    "/leavers/<int:case_id>/items/<int:item_id>/credentials",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="The leaver hands over a device's PIN and account details (kept in escrow)",
    tag=TAG,
    body=CredentialsIn,
    response=CaseOut,
)
def hand_over_leaver_credentials(case_id: int, item_id: int, body: CredentialsIn) -> CaseOut:
    services.hand_over_credentials(
        db_session(),
        current_app.extensions["trolley.box"],
        current_api_user(),
        case_id,
        item_id,
        passcode=body.passcode,
        account_email=body.account_email,
        account_password=body.account_password,
    )
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/items/<int:item_id>/meeting",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Reset this device at a meeting on the last day instead",
    tag=TAG,
    response=CaseOut,
)
def choose_leaver_meeting(case_id: int, item_id: int) -> CaseOut:
    services.choose_meeting(db_session(), current_api_user(), case_id, item_id)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/meeting",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Book or move the reset meeting (an .ics invitation is e-mailed)",
    tag=TAG,
    body=MeetingIn,
    response=CaseOut,
)
def book_leaver_meeting(case_id: int, body: MeetingIn) -> CaseOut:
    services.book_meeting(
        db_session(),
        current_api_user(),
        case_id,
        starts_at=body.starts_at,
        minutes=body.minutes,
        place=body.place,
    )
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/meeting",
    "DELETE",
    permission=Permission.ACCOUNT_USE,
    summary="Cancel the reset meeting (a calendar cancellation is e-mailed)",
    tag=TAG,
    response=CaseOut,
)
def cancel_leaver_meeting(case_id: int) -> CaseOut:
    services.cancel_meeting(db_session(), current_api_user(), case_id)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/meeting.ics",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="The reset meeting's calendar invitation",
    tag=TAG,
)
def leaver_meeting_invitation(case_id: int) -> Response:
    _case_row, text = services.meeting_invitation(db_session(), current_api_user(), case_id)
    return Response(
        text,
        mimetype="text/calendar",
        headers={"Content-Disposition": 'attachment; filename="reset-meeting.ics"'},
    )


@endpoint(
    "/leavers/<int:case_id>/returns",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Scan a device in: its return is complete",
    tag=TAG,
    body=ReturnIn,
    response=CaseOut,
)
def return_leaver_device(case_id: int, body: ReturnIn) -> CaseOut:
    services.return_device(
        db_session(), current_api_user(), case_id, body.code, base_url=_base_url()
    )
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/items/<int:item_id>/reset",
    "POST",
    permission=Permission.COMMANDS_SEND,
    summary="Ask for the device's factory reset (a second person approves it)",
    tag=TAG,
    response=ResetOut,
    status=201,
)
def reset_leaver_device(case_id: int, item_id: int) -> ResetOut:
    command = services.send_reset(db_session(), current_api_user(), case_id, item_id)
    return ResetOut(command_id=command.id, status=command.status, case=_case(case_id))


@endpoint(
    "/leavers/<int:case_id>/items/<int:item_id>/evidence",
    "POST",
    permission=Permission.DEVICES_ENROL,
    summary="Confirm a reset with evidence (a device without the kiosk client)",
    tag=TAG,
    body=EvidenceIn,
    response=CaseOut,
)
def confirm_leaver_reset(case_id: int, item_id: int, body: EvidenceIn) -> CaseOut:
    services.confirm_reset(db_session(), current_api_user(), case_id, item_id, body.evidence)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/items/<int:item_id>/remove",
    "POST",
    permission=Permission.LEAVERS_MANAGE,
    summary="Remove the leaver's own device from the staff personal devices register",
    tag=TAG,
    response=CaseOut,
)
def remove_leaver_personal_device(case_id: int, item_id: int) -> CaseOut:
    services.remove_personal_device(db_session(), current_api_user(), case_id, item_id)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/sign",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Sign off as the leaver, the line manager or the technician",
    tag=TAG,
    response=CaseOut,
)
def sign_leaver_case(case_id: int) -> CaseOut:
    services.sign(db_session(), current_api_user(), case_id)
    return _case(case_id)


@endpoint(
    "/leavers/<int:case_id>/close",
    "POST",
    permission=Permission.LEAVERS_MANAGE,
    summary="Close a case (never with open items or missing sign-offs)",
    tag=TAG,
    response=CaseOut,
)
def close_leaver_case(case_id: int) -> CaseOut:
    services.close_case(db_session(), current_api_user(), case_id)
    return _case(case_id)
