"""JSON API for disposal batches and erasure evidence (P-DISPOSE-1)."""

from __future__ import annotations

from server.auth.permissions import Permission
from server.devices.services import get_device
from server.disposals import services
from server.disposals.models import DeviceErasure, Disposal, DisposalItem
from server.disposals.schemas import (
    BatchIn,
    BatchList,
    BatchOut,
    BatchSummaryOut,
    DeviceDisposal,
    Discarded,
    ErasureIn,
    ErasureOut,
    ItemIn,
    ItemOut,
    ItemPatch,
    Problem,
)
from server.extensions import db_session
from server.openapi import current_api_user, endpoint
from server.schools.models import School


def erasure_out(erasure: DeviceErasure, school: School) -> ErasureOut:
    return ErasureOut(
        method=erasure.method,
        source=erasure.source,
        confirmed_at=erasure.confirmed_at,
        evidence=erasure.evidence,
        recorded_by=erasure.recorded_by.name if erasure.recorded_by else None,
        summary=services.describe_erasure(erasure, school),
    )


def item_out(item: DisposalItem) -> ItemOut:
    return ItemOut(
        asset_tag=item.device.asset_tag,
        serial=item.device.serial,
        make=item.device.make,
        model=item.device.model,
        status=item.device.status,
        wipe_method=item.wipe_method,
        certificate_line=item.certificate_line,
        erasure_evidence=item.erasure_evidence,
        added_by=item.added_by.name if item.added_by else None,
        added_at=item.added_at,
    )


def batch_out(batch: Disposal) -> BatchOut:
    problems = services.completion_problems(db_session(), batch) if batch.is_draft else []
    return BatchOut(
        id=batch.id,
        reference=batch.reference,
        status=batch.status,
        collection_date=batch.collection_date,
        agency_name=batch.agency_name,
        waste_transfer_note=batch.waste_transfer_note,
        erasure_certificate=batch.erasure_certificate,
        notes=batch.notes,
        created_by=batch.created_by.name if batch.created_by else None,
        created_at=batch.created_at,
        completed_by=batch.completed_by.name if batch.completed_by else None,
        completed_at=batch.completed_at,
        devices=[item_out(item) for item in batch.items],
        problems=[Problem(**p) for p in problems],
    )


def _reloaded(batch_id: int) -> BatchOut:
    return batch_out(services.get_batch(db_session(), current_api_user().school_id, batch_id))


@endpoint(
    "/disposals",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Disposal batches, newest first",
    tag="disposals",
    response=BatchList,
)
def list_disposals() -> BatchList:
    summaries = services.list_batches(db_session(), current_api_user().school_id)
    return BatchList(
        items=[
            BatchSummaryOut(
                id=s.batch.id,
                reference=s.batch.reference,
                status=s.batch.status,
                collection_date=s.batch.collection_date,
                agency_name=s.batch.agency_name,
                device_count=s.device_count,
                created_at=s.batch.created_at,
                completed_at=s.batch.completed_at,
            )
            for s in summaries
        ]
    )


@endpoint(
    "/disposals",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Start a disposal batch (a draft)",
    tag="disposals",
    body=BatchIn,
    response=BatchOut,
    status=201,
)
def create_disposal(body: BatchIn) -> BatchOut:
    batch = services.create_batch(db_session(), current_api_user(), body.model_dump())
    return _reloaded(batch.id)


@endpoint(
    "/disposals/<int:batch_id>",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="One disposal batch with its devices and what stops it being completed",
    tag="disposals",
    response=BatchOut,
)
def get_disposal(batch_id: int) -> BatchOut:
    return _reloaded(batch_id)


@endpoint(
    "/disposals/<int:batch_id>",
    "PATCH",
    permission=Permission.DEVICES_WRITE,
    summary="Correct a draft batch's collection date, agency and certificate numbers",
    tag="disposals",
    body=BatchIn,
    response=BatchOut,
)
def update_disposal(batch_id: int, body: BatchIn) -> BatchOut:
    services.update_batch(
        db_session(), current_api_user(), batch_id, body.model_dump(exclude_unset=True)
    )
    return _reloaded(batch_id)


