"""Chrome policy through Google: settings pushed to an org unit, and what is in force there."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from device_profiles import compile_profile
from device_profiles.compilers.chromeos import device_policies
from server.activity.services import record
from server.auth.models import User
from server.chromebooks.models import GoogleDevice, GoogleLink, GooglePolicySetting, PolicyState
from server.chromebooks.services.applied import report_unit
from server.chromebooks.services.google import Clients, GoogleApi, GoogleError, call
from server.chromebooks.services.link import clients_for, customer_path, require_link
from server.crypto import SecretBox
from server.db import utcnow
from server.errors import ValidationFailed
from server.profiles.models import DeviceDesiredState, ProfileVersion
from server.profiles.services import loaded, mark_published
from server.profiles.services import resolve as resolve_profile
from server.schools.models import School

DISABLED_MESSAGE = "chrome.devices.DisabledDeviceReturnInstructions"
WIPE_USER_DATA = "chrome.devices.WipeUserData"
DEVICE_SCHEMAS = frozenset({WIPE_USER_DATA})


def unknown_schemas(link: GoogleLink, names: set[str]) -> list[str]:
    """Schema names Google did not list when the link was last tested."""
    known = set(link.known_schemas or [])
    return sorted(name for name in names if name not in known)


def require_known(link: GoogleLink, names: set[str]) -> None:
    """Refuse to send Google a policy name it does not publish (checked at link time)."""
    if not link.known_schemas:
        raise ValidationFailed(
            "Test the Google link first: Trolley checks every Chrome policy name against "
            "Google's list before it sends one."
        )
    unknown = unknown_schemas(link, names)
    if unknown:
        raise ValidationFailed(
            f"Google does not know these Chrome policy names: {', '.join(unknown)}. Nothing "
            "was sent. Test the link again; if they are still unknown, Google has renamed them."
        )


def batch_modify(
    clients: Clients,
    link: GoogleLink,
    org_unit_id: str,
    values: Mapping[str, Mapping[str, Any]],
) -> None:
    """Set `values` ({schema: {field: value}}) on one org unit, each list sent whole."""
    require_known(link, set(values))
    roots = {".".join(name.split(".")[:2]) for name in values}
    # Google takes one root namespace per request body.
    for root in sorted(roots):
        requests = [
            {
                "policyTargetKey": {"targetResource": f"orgunits/{org_unit_id}"},
                "policyValue": {"policySchema": name, "value": dict(value)},
                "updateMask": ",".join(sorted(value)),
            }
            for name, value in sorted(values.items())
            if name.startswith(root + ".")
        ]
        call(
            clients.policy.customers()
            .policies()
            .orgunits()
            .batchModify(customer=customer_path(link), body={"requests": requests})
        )


def resolve(
    clients: Clients, link: GoogleLink, org_unit_id: str, schema_filter: str
) -> dict[str, dict[str, Any]]:
    """What Google says is in force on an org unit: {schema: {field: value}}."""
    found: dict[str, dict[str, Any]] = {}
    token = None
    while True:
        body: dict[str, Any] = {
            "policySchemaFilter": schema_filter,
            "policyTargetKey": {"targetResource": f"orgunits/{org_unit_id}"},
            "pageSize": 1000,
        }
        if token:
            body["pageToken"] = token
        page = call(
            clients.policy.customers().policies().resolve(customer=customer_path(link), body=body)
        )
        for policy in page.get("resolvedPolicies", []):
            value = policy.get("value") or {}
            name = value.get("policySchema")
            if name:
                found[str(name)] = dict(value.get("value") or {})
        token = page.get("nextPageToken")
        if not token:
            return found


def set_disabled_message(
    session: Session, clients: Clients, link: GoogleLink, row: GoogleDevice, message: str
) -> str:
    """Show the school's return message on the disabled Chromebook's screen; say how it went."""
    if not message.strip():
        return ""
    if not row.org_unit_id:
        return "its org unit is not known yet, so the return message was not set"
    if DISABLED_MESSAGE not in (link.known_schemas or []):
        return "the return message was not set: test the Google link so Trolley can check it"
    try:
        batch_modify(
            clients, link, row.org_unit_id, {DISABLED_MESSAGE: {"deviceDisabledMessage": message}}
        )
    except GoogleError as exc:
        if exc.retryable:
            raise
        return f"the return message was not set: {exc.message}"
    return "the school's return message is on its screen"


# --- profiles pushed to org units ------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """What one org unit should have: Chrome policy values, and what Google cannot express."""

    org_unit_id: str
    org_unit_path: str
    version: ProfileVersion
    values: dict[str, dict[str, Any]]
    unsupported: list[tuple[str, str]]  # (profile setting, why)


def desired_for(version: ProfileVersion, unit: str, path: str, message: str) -> Desired:
    """A profile version as Chrome Policy API values for one org unit (pure: no Google call)."""
    profile = loaded(version)
    compiled = compile_profile(profile, "chromeos", org_unit_id=unit)
    body = json.loads(compiled.content)
    values = {
        str(r["policyValue"]["policySchema"]): dict(r["policyValue"]["value"])
        for r in body["requests"]
    }
    values.update(device_policies(profile))
    if message.strip():
        values[DISABLED_MESSAGE] = {"deviceDisabledMessage": message}
    sent_separately = {"device.ephemeral_sessions"} if DEVICE_SCHEMAS & set(values) else set()
    unsupported = [
        (w.setting, w.message) for w in compiled.warnings if w.setting not in sent_separately
    ]
    return Desired(unit, path, version, values, unsupported)


def plan_units(session: Session, school_id: int, message: str) -> tuple[list[Desired], list[str]]:
    """Each org unit holding register Chromebooks, and the one profile they should all have."""
    rows = session.scalars(
        select(GoogleDevice)
        .where(GoogleDevice.school_id == school_id, GoogleDevice.device_id.is_not(None))
        .options(joinedload(GoogleDevice.device))
        .order_by(GoogleDevice.org_unit_path)
    ).all()
    units: dict[str, list[GoogleDevice]] = {}
    for row in rows:
        if row.org_unit_id:
            units.setdefault(row.org_unit_id, []).append(row)
    plans, problems = [], []
    for unit, members in units.items():
        chosen: dict[int, tuple[ProfileVersion, list[str]]] = {}
        for row in members:
            assert row.device is not None
            version = resolve_profile(session, row.device).profile_version
            if version is not None:
                chosen.setdefault(version.id, (version, []))[1].append(row.device.asset_tag)
        path = members[0].org_unit_path or "/"
        if len(chosen) > 1:
            # One org unit has one set of policies: Trolley never guesses which profile wins.
            names = "; ".join(
                f"{v.profile.name} on {', '.join(tags[:3])}" for v, tags in chosen.values()
            )
            problems.append(
                f"Org unit {path} holds Chromebooks with different profiles ({names}). Give "
                "them one profile, or put them in separate org units in Google."
            )
        elif chosen:
            ((version, _tags),) = chosen.values()
            plans.append(desired_for(version, unit, path, message))
    return plans, problems


def upsert(
    session: Session, school_id: int, plan: Desired, now: datetime
) -> list[GooglePolicySetting]:
    """The org unit's rows made what `plan` asks for, each pending until Google is read."""
    existing = {
        (row.schema, row.field): row
        for row in session.scalars(
            select(GooglePolicySetting).where(
                GooglePolicySetting.school_id == school_id,
                GooglePolicySetting.org_unit_id == plan.org_unit_id,
            )
        )
    }
    wanted: dict[tuple[str, str], tuple[Any, PolicyState, str]] = {}
    for schema, value in plan.values.items():
        for field_name, desired in value.items():
            wanted[(schema, field_name)] = (desired, PolicyState.PENDING, "Sent to Google")
    for setting, why in plan.unsupported:
        wanted[("", setting)] = (None, PolicyState.NOT_SUPPORTED, why)
    for key, row in existing.items():
        if key not in wanted:
            session.delete(row)
    rows = []
    for (schema, field_name), (desired, state, evidence) in wanted.items():
        found = existing.get((schema, field_name))
        row = found or GooglePolicySetting(
            school_id=school_id, org_unit_id=plan.org_unit_id, schema=schema, field=field_name
        )
        if found is None:
            session.add(row)
        row.org_unit_path = plan.org_unit_path
        row.profile_version_id = plan.version.id
        row.desired, row.state, row.evidence = desired, state, evidence[:500]
        row.applied, row.pushed_at = None, now
        rows.append(row)
    return rows


