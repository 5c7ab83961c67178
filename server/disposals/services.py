"""Disposal through an authorised agency, resting on recorded erasure evidence (P-DISPOSE-1).

A device joins a draft batch only when its storage is known to be erased: a factory reset the
device itself acknowledged (`mark_reset_confirmed`, called by the command engine), or a reset or
destruction a technician vouches for with evidence (`record_erasure`). Completing a batch is the
SBM's: every device becomes `disposed` in one transaction, or none does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from server.activity.services import record
from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.devices.services import (
    TRANSITIONS,
    add_event,
    change_status,
    get_device,
    mark_erased,
)
from server.disposals.models import (
    DeviceErasure,
    Disposal,
    DisposalItem,
    DisposalStatus,
    ErasureMethod,
    ErasureSource,
    WipeMethod,
)
from server.enrolment.models import DeviceIdentity
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.licences.services import forget_installed_apps
from server.loans.models import LoanItem
from server.schools.models import School
from server.schools.services import day, when

log = logging.getLogger(__name__)

# The DeviceEvent kind the losses work writes when a lost or stolen device is written off.
WRITTEN_OFF = "written_off"
BATCH_FIELDS = frozenset(
    {"collection_date", "agency_name", "waste_transfer_note", "erasure_certificate", "notes"}
)
# What a completed batch must say before it can become a disposal record.
REQUIRED_TO_COMPLETE = {
    "collection_date": "Enter the date the agency collected the devices.",
    "agency_name": "Enter the name of the authorised agency.",
    "waste_transfer_note": "Enter the WEEE waste transfer note number.",
    "erasure_certificate": "Enter the data-erasure certificate number.",
}


# --- erasure evidence ---------------------------------------------------------------------


def describe_erasure(erasure: DeviceErasure, school: School) -> str:
    """One line for the disposal record: what was done, who vouches for it, and when."""
    at = when(erasure.confirmed_at, school)
    if erasure.source is ErasureSource.DEVICE_ACKNOWLEDGEMENT:
        return f"{erasure.method.label} confirmed by the device at {at}"
    who = erasure.recorded_by.name if erasure.recorded_by else "a technician"
    return f"{erasure.method.label}, recorded by {who} at {at}: {erasure.evidence or ''}".strip()


def _erasure_source(source: ErasureSource | str) -> ErasureSource:
    """Accept the enum, its value, or its words ('device acknowledgement')."""
    for member in ErasureSource:
        if source in (member, member.value, member.label):
            return member
    raise ValueError(f"unknown erasure source {source!r}")


def _erased(session: Session, device: Device, at: datetime) -> None:
    """Whoever vouches for it, an erased device's storage is gone: what it reported no longer
    describes it, and it holds no licence seat until it reports its apps again."""
    mark_erased(device, at)
    forget_installed_apps(session, device)


def mark_reset_confirmed(
    session: Session,
    device: Device,
    at: datetime,
    source: ErasureSource | str = ErasureSource.DEVICE_ACKNOWLEDGEMENT,
) -> DeviceErasure:
    """Record that a device acknowledged its factory reset (joins the caller's transaction).

    Called when a `factory_reset` command is acknowledged; a redelivered acknowledgement finds
    the same record rather than adding another.
    """
    source = _erasure_source(source)
    existing = session.scalar(
        select(DeviceErasure).where(
            DeviceErasure.device_id == device.id,
            DeviceErasure.method == ErasureMethod.FACTORY_RESET,
            DeviceErasure.confirmed_at == at,
        )
    )
    if existing is not None:
        return existing
    _erased(session, device, at)
    erasure = DeviceErasure(
        school_id=device.school_id,
        device_id=device.id,
        method=ErasureMethod.FACTORY_RESET,
        source=source,
        confirmed_at=at,
    )
    session.add(erasure)
    session.flush()
    add_event(
        session,
        device,
        kind="erasure",
        summary="Factory reset confirmed: ready for disposal if it is being retired",
        actor=None,
        details={"erasure_id": erasure.id, "source": source.value},
    )
    record(
        session,
        actor=None,
        action="disposal.erasure_confirmed",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"method": erasure.method.value, "source": source.value, "at": at.isoformat()},
    )
    return erasure


def _add_erasure_evidence(
    session: Session, actor: User, device: Device, method: ErasureMethod, evidence: str
) -> DeviceErasure:
    text = evidence.strip()
    if not text:
        raise ValidationFailed(
            "Say what shows the storage is erased, for example 'screen and storage destroyed'.",
            details=[{"field": "evidence", "message": "Describe the evidence."}],
        )
    if device.status is DeviceStatus.DISPOSED:
        raise Conflict(f"{device.asset_tag} has already been disposed of.")
    erasure = DeviceErasure(
        school_id=device.school_id,
        device_id=device.id,
        method=method,
        source=ErasureSource.TECHNICIAN_EVIDENCE,
        confirmed_at=utcnow(),
        evidence=text,
        recorded_by_id=actor.id,
    )
    _erased(session, device, erasure.confirmed_at)
    session.add(erasure)
    session.flush()
    add_event(
        session,
        device,
        kind="erasure",
        summary=f"{method.label}, recorded with evidence: {text}",
        actor=actor,
        details={"erasure_id": erasure.id},
    )
    record(
        session,
        actor=actor,
        action="disposal.erasure_recorded",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"method": method.value, "evidence": text},
    )
    return erasure


def record_erasure(
    session: Session, actor: User, device: Device, method: ErasureMethod, evidence: str
) -> DeviceErasure:
    """A technician or the SBM vouches, with evidence, that a device was reset or destroyed."""
    erasure = _add_erasure_evidence(session, actor, device, method, evidence)
    session.commit()
    return erasure


def _newest_first(device: Device, by: datetime | None = None) -> Select[DeviceErasure]:
    """The device's erasures, newest first; only those confirmed by `by`, when given."""
    query = select(DeviceErasure).where(DeviceErasure.device_id == device.id)
    if by is not None:
        query = query.where(DeviceErasure.confirmed_at <= by)
    return query.options(joinedload(DeviceErasure.recorded_by)).order_by(
        DeviceErasure.confirmed_at.desc(), DeviceErasure.id.desc()
    )


def erasures_of(session: Session, device: Device) -> Sequence[DeviceErasure]:
    return session.scalars(_newest_first(device)).all()


def latest_erasure(
    session: Session, device: Device, *, by: datetime | None = None
) -> DeviceErasure | None:
    """The device's newest erasure (confirmed by `by`, when given): one row, not all of them."""
    return session.scalar(_newest_first(device, by).limit(1))


def record_write_off(session: Session, actor: User | None, device: Device, reference: str) -> None:
    """Mark a lost or stolen device written off so it may be disposed of (joins the caller's
    transaction).

    The losses work calls this when a case closes as written off.
    """
    if device.status not in (DeviceStatus.LOST, DeviceStatus.STOLEN):
        raise ValidationFailed("Only a lost or stolen device can be written off.")
    if not reference.strip():
        raise ValidationFailed("Give the insurance or loss reference for the write-off.")
    add_event(
        session,
        device,
        kind=WRITTEN_OFF,
        summary=f"Written off: {reference.strip()}",
        actor=actor,
        details={"reference": reference.strip()},
    )
    record(
        session,
        actor=actor,
        action="disposal.written_off",
        school_id=device.school_id,
        target_type="device",
        target_id=device.asset_tag,
        details={"reference": reference.strip()},
    )
    session.flush()


def _written_off(session: Session, device: Device) -> bool:
    """Written off since it was last reported lost or stolen."""
    written_off = session.scalar(
        select(func.max(DeviceEvent.at)).where(
            DeviceEvent.device_id == device.id, DeviceEvent.kind == WRITTEN_OFF
        )
    )
    if written_off is None:
        return False
    status_changed = session.scalar(
        select(func.max(DeviceEvent.at)).where(
            DeviceEvent.device_id == device.id, DeviceEvent.kind == "status"
        )
    )
    return status_changed is None or written_off >= status_changed


def refusal(session: Session, device: Device) -> str | None:
    """Why this device cannot be disposed of right now, in words for the SBM; None if it can."""
    tag = device.asset_tag
    if device.status is DeviceStatus.DISPOSED:
        return f"{tag} has already been disposed of."
    if device.holder_id is not None:
        holder = device.holder.name if device.holder else "a member of staff"
        return (
            f"{tag} is out on loan with {holder}. It must be returned before it can be disposed of."
        )
    if device.status in (DeviceStatus.LOST, DeviceStatus.STOLEN) and not _written_off(
        session, device
    ):
        return (
            f"{tag} is {device.status.label.lower()}. A lost or stolen device can only be "
            "disposed of once it has been written off."
        )
    if DeviceStatus.DISPOSED not in TRANSITIONS[device.status]:
        return (
            f"{tag} is {device.status.label.lower()}. Take it out of service (into stock or "
            "repair) before it is disposed of."
        )
    return None


# --- batches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSummary:
    batch: Disposal
    device_count: int


def list_batches(
    session: Session, school_id: int, *, status: DisposalStatus | None = None
) -> list[BatchSummary]:
    counts = (
        select(DisposalItem.disposal_id, func.count().label("n"))
        .group_by(DisposalItem.disposal_id)
        .subquery()
    )
    query = (
        select(Disposal, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.disposal_id == Disposal.id)
        .where(Disposal.school_id == school_id)
    )
    if status is not None:
        query = query.where(Disposal.status == status)
    rows = session.execute(query.order_by(Disposal.created_at.desc(), Disposal.id.desc())).all()
    return [BatchSummary(batch, int(n)) for batch, n in rows]


def draft_count(session: Session, school_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Disposal)
            .where(Disposal.school_id == school_id, Disposal.status == DisposalStatus.DRAFT)
        )
        or 0
    )


