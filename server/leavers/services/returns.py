"""Giving devices back and resetting them: scanning in, the factory reset, the staff register."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from provisioning.errors import LabelCodeError
from provisioning.payload import parse_label_url
from server.auth.models import Role, User
from server.commands import services as commands
from server.commands.models import Command
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event, get_device
from server.disposals.models import ErasureSource
from server.disposals.services import mark_reset_confirmed
from server.enrolment.services import revoke_identities
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.escrow import services as escrow
from server.leavers.models import ItemKind, LeaverCase, LeaverItem, ResetSource
from server.leavers.pages import ItemState
from server.leavers.services.cases import _managed_case, get_case
from server.leavers.services.common import (
    MIN_EVIDENCE,
    RESET,
    _event,
    _item,
    _open,
    _staff,
    _trail,
    is_manager,
)
from server.leavers.services.state import _check_ready, _state_of
from server.loans.services import quick_return
from server.notifications.services import notify
from server.personal_devices import services as personal_devices
from server.schools.models import STORAGE_KINDS
from server.schools.services.clock import when


def require_receiver(actor: User, case: LeaverCase) -> None:
    """Devices come back to the SBM, the headteacher or the case's technician."""
    if not (is_manager(actor) or actor.id == case.technician_id):
        raise Forbidden(
            "Devices are scanned back in by the school business manager, the headteacher or "
            "the technician on this case."
        )


def _require_technician(actor: User, case: LeaverCase, doing: str) -> None:
    if actor.id != case.technician_id:
        name = case.technician.name if case.technician else "the technician"
        raise Forbidden(f"Only {name}, the technician on this case, can {doing}.")


def return_device(
    session: Session,
    actor: User,
    case_id: int,
    code: str,
    *,
    base_url: str,
    now: datetime | None = None,
) -> LeaverItem:
    """Scanning a device in completes its return: back in its home, nobody holding it."""
    now = now or utcnow()
    case = get_case(session, actor, case_id)
    require_receiver(actor, case)
    _open(case)
    try:
        tag = parse_label_url(code, base_url)
    except LabelCodeError as exc:
        raise ValidationFailed(
            f"That is not a Trolley label or asset tag: {exc}. Nothing was recorded.",
            code="bad_code",
        ) from exc
    device = get_device(
        session,
        actor.school_id,
        tag,
        missing=f"No device {tag} in your school's register. Nothing was recorded.",
    )
    item = next((i for i in case.items if i.device_id == device.id), None)
    if item is None:
        raise Conflict(
            f"{device.asset_tag} is not on {case.leaver_name}'s list. If they had it, add it to "
            "the case first.",
            code="not_on_case",
        )
    if item.returned_at is not None:
        raise Conflict(
            f"{device.asset_tag} was already given back at {when(item.returned_at, case.school)}.",
            code="already_returned",
        )
    _put_back(session, actor, device, case, now)
    item.returned_at = now
    item.returned_by_id = actor.id
    item.returned_by = actor
    _event(session, case, actor, f"{device.asset_tag} given back and scanned in", now)
    _trail(session, case, actor, "returned", now, item=item.id, device=device.asset_tag)
    _check_ready(session, case, now)
    session.commit()
    return item


def _put_back(
    session: Session, actor: User, device: Device, case: LeaverCase, now: datetime
) -> None:
    """Put the device back in its home, through the loans domain for trolley devices."""
    # Loans closes any open loan and asks for the photo wipe; it commits on its own, before
    # the case changes, so a refused return leaves nothing of the case half-written.
    if device.status in (DeviceStatus.LOST, DeviceStatus.STOLEN):
        raise Conflict(
            f"{device.asset_tag} is reported {device.status.value}. Ask the headteacher to close "
            "its loss report as found, then scan it in again.",
            code="reported_lost",
        )
    if device.status is DeviceStatus.DISPOSED:
        raise Conflict(f"{device.asset_tag} has been disposed of.", code="disposed")
    home = device.home_location
    if home is not None and home.kind in STORAGE_KINDS:
        quick_return(session, actor, device, now=now)
        return
    device.holder_id = None
    device.current_location_id = device.home_location_id
    where = f"back in {home.name}" if home is not None else "back at school (it has no home set)"
    add_event(
        session,
        device,
        kind="leaver_return",
        summary=f"Given back by {case.leaver_name} (leaver) and {where}",
        actor=actor,
        details={"leaver_case": case.id},
    ).at = now


def _technician_step(
    session: Session, actor: User, case_id: int, item_id: int, doing: str, now: datetime
) -> tuple[LeaverCase, ItemState, Device]:
    """A device on an open case, for its technician to reset: refused once it is reset."""
    case = get_case(session, actor, case_id)
    _require_technician(actor, case, doing)
    _open(case)
    state = _state_of(session, case, item_id, now)
    device = state.item.device
    assert device is not None
    if state.reset_done:
        raise Conflict(f"{device.asset_tag} has already been reset.", code="already_reset")
    return case, state, device