def read_back(
    session: Session, clients: Clients, link: GoogleLink, org_unit_id: str, now: datetime
) -> list[GooglePolicySetting]:
    """What Google says is in force on the org unit, setting by setting (policies.resolve)."""
    rows = session.scalars(
        select(GooglePolicySetting).where(
            GooglePolicySetting.school_id == link.school_id,
            GooglePolicySetting.org_unit_id == org_unit_id,
            GooglePolicySetting.schema != "",
        )
    ).all()
    namespaces = sorted({row.schema.rsplit(".", 1)[0] for row in rows})
    in_force: dict[str, dict[str, Any]] = {}
    for namespace in namespaces:
        in_force.update(resolve(clients, link, org_unit_id, f"{namespace}.*"))
    for row in rows:
        value = in_force.get(row.schema, {})
        row.checked_at = now
        if row.field not in value:
            row.applied, row.state = None, PolicyState.FAILED
            row.evidence = f"Google has no value for {row.schema} {row.field} on this org unit"
        else:
            row.applied = value[row.field]
            matches = row.applied == row.desired
            row.state = PolicyState.ENFORCED if matches else PolicyState.FAILED
            row.evidence = (
                "Google reports it in force"
                if matches
                else f"Google reports {json.dumps(row.applied)} in force instead"
            )[:500]
    report_unit(session, link.school_id, org_unit_id, now)
    return list(rows)


