"""JSON API for device commands."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from server.auth.permissions import Permission
from server.auth.services import confirm_code
from server.commands import services
from server.commands.models import Command, FleetFreeze
from server.commands.schemas import (
    ApproveIn,
    CommandIn,
    CommandList,
    CommandOut,
    CommandQuery,
    FleetCommandIn,
    FreezeIn,
    FreezeOut,
)
from server.crypto import SecretBox
from server.devices.services import get_device, search_devices
from server.errors import ValidationFailed
from server.extensions import db_session
from server.openapi import current_api_login, current_api_user, endpoint
from server.web import clock


def command_out(command: Command) -> CommandOut:
    return CommandOut(
        id=command.id,
        cmd_id=command.cmd_id,
        batch_id=command.batch_id,
        asset_tag=command.device.asset_tag,
        type=command.type,
        args=command.args,
        reason=command.reason,
        status=command.status,
        requested_by=command.requested_by.name if command.requested_by else None,
        approved_by=command.approved_by.name if command.approved_by else None,
        created_at=command.created_at,
        approved_at=command.approved_at,
        sent_at=command.sent_at,
        received_at=command.received_at,
        finished_at=command.finished_at,
        expires_at=command.expires_at,
        attempts=command.attempts,
        detail=command.detail,
        result=command.result,
    )


def _staff_type(command_type: str) -> str:
    if command_type not in services.STAFF_SENDABLE:
        raise ValidationFailed(
            f"{command_type!r} cannot be sent by hand; use one of "
            f"{', '.join(sorted(services.STAFF_SENDABLE))}."
        )
    return command_type


@endpoint(
    "/devices/<asset_tag>/commands",
    "POST",
    permission=Permission.COMMANDS_SEND,
    summary="Send a command to a device",
    tag="commands",
    body=CommandIn,
    response=CommandOut,
    status=202,
)
def send(asset_tag: str, body: CommandIn) -> CommandOut:
    session = db_session()
    user = current_api_user()
    device = get_device(session, user.school_id, asset_tag)
    (command,) = services.issue(
        session, user, [device], _staff_type(body.type), body.args, reason=body.reason
    )
    return command_out(command)


@endpoint(
    "/commands/fleet",
    "POST",
    permission=Permission.COMMANDS_SEND,
    summary="Send one command to many devices (destructive ones answer to the school's budget)",
    tag="commands",
    body=FleetCommandIn,
    response=CommandList,
    status=202,
)
def send_fleet(body: FleetCommandIn) -> CommandList:
    session = db_session()
    user = current_api_user()
    if (body.asset_tags is None) == (body.location_id is None):
        raise ValidationFailed("Give either asset_tags or location_id.")
    if body.asset_tags is not None:
        devices = [
            get_device(session, user.school_id, tag) for tag in dict.fromkeys(body.asset_tags)
        ]
    else:
        devices = list(
            search_devices(
                session, user.school_id, home_location_id=body.location_id, per_page=10_000
            ).items
        )
    commands = services.issue(
        session, user, devices, _staff_type(body.type), body.args, reason=body.reason
    )
    return CommandList(items=[command_out(c) for c in commands])


@endpoint(
    "/commands/<int:command_id>",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="One command and how far it got",
    tag="commands",
    response=CommandOut,
)
def get_command(command_id: int) -> CommandOut:
    return command_out(services.get_command(db_session(), current_api_user().school_id, command_id))


@endpoint(
    "/commands",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Commands, newest first",
    tag="commands",
    query=CommandQuery,
    response=CommandList,
)
def list_commands(query: CommandQuery) -> CommandList:
    session = db_session()
    user = current_api_user()
    device_id = get_device(session, user.school_id, query.asset_tag).id if query.asset_tag else None
    commands = services.list_commands(
        session,
        user.school_id,
        status=query.status,
        command_type=query.type,
        device_id=device_id,
        batch_id=query.batch_id,
        limit=query.limit,
        offset=query.offset,
    )
    return CommandList(items=[command_out(c) for c in commands])


def _stepped_up(body: ApproveIn) -> datetime | None:
    """When the approver last proved their second factor: a code sent with the request (the only
    way with a token, which never saw one), else the browser session's own recent check."""
    if body.code is not None:
        box: SecretBox = current_app.extensions["trolley.box"]
        return confirm_code(db_session(), box, current_api_user(), body.code, now=clock())
    login = current_api_login()
    return login.stepped_up_at if login is not None else None