def send_reset(
    session: Session, actor: User, case_id: int, item_id: int, *, now: datetime | None = None
) -> Command:
    """Ask for the device's factory reset; a second person must approve it."""
    now = now or utcnow()
    case, state, device = _technician_step(
        session, actor, case_id, item_id, "send its factory resets", now
    )
    if state.awaiting_reset:
        raise Conflict(
            f"A factory reset is already on its way to {device.asset_tag} ({state.reset_words}).",
            code="reset_pending",
        )
    if not state.handed_over:
        raise ValidationFailed(
            f"Before the reset, {case.leaver_name} hands over the PIN and account details for "
            f"{device.asset_tag}, or a reset meeting is booked: otherwise the device may stay "
            "locked to their account.",
            code="handover_first",
        )
    if not commands.can_reach(session, device):
        raise ValidationFailed(
            f"{device.asset_tag} has no Trolley kiosk client and is not a Chromebook linked "
            "through Google, so it cannot be reset from here. Reset it by hand, then confirm the "
            "reset with your evidence.",
            code="not_enrolled",
        )
    (command,) = commands.issue(
        session,
        actor,
        [device],
        RESET,
        {},
        reason=f"{case.leaver_name} is leaving (leaver case {case.id})",
        now=now,
        commit=False,
    )
    state.item.reset_command_id = command.id
    notify(
        session,
        school_id=case.school_id,
        users=_staff(session, case.school_id, (Role.HEADTEACHER, Role.TECHNICIAN), but=actor.id),
        kind="leaver_reset_approval",
        title=f"Approve the factory reset of {device.asset_tag} ({case.leaver_name} is leaving)",
        body=f"{actor.name} asked to factory reset {device.asset_tag}. A second person must "
        "approve it on the Commands page before it is sent.",
        link="/commands",
        email=False,
    )
    _event(session, case, actor, f"{device.asset_tag}: factory reset asked for", now)
    _trail(session, case, actor, "reset_sent", now, item=state.item.id, command=command.cmd_id)
    session.commit()
    return command


def confirm_reset(
    session: Session,
    actor: User,
    case_id: int,
    item_id: int,
    evidence: str,
    *,
    now: datetime | None = None,
) -> LeaverItem:
    """For a device without the kiosk client: the technician confirms the reset with evidence."""
    now = now or utcnow()
    case, state, device = _technician_step(
        session, actor, case_id, item_id, "confirm its resets", now
    )
    if state.awaiting_reset:
        raise Conflict(
            f"A factory reset is on its way to {device.asset_tag} from Trolley: wait for the "
            "device to confirm it, or cancel it on the Commands page first.",
            code="reset_pending",
        )
    text = " ".join(evidence.split())
    if len(text) < MIN_EVIDENCE:
        raise ValidationFailed(
            "Describe the evidence, for example 'Activation Lock removed, device re-enrolled'.",
            details=[{"field": "evidence", "message": "Say what shows it was reset."}],
        )
    item = state.item
    item.reset_at = now
    item.reset_source = ResetSource.EVIDENCE
    item.reset_evidence = text[:2000]
    item.reset_by_id = actor.id
    item.reset_by = actor
    # A reset device's old PIN, broker login and data are gone: the same as an acknowledged one.
    erasure = mark_reset_confirmed(session, device, now, ErasureSource.TECHNICIAN_EVIDENCE)
    erasure.evidence = text[:500]  # the disposal record shows who vouched for it, and how
    erasure.recorded_by_id = actor.id
    escrow.device_reset(session, device, now)
    revoke_identities(session, device, now=now, why="factory reset confirmed with evidence")
    add_event(
        session,
        device,
        kind="leaver_reset",
        summary=f"Factory reset confirmed by {actor.name} with evidence: {text[:300]}",
        actor=actor,
        details={"leaver_case": case.id},
    ).at = now
    _event(session, case, actor, f"{device.asset_tag}: factory reset confirmed with evidence", now)
    _trail(session, case, actor, "reset_confirmed", now, item=item.id, source="evidence")
    _check_ready(session, case, now)
    session.commit()
    return item


def remove_personal_device(
    session: Session, actor: User, case_id: int, item_id: int, *, now: datetime | None = None
) -> LeaverItem:
    """Take the leaver's own device out of the staff personal devices register."""
    now = now or utcnow()
    case = _managed_case(session, actor, case_id)
    item = _item(case, item_id, ItemKind.PERSONAL_DEVICE)
    if item.removed_at is not None:
        raise Conflict("That entry has already been removed from the register.")
    assert item.personal_device_id is not None
    try:
        personal_devices.remove(
            session,
            actor,
            item.personal_device_id,
            f"{case.leaver_name} left the school (leaver case {case.id})",
            commit=False,
        )
    except Conflict:
        pass  # removed in the register already; the case only needs to know it is gone
    except NotFound:
        pass  # the entry itself was deleted; there is nothing left to remove
    item.removed_at = now
    item.removed_by_id = actor.id
    item.removed_by = actor
    _event(session, case, actor, "Their own device was removed from the staff register", now)
    _trail(session, case, actor, "personal_device_removed", now, item=item.id)
    _check_ready(session, case, now)
    session.commit()
    return item
