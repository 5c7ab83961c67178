"""What Google says is in force on an org unit, told device by device as a kiosk tells it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from device_profiles.compilers.chromeos import SETTING_SCHEMAS
from server import events
from server.chromebooks.models import GoogleDevice, GooglePolicySetting, PolicyState
from server.profiles import services as profiles


def per_setting(names: Sequence[str], rows: Sequence[GooglePolicySetting]) -> list[dict[str, Any]]:
    """Each profile setting's state from Google's read-back; one Google has not answered is left
    out (not known), never guessed."""
    by_schema: dict[str, list[GooglePolicySetting]] = {}
    unsupported: dict[str, GooglePolicySetting] = {}
    for row in rows:
        if row.schema:
            by_schema.setdefault(row.schema, []).append(row)
        else:
            unsupported[row.field] = row
    out: list[dict[str, Any]] = []
    for name in names:
        if name in unsupported:
            why = unsupported[name].evidence
            out.append({"setting": name, "state": "not_supported", "detail": why})
            continue
        schemas = SETTING_SCHEMAS.get(name, ())
        found = [row for schema in schemas for row in by_schema.get(schema, [])]
        if not found:
            detail = "Trolley has not set this in Google for the Chromebook's org unit"
            out.append({"setting": name, "state": "failed", "detail": detail})
            continue
        if any(row.state is PolicyState.PENDING or row.checked_at is None for row in found):
            continue
        failed = [row for row in found if row.state is not PolicyState.ENFORCED]
        evidence = {
            "source": "Google policies.resolve",
            "checked_at": max(row.checked_at for row in found if row.checked_at).isoformat(),
            "in_force": {f"{row.schema}.{row.field}": row.applied for row in found},
        }
        if failed:
            detail = "; ".join(row.evidence for row in failed)
            out.append({"setting": name, "state": "failed", "detail": detail, "evidence": evidence})
        else:
            detail = "Google reports it in force"
            out.append(
                {"setting": name, "state": "enforced", "detail": detail, "evidence": evidence}
            )
    return out


def report_unit(session: Session, school_id: int, org_unit_id: str, at: datetime) -> int:
    """Tell the profiles domain what each register Chromebook in the org unit has in force,
    from Google's read-back at `at`; joins the caller's transaction. Returns how many were told."""
    rows = session.scalars(
        select(GooglePolicySetting).where(
            GooglePolicySetting.school_id == school_id,
            GooglePolicySetting.org_unit_id == org_unit_id,
        )
    ).all()
    pushed = {row.profile_version_id for row in rows}
    members = session.scalars(
        select(GoogleDevice)
        .where(
            GoogleDevice.school_id == school_id,
            GoogleDevice.org_unit_id == org_unit_id,
            GoogleDevice.device_id.is_not(None),
            # A deprovisioned Chromebook is listed in the unit but no longer takes its policy.
            GoogleDevice.status.in_(GoogleDevice.MANAGED),
        )
        .options(joinedload(GoogleDevice.device))
    ).all()
    told = 0
    for member in members:
        device = member.device
        desired = profiles.desired_state(session, device) if device is not None else None
        if device is None or desired is None or desired.document is None:
            continue
        if pushed != {desired.profile_version_id}:
            continue  # Google holds another version: what it says is not about this one
        settings = per_setting([str(s) for s in desired.document.get("settings") or []], rows)
        if not settings:
            continue
        enforced = any(s["state"] == "enforced" for s in settings) and not any(
            s["state"] == "failed" for s in settings
        )
        events.publish(
            events.ProfileReported(
                session,
                device,
                at,
                desired.sha256 if enforced else None,
                settings,
                desired.sha256,
            )
        )
        told += 1
    return told