def get_batch(session: Session, school_id: int, batch_id: int) -> Disposal:
    batch = session.scalar(
        select(Disposal)
        .where(Disposal.id == batch_id, Disposal.school_id == school_id)
        .options(
            selectinload(Disposal.items).joinedload(DisposalItem.device),
            selectinload(Disposal.items).joinedload(DisposalItem.added_by),
        )
        # Sessions keep objects across commits: read the batch and its devices afresh.
        .execution_options(populate_existing=True)
    )
    if batch is None:
        raise NotFound("No such disposal batch in your school.")
    return batch


def _editable(batch: Disposal, school: School) -> None:
    if not batch.is_draft:
        raise Conflict(
            f"Disposal {batch.reference} was completed on "
            f"{day(batch.completed_at, school, missing='an unknown day')}; it is a record and "
            "cannot be changed."
        )


def _clean(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - BATCH_FIELDS
    if unknown:
        raise ValidationFailed(
            "Those details are not part of a disposal batch.",
            details=[{"field": name, "message": "unknown"} for name in sorted(unknown)],
        )
    return {
        name: (value.strip() or None) if isinstance(value, str) else value
        for name, value in changes.items()
    }


def create_batch(session: Session, actor: User, details: Mapping[str, Any]) -> Disposal:
    """Start a draft batch; its details can be filled in as they become known."""
    batch = Disposal(school_id=actor.school_id, created_by_id=actor.id, **_clean(details))
    session.add(batch)
    session.flush()
    record(
        session,
        actor=actor,
        action="disposal.batch_created",
        school_id=actor.school_id,
        target_type="disposal",
        target_id=batch.id,
        details={k: _plain(v) for k, v in _clean(details).items()},
    )
    session.commit()
    return batch


def update_batch(
    session: Session, actor: User, batch_id: int, changes: Mapping[str, Any]
) -> Disposal:
    """Correct a draft batch's collection date, agency and certificate numbers."""
    batch = get_batch(session, actor.school_id, batch_id)
    _editable(batch, actor.school)
    cleaned = _clean(changes)
    changed = {
        name: [_plain(getattr(batch, name)), _plain(value)]
        for name, value in cleaned.items()
        if getattr(batch, name) != value
    }
    for name, value in cleaned.items():
        setattr(batch, name, value)
    if changed:
        record(
            session,
            actor=actor,
            action="disposal.batch_edited",
            school_id=batch.school_id,
            target_type="disposal",
            target_id=batch.id,
            details={"changes": changed},
        )
    session.commit()
    return batch


def discard_batch(session: Session, actor: User, batch_id: int) -> list[str]:
    """Throw away a draft batch; its devices (their tags returned) stay in the register."""
    batch = get_batch(session, actor.school_id, batch_id)
    _editable(batch, actor.school)
    tags = [item.device.asset_tag for item in batch.items]
    for item in batch.items:
        add_event(
            session,
            item.device,
            kind="disposal",
            summary=f"Disposal batch {batch.reference} discarded; the device stays in the register",
            actor=actor,
            details={"disposal_id": batch.id},
        )
    session.delete(batch)
    record(
        session,
        actor=actor,
        action="disposal.batch_discarded",
        school_id=actor.school_id,
        target_type="disposal",
        target_id=batch_id,
        details={"devices": tags},
    )
    session.commit()
    return tags


def batch_of(session: Session, device: Device) -> DisposalItem | None:
    return session.scalar(
        select(DisposalItem)
        .where(DisposalItem.device_id == device.id)
        .options(joinedload(DisposalItem.disposal))
    )


def _used_after(moment: Any) -> ColumnElement[bool]:
    """Whether a device (a correlated condition on `Device`) was set up or used after `moment`:
    enrolled again, counted photos, or taken out on a loan. An erasure before that no longer
    vouches for what is on it."""
    return or_(
        # Never counted is no count (and must not leave the whole condition NULL).
        and_(Device.photo_count_at.is_not(None), Device.photo_count_at > moment),
        exists().where(DeviceIdentity.device_id == Device.id, DeviceIdentity.enrolled_at > moment),
        exists().where(LoanItem.device_id == Device.id, LoanItem.out_at > moment),
    )


def add_device(
    session: Session,
    actor: User,
    batch_id: int,
    asset_tag: str,
    *,
    wipe_method: WipeMethod,
    certificate_line: str | None = None,
    erasure_evidence: str | None = None,
    erasure_method: ErasureMethod | None = None,
) -> DisposalItem:
    """Add a device to a draft batch: only one already reset or destroyed, and at school.

    With no erasure on record, the person adding it may record one now: the method and the
    evidence they have (it is kept with their name as 'technician with evidence').
    """
    batch = get_batch(session, actor.school_id, batch_id)
    _editable(batch, actor.school)
    device = get_device(session, actor.school_id, asset_tag.strip())
    why = refusal(session, device)
    if why:
        raise ValidationFailed(why, details=[{"field": "asset_tag", "message": why}])
    already = batch_of(session, device)
    if already is not None:
        raise Conflict(
            f"{device.asset_tag} is already in disposal batch {already.disposal.reference}."
        )
    note = (erasure_evidence or "").strip()
    if erasure_method is not None:
        # A person vouches for a reset or destruction now, with the evidence they have.
        erasure: DeviceErasure | None = _add_erasure_evidence(
            session, actor, device, erasure_method, note
        )
        note = ""
    else:
        erasure = latest_erasure(session, device)
        if erasure is not None and session.scalar(
            select(_used_after(erasure.confirmed_at)).where(Device.id == device.id)
        ):
            message = (
                f"{device.asset_tag} has been enrolled, used or taken out since its last erasure "
                f"({describe_erasure(erasure, actor.school)}), so that erasure no longer says "
                "what is on it. Send it a factory reset and wait for the device to confirm it, "
                "or record the erasure done now and the evidence for it."
            )
            raise ValidationFailed(
                message, details=[{"field": "erasure_evidence", "message": message}]
            )
    if erasure is None:
        message = (
            f"{device.asset_tag} has no record of a factory reset or of being destroyed. "
            "Send it a factory reset and wait for the device to confirm it, or record what "
            "was done and the evidence for it."
        )
        raise ValidationFailed(message, details=[{"field": "erasure_evidence", "message": message}])
    evidence = describe_erasure(erasure, actor.school) + (f" ({note})" if note else "")
    if erasure.method is ErasureMethod.DESTROYED and wipe_method is WipeMethod.FORENSIC_WIPE:
        message = (
            f"{device.asset_tag}'s storage was destroyed, so it cannot be forensically wiped; "
            "choose physical destruction."
        )
        raise ValidationFailed(message, details=[{"field": "wipe_method", "message": message}])
    item = DisposalItem(
        school_id=batch.school_id,
        device_id=device.id,
        wipe_method=wipe_method,
        certificate_line=(certificate_line or "").strip() or None,
        erasure_evidence=evidence[:500],
        erasure_id=erasure.id,
        added_by_id=actor.id,
    )
    batch.items.append(item)
    session.flush()
    add_event(
        session,
        device,
        kind="disposal",
        summary=f"Added to disposal batch {batch.reference} ({wipe_method.label.lower()})",
        actor=actor,
        details={"disposal_id": batch.id},
    )
    record(
        session,
        actor=actor,
        action="disposal.device_added",
        school_id=batch.school_id,
        target_type="disposal",
        target_id=batch.id,
        details={
            "asset_tag": device.asset_tag,
            "wipe_method": wipe_method.value,
            "erasure_evidence": item.erasure_evidence,
        },
    )
    session.commit()
    return item


def _item(batch: Disposal, asset_tag: str) -> DisposalItem:
    for item in batch.items:
        if item.device.asset_tag == asset_tag:
            return item
    raise NotFound(f"{asset_tag} is not in disposal batch {batch.reference}.")


def update_device(
    session: Session,
    actor: User,
    batch_id: int,
    asset_tag: str,
    *,
    wipe_method: WipeMethod | None = None,
    certificate_line: str | None = None,
) -> DisposalItem:
    """Correct a device's wipe method or certificate line while the batch is a draft."""
    batch = get_batch(session, actor.school_id, batch_id)
    _editable(batch, actor.school)
    item = _item(batch, asset_tag)
    changes: dict[str, Any] = {}
    if wipe_method is not None and wipe_method is not item.wipe_method:
        if (
            wipe_method is WipeMethod.FORENSIC_WIPE
            and item.erasure is not None
            and item.erasure.method is ErasureMethod.DESTROYED
        ):
            raise ValidationFailed(
                f"{asset_tag}'s storage was destroyed, so it cannot be forensically wiped."
            )
        changes["wipe_method"] = [item.wipe_method.value, wipe_method.value]
        item.wipe_method = wipe_method
    line = (certificate_line or "").strip() or None
    if certificate_line is not None and line != item.certificate_line:
        changes["certificate_line"] = [item.certificate_line, line]
        item.certificate_line = line
    if changes:
        record(
            session,
            actor=actor,
            action="disposal.device_edited",
            school_id=batch.school_id,
            target_type="disposal",
            target_id=batch.id,
            details={"asset_tag": asset_tag, "changes": changes},
        )
    session.commit()
    return item


def remove_device(session: Session, actor: User, batch_id: int, asset_tag: str) -> None:
    """Take a device back out of a draft batch; it stays in the register as it was."""
    batch = get_batch(session, actor.school_id, batch_id)
    _editable(batch, actor.school)
    item = _item(batch, asset_tag)
    add_event(
        session,
        item.device,
        kind="disposal",
        summary=f"Taken out of disposal batch {batch.reference}",
        actor=actor,
        details={"disposal_id": batch.id},
    )
    batch.items.remove(item)
    record(
        session,
        actor=actor,
        action="disposal.device_removed",
        school_id=batch.school_id,
        target_type="disposal",
        target_id=batch.id,
        details={"asset_tag": asset_tag},
    )
    session.commit()


def completion_problems(
    session: Session, batch: Disposal, *, today: date | None = None
) -> list[dict[str, str]]:
    """Everything that stops a batch becoming a disposal record, each tied to a field or tag."""
    problems = [
        {"field": name, "message": message}
        for name, message in REQUIRED_TO_COMPLETE.items()
        if not getattr(batch, name)
    ]
    if batch.collection_date and batch.collection_date > (today or date.today()):
        problems.append(
            {
                "field": "collection_date",
                "message": "The collection date is in the future. Complete the disposal once "
                "the agency has collected the devices.",
            }
        )
    if not batch.items:
        problems.append({"field": "devices", "message": "Add at least one device."})
    for item in batch.items:
        why = refusal(session, item.device)
        if why:
            problems.append({"field": item.device.asset_tag, "message": why})
    return problems


def can_complete(session: Session, actor: User, batch: Disposal) -> bool:
    """Whether `actor` may complete the batch now (so is worth asking to confirm it)."""
    return actor.role is Role.SBM and batch.is_draft and not completion_problems(session, batch)


def complete_batch(
    session: Session, actor: User, batch_id: int, *, today: date | None = None
) -> Disposal:
    """The SBM completes a batch: every device becomes disposed in one transaction, or none."""
    batch = get_batch(session, actor.school_id, batch_id)
    if actor.role is not Role.SBM:
        raise Forbidden("Only the school business manager can complete a disposal.")
    _editable(batch, actor.school)
    # Lock the devices (PostgreSQL) so a loan cannot start between the check and the change.
    if batch.items:
        session.scalars(
            select(Device)
            .where(Device.id.in_([item.device_id for item in batch.items]))
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    problems = completion_problems(session, batch, today=today)
    if problems:
        raise ValidationFailed(
            f"Disposal {batch.reference} cannot be completed yet.", details=problems
        )
    reason = (
        f"Disposed of in batch {batch.reference} through {batch.agency_name} "
        f"(waste transfer note {batch.waste_transfer_note}, "
        f"erasure certificate {batch.erasure_certificate})"
    )
    try:
        for item in batch.items:
            change_status(
                session,
                actor,
                item.device,
                DeviceStatus.DISPOSED,
                reason,
                commit=False,
                in_disposal_batch=True,
            )
            # It has left the school: it is no longer in any trolley or room.
            item.device.current_location_id = None
        batch.status = DisposalStatus.COMPLETED
        batch.completed_by_id = actor.id
        batch.completed_at = utcnow()
        record(
            session,
            actor=actor,
            action="disposal.completed",
            school_id=batch.school_id,
            target_type="disposal",
            target_id=batch.id,
            details={
                "devices": [item.device.asset_tag for item in batch.items],
                "agency": batch.agency_name,
                "waste_transfer_note": batch.waste_transfer_note,
                "erasure_certificate": batch.erasure_certificate,
                "collection_date": _plain(batch.collection_date),
            },
        )
        session.commit()
    except Exception:
        # All or nothing: one device refused means no device is disposed of.
        session.rollback()
        log.warning("disposal %s could not be completed; nothing changed", batch_id)
        raise
    return batch


def ready_to_dispose(session: Session, school_id: int, *, limit: int = 200) -> Sequence[Device]:
    """Devices whose latest erasure still stands (not enrolled, used or taken out since), not
    yet in any batch or disposed: candidates to add."""
    erased = (
        select(DeviceErasure.device_id, func.max(DeviceErasure.confirmed_at).label("at"))
        .where(DeviceErasure.school_id == school_id)
        .group_by(DeviceErasure.device_id)
        .subquery()
    )
    in_batch = select(DisposalItem.device_id).where(DisposalItem.school_id == school_id)
    return session.scalars(
        select(Device)
        .join(erased, erased.c.device_id == Device.id)
        .where(
            Device.school_id == school_id,
            Device.status != DeviceStatus.DISPOSED,
            Device.id.not_in(in_batch),
            not_(_used_after(erased.c.at)),
        )
        .order_by(Device.asset_tag)
        .limit(limit)
    ).all()


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value
