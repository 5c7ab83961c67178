"""JSON API for the staff personal devices register (P-REG-6): SBM and headteacher only."""

from __future__ import annotations

from server.auth.permissions import Permission
from server.extensions import db_session
from server.openapi import current_api_user, endpoint
from server.personal_devices import services
from server.personal_devices.models import PersonalDevice
from server.personal_devices.schemas import (
    EntryIn,
    EntryList,
    EntryOut,
    EntryPatch,
    EntryQuery,
    RemoveIn,
)

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