@endpoint(
    "/commands/<int:command_id>/approve",
    "POST",
    permission=Permission.COMMANDS_APPROVE,
    summary="Approve a destructive command (a second person, with a fresh code)",
    tag="commands",
    body=ApproveIn,
    response=CommandList,
)
def approve(command_id: int, body: ApproveIn) -> CommandList:
    session, user = db_session(), current_api_user()
    ids = services.approve(session, user, stepped_up_at=_stepped_up(body), command_id=command_id)
    return CommandList(
        items=[command_out(c) for c in services.commands_by_id(session, user.school_id, ids)]
    )


@endpoint(
    "/commands/batches/<batch_id>/approve",
    "POST",
    permission=Permission.COMMANDS_APPROVE,
    summary="Approve a whole batch (a second person, with a fresh code)",
    tag="commands",
    body=ApproveIn,
    response=CommandList,
)
def approve_batch(batch_id: str, body: ApproveIn) -> CommandList:
    session, user = db_session(), current_api_user()
    ids = services.approve(session, user, stepped_up_at=_stepped_up(body), batch_id=batch_id)
    return CommandList(
        items=[command_out(c) for c in services.commands_by_id(session, user.school_id, ids)]
    )


@endpoint(
    "/commands/<int:command_id>/cancel",
    "POST",
    permission=Permission.COMMANDS_SEND,
    summary="Cancel a command that has not been sent",
    tag="commands",
    response=CommandOut,
)
def cancel(command_id: int) -> CommandOut:
    return command_out(services.cancel(db_session(), current_api_user(), command_id))


def freeze_out(found: FleetFreeze | None) -> FreezeOut:
    if found is None:
        return FreezeOut(state="none")
    return FreezeOut(
        state=found.state.value,
        reason=found.reason,
        asked_by=found.asked_by.name if found.asked_by else None,
        asked_at=found.asked_at,
        frozen_by=found.frozen_by.name if found.frozen_by else None,
        frozen_at=found.frozen_at,
        lift_asked_by=found.lift_asked_by.name if found.lift_asked_by else None,
        lift_asked_at=found.lift_asked_at,
        lifted_by=found.lifted_by.name if found.lifted_by else None,
        lifted_at=found.lifted_at,
    )


@endpoint(
    "/commands/freeze",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Whether destructive commands are frozen for the school",
    tag="commands",
    response=FreezeOut,
)
def fleet_freeze() -> FreezeOut:
    return freeze_out(services.current_freeze(db_session(), current_api_user().school_id))


@endpoint(
    "/commands/freeze",
    "POST",
    permission=Permission.COMMANDS_FREEZE,
    summary="Freeze every destructive command (the headteacher, or two administrators)",
    tag="commands",
    body=FreezeIn,
    response=FreezeOut,
)
def freeze_fleet(body: FreezeIn) -> FreezeOut:
    return freeze_out(services.freeze(db_session(), current_api_user(), reason=body.reason))


@endpoint(
    "/commands/freeze/lift",
    "POST",
    permission=Permission.COMMANDS_FREEZE,
    summary="Ask for, or confirm, lifting the freeze (the headteacher and one more person)",
    tag="commands",
    response=FreezeOut,
)
def lift_fleet_freeze() -> FreezeOut:
    return freeze_out(services.lift_freeze(db_session(), current_api_user()))
