"""What is on a leaver case: a device added by hand, and a fresh look at what they hold."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.devices.models import DeviceStatus
from server.devices.services import get_device
from server.errors import Conflict, ValidationFailed
from server.leavers.models import LeaverItem
from server.leavers.services.cases import _managed_case
from server.leavers.services.common import _event, _flush_or_conflict, _trail
from server.leavers.services.holdings import (
    _busy,
    _busy_error,
    _device_item,
    _personal_items,
    held_by,
)
from server.leavers.services.state import _unsign_helpers


def add_device(
    session: Session, actor: User, case_id: int, asset_tag: str, *, now: datetime | None = None
) -> LeaverItem:
    """Add a device the register did not know the leaver had."""
    now = now or utcnow()
    case = _managed_case(session, actor, case_id)
    tag = asset_tag.strip()
    device = get_device(
        session,
        actor.school_id,
        tag,
        missing=f"No device {tag or '(no tag given)'} in your school's register.",
    )
    if device.status is DeviceStatus.DISPOSED:
        raise ValidationFailed(f"{device.asset_tag} has been disposed of.")
    if any(i.device_id == device.id for i in case.items):
        raise Conflict(f"{device.asset_tag} is already on this case.", code="already_on_case")
    busy = _busy(session, [device.id], but=case.id)
    if busy:
        raise _busy_error(session, busy)
    item = _device_item(case, device, f"Added by {actor.name}", now)
    case.items.append(item)
    _flush_or_conflict(session)
    _unsign_helpers(session, case, now, f"{device.asset_tag} was added")
    _event(session, case, actor, f"{device.asset_tag} added to the case", now)
    _trail(session, case, actor, "device_added", now, item=item.id, device=device.asset_tag)
    session.commit()
    return item


def refresh(
    session: Session, actor: User, case_id: int, *, now: datetime | None = None
) -> list[LeaverItem]:
    """Look again at what the register, the loans and the personal register say."""
    now = now or utcnow()
    case = _managed_case(session, actor, case_id)
    if case.leaver is None:
        raise ValidationFailed(
            f"{case.leaver_name} has no Trolley account, so the register cannot say what they "
            "hold. Add devices by asset tag instead."
        )
    on_case = {i.device_id for i in case.items if i.device_id is not None}
    held = [h for h in held_by(session, case.leaver) if h.device.id not in on_case]
    busy = {d.id for d in _busy(session, [h.device.id for h in held], but=case.id)}
    added = [_device_item(case, h.device, h.source, now) for h in held if h.device.id not in busy]
    listed = {i.personal_device_id for i in case.items if i.personal_device_id is not None}
    added += _personal_items(session, case, case.leaver, now, skip=listed)
    case.items.extend(added)
    _flush_or_conflict(session)
    if added:
        _unsign_helpers(session, case, now, "more was found on a fresh look")
        _event(session, case, actor, f"Looked again: {len(added)} more item(s) added", now)
    else:
        _event(session, case, actor, "Looked again: nothing new", now)
    _trail(session, case, actor, "refreshed", now, added=len(added), skipped=len(busy))
    session.commit()
    return added
