"""JSON API for staff personal devices: the register (SBM and head), photo use, reports."""

from __future__ import annotations

from server.auth.permissions import Permission
from server.extensions import db_session
from server.openapi import current_api_user, endpoint
from server.personal_devices import services
from server.personal_devices.models import (
    PersonalDevice,
    PhotoAuthorisation,
    PhotoDayState,
    ReportKind,
)
from server.personal_devices.schemas import (
    AuthorisationIn,
    AuthorisationOut,
    ConfirmIn,
    DayList,
    DayOut,
    EntryIn,
    EntryList,
    EntryOut,
    EntryPatch,
    EntryQuery,
    RemoveIn,
    ReportIn,
    ReportOut,
    WithdrawIn,
)
from server.schools.services import local_today

# The service checks the role as well: a second guard for the most personal register.
PERMISSION = Permission.PERSONAL_DEVICES
WHO = " Only the school business manager and the headteacher see this register."


def entry_out(entry: PersonalDevice) -> EntryOut:
    return EntryOut(
        id=entry.id,
        owner=entry.owner_label,
        owner_id=entry.owner_id,
        make=entry.make,
        model=entry.model,
        serial=entry.serial,
        notes=entry.notes,
        noted_on=entry.noted_on,
        removed_on=entry.removed_on,
        removed_reason=entry.removed_reason,
        created_at=entry.created_at,
    )


@endpoint(
    "/personal-devices",
    "GET",
    permission=PERMISSION,
    summary="Staff members' own devices noted in school." + WHO,
    tag="personal devices",
    query=EntryQuery,
    response=EntryList,
)
def list_personal_devices(query: EntryQuery) -> EntryList:
    session, user = db_session(), current_api_user()
    entries = services.list_entries(session, user, include_removed=query.include_removed)
    counts = services.counts(session, user)
    return EntryList(
        current=counts.current, removed=counts.removed, items=[entry_out(e) for e in entries]
    )


@endpoint(
    "/personal-devices",
    "POST",
    permission=PERMISSION,
    summary="Note a member of staff's own device." + WHO,
    tag="personal devices",
    body=EntryIn,
    response=EntryOut,
    status=201,
)
def add_personal_device(body: EntryIn) -> EntryOut:
    return entry_out(services.add_entry(db_session(), current_api_user(), body.model_dump()))


@endpoint(
    "/personal-devices/<int:entry_id>",
    "GET",
    permission=PERMISSION,
    summary="One entry in the personal devices register." + WHO,
    tag="personal devices",
    response=EntryOut,
)
def get_personal_device(entry_id: int) -> EntryOut:
    return entry_out(services.get_entry(db_session(), current_api_user(), entry_id))


@endpoint(
    "/personal-devices/<int:entry_id>",
    "PATCH",
    permission=PERMISSION,
    summary="Correct an entry in the personal devices register." + WHO,
    tag="personal devices",
    body=EntryPatch,
    response=EntryOut,
)
def update_personal_device(entry_id: int, body: EntryPatch) -> EntryOut:
    return entry_out(
        services.update_entry(
            db_session(), current_api_user(), entry_id, body.model_dump(exclude_unset=True)
        )
    )


@endpoint(
    "/personal-devices/<int:entry_id>/remove",
    "POST",
    permission=PERMISSION,
    summary="Mark an entry removed (kept as history)." + WHO,
    tag="personal devices",
    body=RemoveIn,
    response=EntryOut,
)
def remove_personal_device(entry_id: int, body: RemoveIn) -> EntryOut:
    return entry_out(
        services.remove(db_session(), current_api_user(), entry_id, body.reason, on=body.removed_on)
    )


def authorisation_out(granted: PhotoAuthorisation) -> AuthorisationOut:
    return AuthorisationOut(
        id=granted.id,
        device_id=granted.device_id,
        starts_on=granted.starts_on,
        ends_on=granted.ends_on,
        last_day=granted.last_day,
        purpose=granted.purpose,
        granted_by=granted.granted_by.name if granted.granted_by else None,
        granted_at=granted.granted_at,
        withdrawn_on=granted.withdrawn_on,
        withdrawn_reason=granted.withdrawn_reason,
    )


@endpoint(
    "/personal-devices/<int:entry_id>/authorisations",
    "POST",
    permission=Permission.PHOTOS_AUTHORISE,
    summary="P-PHOTO-4: the headteacher authorises school photos on a staff device.",
    tag="personal devices",
    body=AuthorisationIn,
    response=AuthorisationOut,
    status=201,
)
def authorise_photos(entry_id: int, body: AuthorisationIn) -> AuthorisationOut:
    granted = services.authorise(
        db_session(),
        current_api_user(),
        entry_id,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
        purpose=body.purpose,
    )
    return authorisation_out(granted)


@endpoint(
    "/personal-devices/authorisations/<int:authorisation_id>/withdraw",
    "POST",
    permission=Permission.PHOTOS_AUTHORISE,
    summary="The headteacher withdraws photo use on a staff device, with a reason.",
    tag="personal devices",
    body=WithdrawIn,
    response=AuthorisationOut,
)
def withdraw_photos(authorisation_id: int, body: WithdrawIn) -> AuthorisationOut:
    return authorisation_out(
        services.withdraw(db_session(), current_api_user(), authorisation_id, body.reason)
    )


@endpoint(
    "/personal-devices/<int:entry_id>/photo-days",
    "GET",
    permission=PERMISSION,
    summary="Each authorised day of the last four weeks: confirmed, or not confirmed." + WHO,
    tag="personal devices",
    response=DayList,
)
def photo_days(entry_id: int) -> DayList:
    session = db_session()
    entry = services.get_entry(session, current_api_user(), entry_id)
    return DayList(
        items=[
            DayOut(
                day=line.day,
                state=line.state.value,
                confirmed_at=line.confirmed_at,
                late=line.late,
                owner_chased=line.owner_chased,
                head_chased=line.head_chased,
            )
            for line in services.record_of_days(session, entry)
        ]
    )


@endpoint(
    "/my-devices/<int:entry_id>/photo-days",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="The owner confirms a day's school photos were moved and deleted (or none taken).",
    tag="personal devices",
    body=ConfirmIn,
    response=DayOut,
    status=201,
)
def confirm_photos(entry_id: int, body: ConfirmIn) -> DayOut:
    user = current_api_user()
    line = services.confirm_day(
        db_session(), user, entry_id, PhotoDayState(body.state), day=body.day
    )
    assert line.confirmed_at is not None
    return DayOut(
        day=line.day,
        state=line.state.value,
        confirmed_at=line.confirmed_at,
        late=local_today(user.school, line.confirmed_at) > line.day,
        owner_chased=line.owner_chased_at is not None,
        head_chased=line.head_chased_at is not None,
    )


@endpoint(
    "/my-devices/<int:entry_id>/reports",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="P-LOSS-4: report a staff device lost, stolen or passed on; the head is told.",
    tag="personal devices",
    body=ReportIn,
    response=ReportOut,
    status=201,
)
def report_personal_device(entry_id: int, body: ReportIn) -> ReportOut:
    filed = services.report(
        db_session(),
        current_api_user(),
        entry_id,
        kind=ReportKind(body.kind),
        happened_on=body.happened_on,
        details=body.details,
    )
    return ReportOut(
        id=filed.id,
        device_id=filed.device_id,
        kind=filed.kind.value,
        happened_on=filed.happened_on,
        reported_at=filed.reported_at,
    )