def push_unit(
    session: Session, clients: Clients, link: GoogleLink, plan: Desired, now: datetime
) -> None:
    """Set one org unit's profile in Google, then read back what is in force there."""
    require_known(link, set(plan.values))
    batch_modify(clients, link, plan.org_unit_id, plan.values)
    upsert(session, link.school_id, plan, now)
    session.flush()
    read_back(session, clients, link, plan.org_unit_id, now)


def waiting(session: Session, school_id: int) -> list[tuple[int, str, str]]:
    """(device id, desired hash, org unit) of register Chromebooks whose profile Google has not
    been sent yet."""
    rows = session.execute(
        select(DeviceDesiredState.device_id, DeviceDesiredState.sha256, GoogleDevice.org_unit_id)
        .join(GoogleDevice, GoogleDevice.device_id == DeviceDesiredState.device_id)
        .where(
            GoogleDevice.school_id == school_id,
            DeviceDesiredState.school_id == school_id,
            GoogleDevice.org_unit_id != "",
            GoogleDevice.status.in_(GoogleDevice.MANAGED),
            or_(
                DeviceDesiredState.published_sha256.is_(None),
                DeviceDesiredState.published_sha256 != DeviceDesiredState.sha256,
            ),
        )
    ).all()
    return [(int(d), str(s), str(u)) for d, s, u in rows]


def mark_sent(
    session: Session, rows: Sequence[tuple[int, str, str]], units: set[str], now: datetime
) -> None:
    """The desired state of Chromebooks in `units` has gone to Google (or Google refused it)."""
    for device_id, sha256, unit in rows:
        if unit in units:
            mark_published(session, device_id, sha256, now)


def push_profiles(
    session: Session,
    box: SecretBox,
    google: GoogleApi,
    actor: User,
    *,
    now: datetime | None = None,
) -> list[str]:
    """P-PROFILE-1: each org unit's profile set through Google, then read back setting by setting.

    Returns what could not be pushed, in words; every policy name is checked first, so an unknown
    one stops the push before anything is sent.
    """
    now = now or utcnow()
    link = require_link(session, actor.school_id)
    school = session.get(School, actor.school_id)
    plans, problems = plan_units(session, actor.school_id, school.return_message if school else "")
    if not plans and not problems:
        raise ValidationFailed(
            "No register Chromebook in Google has a profile assigned. Assign a profile to their "
            "trolley, group or the school, sync, then push."
        )
    for plan in plans:
        require_known(link, set(plan.values))
    sent = waiting(session, actor.school_id)
    with clients_for(box, google, link) as clients:
        for plan in plans:
            push_unit(session, clients, link, plan, now)
    mark_sent(session, sent, {plan.org_unit_id for plan in plans}, now)
    link.policy_problems = problems
    record(
        session,
        actor=actor,
        action="google.profiles_pushed",
        school_id=actor.school_id,
        target_type="google_link",
        target_id=link.client_email,
        details={
            "org_units": [p.org_unit_path for p in plans],
            "versions": [p.version.id for p in plans],
            "problems": problems,
        },
    )
    session.commit()
    return problems


def check_policies(
    session: Session, box: SecretBox, google: GoogleApi, school_id: int, now: datetime
) -> int:
    """Read back every org unit Trolley pushed to (a change in the Admin console shows up)."""
    link = require_link(session, school_id)
    units = sorted(
        set(
            session.scalars(
                select(GooglePolicySetting.org_unit_id).where(
                    GooglePolicySetting.school_id == school_id
                )
            )
        )
    )
    if not units:
        return 0
    with clients_for(box, google, link) as clients:
        for unit in units:
            read_back(session, clients, link, unit, now)
    session.commit()
    return len(units)


def settings_by_unit(session: Session, school_id: int) -> dict[str, list[GooglePolicySetting]]:
    """The per-setting applied state of every org unit, for the page."""
    rows = session.scalars(
        select(GooglePolicySetting)
        .where(GooglePolicySetting.school_id == school_id)
        .order_by(
            GooglePolicySetting.org_unit_path,
            GooglePolicySetting.schema,
            GooglePolicySetting.field,
        )
    ).all()
    grouped: dict[str, list[GooglePolicySetting]] = {}
    for row in rows:
        grouped.setdefault(row.org_unit_path or row.org_unit_id, []).append(row)
    return grouped


def settings_for_device(session: Session, row: GoogleDevice) -> Sequence[GooglePolicySetting]:
    if not row.org_unit_id:
        return []
    return session.scalars(
        select(GooglePolicySetting)
        .where(
            GooglePolicySetting.school_id == row.school_id,
            GooglePolicySetting.org_unit_id == row.org_unit_id,
        )
        .order_by(GooglePolicySetting.schema, GooglePolicySetting.field)
    ).all()