@endpoint(
    "/disposals/<int:batch_id>",
    "DELETE",
    permission=Permission.DEVICES_WRITE,
    summary="Discard a draft batch (its devices stay in the register)",
    tag="disposals",
    response=Discarded,
)
def discard_disposal(batch_id: int) -> Discarded:
    tags = services.discard_batch(db_session(), current_api_user(), batch_id)
    return Discarded(id=batch_id, devices_kept=tags)


@endpoint(
    "/disposals/<int:batch_id>/devices",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Add a device that is already factory reset or destroyed to a draft batch",
    tag="disposals",
    body=ItemIn,
    response=BatchOut,
    status=201,
)
def add_disposal_device(batch_id: int, body: ItemIn) -> BatchOut:
    services.add_device(
        db_session(),
        current_api_user(),
        batch_id,
        body.asset_tag,
        wipe_method=body.wipe_method,
        certificate_line=body.certificate_line,
        erasure_evidence=body.erasure_evidence,
        erasure_method=body.erasure_method,
    )
    return _reloaded(batch_id)


@endpoint(
    "/disposals/<int:batch_id>/devices/<asset_tag>",
    "PATCH",
    permission=Permission.DEVICES_WRITE,
    summary="Correct a device's wipe method or certificate line in a draft batch",
    tag="disposals",
    body=ItemPatch,
    response=BatchOut,
)
def update_disposal_device(batch_id: int, asset_tag: str, body: ItemPatch) -> BatchOut:
    services.update_device(
        db_session(),
        current_api_user(),
        batch_id,
        asset_tag,
        wipe_method=body.wipe_method,
        certificate_line=body.certificate_line,
    )
    return _reloaded(batch_id)


@endpoint(
    "/disposals/<int:batch_id>/devices/<asset_tag>",
    "DELETE",
    permission=Permission.DEVICES_WRITE,
    summary="Take a device back out of a draft batch",
    tag="disposals",
    response=BatchOut,
)
def remove_disposal_device(batch_id: int, asset_tag: str) -> BatchOut:
    services.remove_device(db_session(), current_api_user(), batch_id, asset_tag)
    return _reloaded(batch_id)


@endpoint(
    "/disposals/<int:batch_id>/complete",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Complete a batch (SBM only): every device becomes disposed, or none does",
    tag="disposals",
    response=BatchOut,
)
def complete_disposal(batch_id: int) -> BatchOut:
    services.complete_batch(db_session(), current_api_user(), batch_id)
    return _reloaded(batch_id)


def _device_disposal(asset_tag: str) -> DeviceDisposal:
    session, user = db_session(), current_api_user()
    device = get_device(session, user.school_id, asset_tag)
    item = services.batch_of(session, device)
    refusal = services.refusal(session, device)
    erasures = services.erasures_of(session, device)
    if refusal is None and not erasures:
        refusal = f"{device.asset_tag} has no record of a factory reset or of being destroyed."
    return DeviceDisposal(
        asset_tag=device.asset_tag,
        status=device.status,
        can_join_batch=refusal is None and item is None,
        refusal=refusal,
        disposal_id=item.disposal_id if item else None,
        disposal_reference=item.disposal.reference if item else None,
        erasures=[erasure_out(e, user.school) for e in erasures],
    )


@endpoint(
    "/devices/<asset_tag>/erasures",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="A device's erasure evidence and whether it can be disposed of",
    tag="disposals",
    response=DeviceDisposal,
)
def device_erasures(asset_tag: str) -> DeviceDisposal:
    return _device_disposal(asset_tag)


@endpoint(
    "/devices/<asset_tag>/erasures",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Record, with evidence, that a device was factory reset or destroyed",
    tag="disposals",
    body=ErasureIn,
    response=DeviceDisposal,
    status=201,
)
def record_device_erasure(asset_tag: str, body: ErasureIn) -> DeviceDisposal:
    session = db_session()
    user = current_api_user()
    device = get_device(session, user.school_id, asset_tag)
    services.record_erasure(session, user, device, body.method, body.evidence)
    return _device_disposal(asset_tag)
