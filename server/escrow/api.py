"""JSON API for PIN escrow."""

from __future__ import annotations

from flask import current_app

from server.auth.permissions import Permission
from server.crypto import SecretBox
from server.devices.services import get_device
from server.escrow import services
from server.escrow.models import CredentialEscrow
from server.escrow.schemas import DepositIn, DestroyIn, EscrowList, EscrowOut, Revealed, RevealIn
from server.extensions import db_session
from server.openapi import current_api_user, endpoint


def _box() -> SecretBox:
    box: SecretBox = current_app.extensions["trolley.box"]
    return box


def escrow_out(entry: CredentialEscrow) -> EscrowOut:
    return EscrowOut(
        id=entry.id,
        asset_tag=entry.device.asset_tag,
        kind=entry.kind,
        label=entry.label,
        deposited_by=entry.deposited_by.name if entry.deposited_by else None,
        deposited_at=entry.deposited_at,
        last_read_at=entry.last_read_at,
        destroyed_at=entry.destroyed_at,
        destroyed_reason=entry.destroyed_reason,
    )


@endpoint(
    "/devices/<asset_tag>/escrow",
    "POST",
    permission=Permission.DEVICES_ENROL,
    summary="Hand over a device PIN or account details for safe keeping",
    tag="escrow",
    body=DepositIn,
    response=EscrowOut,
    status=201,
)
def deposit(asset_tag: str, body: DepositIn) -> EscrowOut:
    session = db_session()
    user = current_api_user()
    device = get_device(session, user.school_id, asset_tag)
    return escrow_out(
        services.deposit(session, _box(), user, device, body.kind, body.secret, label=body.label)
    )


@endpoint(
    "/devices/<asset_tag>/escrow",
    "GET",
    permission=Permission.DEVICES_ENROL,
    summary="What is escrowed for a device (never the secrets)",
    tag="escrow",
    response=EscrowList,
)
def list_for_device(asset_tag: str) -> EscrowList:
    session = db_session()
    device = get_device(session, current_api_user().school_id, asset_tag)
    return EscrowList(items=[escrow_out(e) for e in services.history_for_device(session, device)])


@endpoint(
    "/escrow/<int:escrow_id>/reveal",
    "POST",
    permission=Permission.ESCROW_READ,
    summary="Read an escrowed secret (technicians; every read is logged)",
    tag="escrow",
    body=RevealIn,
    response=Revealed,
)
def reveal(escrow_id: int, body: RevealIn) -> Revealed:
    entry, secret = services.reveal(
        db_session(), _box(), current_api_user(), escrow_id, reason=body.reason
    )
    return Revealed(**escrow_out(entry).model_dump(), secret=secret)


@endpoint(
    "/escrow/<int:escrow_id>/destroy",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Destroy the escrowed secret of a disposed device (the record that it existed stays)",
    tag="escrow",
    body=DestroyIn,
    response=EscrowOut,
)
def destroy(escrow_id: int, body: DestroyIn) -> EscrowOut:
    return escrow_out(
        services.destroy_by_id(db_session(), current_api_user(), escrow_id, body.reason)
    )
