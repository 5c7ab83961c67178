"""JSON API for restriction profiles, assignments, compliance and filter exceptions."""

from __future__ import annotations

import base64

from flask import current_app

from device_profiles import CompileWarning, ProfileError
from server.auth.models import User
from server.auth.permissions import Permission
from server.db import utcnow
from server.errors import ValidationFailed
from server.extensions import db_session
from server.openapi import current_api_user, endpoint
from server.profiles import services
from server.profiles.models import FilterException, Profile, TargetType
from server.profiles.schemas import (
    AppliedSettingOut,
    AssignmentIn,
    AssignmentList,
    AssignmentOut,
    ComplianceOut,
    ComplianceQuery,
    ComplianceRowOut,
    DecisionIn,
    ExceptionIn,
    ExceptionList,
    ExceptionOut,
    ExceptionQuery,
    ExportOut,
    ExportQuery,
    GroupIn,
    GroupList,
    GroupMembersIn,
    GroupOut,
    PreviewOut,
    ProfileCreateIn,
    ProfileDetail,
    ProfileErrorOut,
    ProfileList,
    ProfileSummary,
    ResolutionOut,
    UnblockList,
    UnblockOut,
    UnblockQuery,
    ValidateIn,
    ValidateOut,
    VersionIn,
    VersionOut,
    VersionSaved,
    WarningOut,
)

TAG = "profiles"


def _summary(profile: Profile) -> ProfileSummary:
    return ProfileSummary(
        id=profile.id,
        slug=profile.slug,
        name=profile.name,
        archived=profile.archived,
        created_at=profile.created_at,
    )


def _version_out(entry: services.HistoryEntry) -> VersionOut:
    version = entry.version
    return VersionOut(
        number=version.number,
        sha256=version.sha256,
        note=version.note,
        created_by=version.created_by.name if version.created_by else None,
        created_at=version.created_at,
        changes=entry.summary,
    )


def _warnings(items: list[CompileWarning]) -> list[WarningOut]:
    return [WarningOut(setting=w.setting, message=w.message, kind=w.kind) for w in items]


def _errors(items: list[ProfileError]) -> list[ProfileErrorOut]:
    return [ProfileErrorOut.model_validate(e.as_dict()) for e in items]


def _assignment_out(row: services.AssignmentRow) -> AssignmentOut:
    a = row.assignment
    return AssignmentOut(
        id=a.id,
        profile_id=a.profile_id,
        profile_name=row.profile_name,
        target_type=a.target_type,
        target_id=a.target_id,
        target=row.target,
        created_at=a.created_at,
    )


def _exception_out(exception: FilterException, target: str) -> ExceptionOut:
    return ExceptionOut(
        id=exception.id,
        urls=list(exception.urls),
        reason=exception.reason,
        class_label=exception.class_label,
        target_type=exception.target_type,
        target_id=exception.target_id,
        target=target,
        starts_at=exception.starts_at,
        ends_at=exception.ends_at,
        status=exception.status,
        requester=exception.requester.name,
        decided_by=exception.decided_by.name if exception.decided_by else None,
        decided_at=exception.decided_at,
        decision_note=exception.decision_note,
        created_at=exception.created_at,
    )


def _one_exception(exception: FilterException) -> ExceptionOut:
    labels = services.target_labels(
        db_session(), exception.school_id, [(exception.target_type, exception.target_id)]
    )
    return _exception_out(exception, labels[(exception.target_type, exception.target_id)])


def _target_id(
    user: User, target_type: str, target_id: int | None, asset_tag: str | None
) -> int | None:
    if target_type == TargetType.DEVICE and asset_tag:
        return services.device_by_tag(db_session(), user.school_id, asset_tag).id
    return target_id


# --- profiles -------------------------------------------------------------------------------


@endpoint(
    "/profiles",
    "GET",
    permission=Permission.FILTERING_MANAGE,
    summary="The school's restriction profiles",
    tag=TAG,
    response=ProfileList,
)
def list_profiles() -> ProfileList:
    profiles = services.list_profiles(db_session(), current_api_user(), include_archived=True)
    return ProfileList(items=[_summary(p) for p in profiles], library=services.library())


@endpoint(
    "/profiles",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Create a profile from YAML, a built-in profile or a blank start",
    tag=TAG,
    body=ProfileCreateIn,
    response=ProfileSummary,
    status=201,
)
def create_profile(body: ProfileCreateIn) -> ProfileSummary:
    profile = services.create_profile(
        db_session(),
        current_api_user(),
        name=body.name,
        yaml_text=body.yaml_text,
        note=body.note,
        start_from=body.start_from,
    )
    return _summary(profile)


@endpoint(
    "/profiles/validate",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Check a profile text: every error with its line, each output's warnings and preview",
    tag=TAG,
    body=ValidateIn,
    response=ValidateOut,
)
def validate_profile(body: ValidateIn) -> ValidateOut:
    user = current_api_user()
    checked = services.validate_text(body.yaml_text)
    outputs: list[PreviewOut] = []
    if checked.profile is not None:
        school = services.get_school(db_session(), user.school_id)
        for target, result in services.previews(checked.profile, school=school).items():
            outputs.append(
                PreviewOut(
                    target=target,
                    label=services.TARGET_LABELS[target],
                    filename=result.filename,
                    media_type=result.media_type,
                    content=result.content.decode("utf-8"),
                    warnings=_warnings(result.warnings),
                )
            )
    return ValidateOut(
        valid=checked.profile is not None,
        errors=_errors(checked.errors),
        warnings={t: _warnings(w) for t, w in checked.warnings.items()},
        previews=outputs,
    )


@endpoint(
    "/profiles/<int:profile_id>",
    "GET",
    permission=Permission.FILTERING_MANAGE,
    summary="One profile with its versions, their changes and its assignments",
    tag=TAG,
    response=ProfileDetail,
)
def get_profile(profile_id: int) -> ProfileDetail:
    session, user = db_session(), current_api_user()
    profile = services.get_profile(session, user, profile_id)
    entries = services.history(session, user, profile)
    return ProfileDetail(
        **_summary(profile).model_dump(),
        yaml_text=entries[0].version.yaml_text,
        versions=[_version_out(e) for e in entries],
        assignments=[_assignment_out(r) for r in services.list_assignments(session, user, profile)],
    )


@endpoint(
    "/profiles/<int:profile_id>/versions",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Save a new version (refused with every error if the text is not valid)",
    tag=TAG,
    body=VersionIn,
    response=VersionSaved,
    status=201,
)
def save_version(profile_id: int, body: VersionIn) -> VersionSaved:
    session, user = db_session(), current_api_user()
    profile = services.get_profile(session, user, profile_id)
    saved = services.save_version(session, user, profile, body.yaml_text, body.note)
    entry = services.history(session, user, profile)[0]
    return VersionSaved(created=saved is not None, version=_version_out(entry))


@endpoint(
    "/profiles/<int:profile_id>/export",
    "GET",
    permission=Permission.FILTERING_MANAGE,
    summary="Export a version for one platform (iPad profiles may be signed)",
    tag=TAG,
    query=ExportQuery,
    response=ExportOut,
)
def export_profile(profile_id: int, query: ExportQuery) -> ExportOut:
    session = db_session()
    profile = services.get_profile(session, current_api_user(), profile_id)
    version = (
        services.get_version(session, profile, query.version)
        if query.version
        else services.latest_version(session, profile)
    )
    identity = (
        services.signing_identity(
            current_app.extensions["trolley.settings"],
            session,
            current_app.extensions["trolley.box"],
            profile.school_id,
        )
        if query.signed
        else None
    )
    result = services.export(
        session,
        version,
        query.target,
        sign=query.signed,
        identity=identity,
        now=utcnow(),
        org_unit_id=query.org_unit_id,
    )
    binary = query.signed
    return ExportOut(
        filename=result.filename,
        media_type=result.media_type,
        encoding="base64" if binary else "utf-8",
        content=base64.b64encode(result.content).decode() if binary else result.content.decode(),
        signed=query.signed,
        warnings=_warnings(result.warnings),
    )


# --- assignments and groups -----------------------------------------------------------------


@endpoint(
    "/profiles/assignments",
    "GET",
    permission=Permission.FILTERING_MANAGE,
    summary="Which profile is assigned to the school, each place, group and device",
    tag=TAG,
    response=AssignmentList,
)
def list_assignments() -> AssignmentList:
    rows = services.list_assignments(db_session(), current_api_user())
    return AssignmentList(items=[_assignment_out(r) for r in rows])


@endpoint(
    "/profiles/assignments",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Assign a profile (replaces the target's previous profile)",
    tag=TAG,
    body=AssignmentIn,
    response=AssignmentOut,
    status=201,
)
def create_assignment(body: AssignmentIn) -> AssignmentOut:
    session, user = db_session(), current_api_user()
    profile = services.get_profile(session, user, body.profile_id)
    target_id = _target_id(user, body.target_type, body.target_id, body.asset_tag)
    assignment = services.assign(session, user, profile, body.target_type, target_id)
    return _assignment_out(services.get_assignment(session, user, assignment.id))


@endpoint(
    "/profiles/assignments/<int:assignment_id>",
    "DELETE",
    permission=Permission.FILTERING_MANAGE,
    summary="Remove an assignment (devices fall back to the next most specific profile)",
    tag=TAG,
    response=AssignmentOut,
)
def delete_assignment(assignment_id: int) -> AssignmentOut:
    session, user = db_session(), current_api_user()
    row = services.get_assignment(session, user, assignment_id)
    services.unassign(session, user, assignment_id)
    return _assignment_out(row)


@endpoint(
    "/device-groups",
    "GET",
    permission=Permission.LOANS_USE,
    summary="Device groups (for assigning profiles and asking for exceptions)",
    tag=TAG,
    response=GroupList,
)
def list_groups() -> GroupList:
    rows = services.list_groups(db_session(), current_api_user())
    return GroupList(items=[GroupOut(id=g.id, name=g.name, devices=n) for g, n in rows])


@endpoint(
    "/device-groups",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Add a device group",
    tag=TAG,
    body=GroupIn,
    response=GroupOut,
    status=201,
)
def create_group(body: GroupIn) -> GroupOut:
    group = services.create_group(db_session(), current_api_user(), body.name)
    return GroupOut(id=group.id, name=group.name, devices=0)


@endpoint(
    "/device-groups/<int:group_id>/devices",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Add devices to a group by asset tag",
    tag=TAG,
    body=GroupMembersIn,
    response=GroupOut,
)
def add_group_devices(group_id: int, body: GroupMembersIn) -> GroupOut:
    session, user = db_session(), current_api_user()
    group = services.get_group(session, user.school_id, group_id)
    services.add_to_group(session, user, group, body.asset_tags)
    return GroupOut(
        id=group.id, name=group.name, devices=len(services.group_members(session, group))
    )


# --- resolution and compliance --------------------------------------------------------------


@endpoint(
    "/devices/<asset_tag>/profile",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="Which profile applies to a device, why, and whether the device has applied it",
    tag=TAG,
    response=ResolutionOut,
)
def device_profile(asset_tag: str) -> ResolutionOut:
    session, user = db_session(), current_api_user()
    device = services.device_by_tag(session, user.school_id, asset_tag)
    resolution = services.resolve(session, device)
    row = services.device_compliance(session, device)
    applied = services.applied_view(session, device)
    version = resolution.profile_version
    return ResolutionOut(
        asset_tag=device.asset_tag,
        profile_id=version.profile_id if version else None,
        profile_name=resolution.profile_name,
        version=version.number if version else None,
        reason=resolution.reason,
        chain=resolution.chain,
        desired_sha256=row.desired_sha256 if row else None,
        applied_sha256=row.applied_sha256 if row else None,
        state=row.state if row else None,
        settings=[
            AppliedSettingOut(
                setting=s.setting,
                wanted=s.wanted,
                state=s.state,  # type: ignore[arg-type]
                detail=s.detail,
                evidence=s.evidence,
                since=s.since,
            )
            for s in applied.rows
        ],
        settings_reported_at=applied.reported_at,
    )


@endpoint(
    "/profiles/compliance",
    "GET",
    permission=Permission.FILTERING_MANAGE,
    summary="Desired against applied profile for every device: counts and rows",
    tag=TAG,
    query=ComplianceQuery,
    response=ComplianceOut,
)
def compliance(query: ComplianceQuery) -> ComplianceOut:
    school_id = current_api_user().school_id
    session = db_session()
    rows = services.compliance(session, school_id, states=[query.state] if query.state else None)
    return ComplianceOut(
        counts=services.compliance_summary(session, school_id),
        items=[
            ComplianceRowOut(
                asset_tag=r.asset_tag,
                profile_name=r.profile_name,
                version=r.version,
                desired_sha256=r.desired_sha256,
                applied_sha256=r.applied_sha256,
                published_at=r.published_at,
                reported_at=r.reported_at,
                state=r.state,
                settings_reported=r.settings_reported,
                settings_not_enforced=r.settings_not_enforced,
                settings_at=r.settings_at,
            )
            for r in rows
        ],
    )


# --- temporary filter exceptions (P-PROFILE-3) ----------------------------------------------


@endpoint(
    "/filter-exceptions",
    "GET",
    permission=Permission.LOANS_USE,
    summary="Filter exception requests (all for the computing lead, your own otherwise)",
    tag=TAG,
    query=ExceptionQuery,
    response=ExceptionList,
)
def list_exceptions(query: ExceptionQuery) -> ExceptionList:
    session, user = db_session(), current_api_user()
    items = services.list_exceptions(session, user, status=query.status)
    labels = services.target_labels(
        session, user.school_id, [(e.target_type, e.target_id) for e in items]
    )
    return ExceptionList(
        items=[_exception_out(e, labels[(e.target_type, e.target_id)]) for e in items]
    )


@endpoint(
    "/filter-exceptions/preview",
    "GET",
    permission=Permission.LOANS_USE,
    summary="What each address would unblock (the site or pages a filter matches), or why not",
    tag=TAG,
    query=UnblockQuery,
    response=UnblockList,
)
def preview_unblock(query: UnblockQuery) -> UnblockList:
    return UnblockList(
        items=[
            UnblockOut(typed=u.typed, address=u.address, reach=u.reach, problem=u.problem)
            for u in services.preview_unblock(query.urls.splitlines())
        ]
    )


@endpoint(
    "/filter-exceptions",
    "POST",
    permission=Permission.LOANS_USE,
    summary="Ask for web addresses to be unblocked for a period of study",
    tag=TAG,
    body=ExceptionIn,
    response=ExceptionOut,
    status=201,
)
def request_exception(body: ExceptionIn) -> ExceptionOut:
    user = current_api_user()
    target_id = _target_id(user, body.target_type, body.target_id, body.asset_tag)
    if target_id is None:
        raise ValidationFailed("Say which place, group or device (target_id or asset_tag).")
    exception = services.request_exception(
        db_session(),
        user,
        urls=body.urls,
        reason=body.reason,
        class_label=body.class_label,
        target_type=body.target_type,
        target_id=target_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return _one_exception(exception)


def _decision(exception_id: int, body: DecisionIn, action: str) -> ExceptionOut:
    decide = services.DECISIONS[action]
    exception = decide(db_session(), current_api_user(), exception_id, body.note)
    return _one_exception(exception)


@endpoint(
    "/filter-exceptions/<int:exception_id>/approve",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Approve a request; devices get the addresses for the period",
    tag=TAG,
    body=DecisionIn,
    response=ExceptionOut,
)
def approve_exception(exception_id: int, body: DecisionIn) -> ExceptionOut:
    return _decision(exception_id, body, "approve")


@endpoint(
    "/filter-exceptions/<int:exception_id>/decline",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="Decline a request, saying why",
    tag=TAG,
    body=DecisionIn,
    response=ExceptionOut,
)
def decline_exception(exception_id: int, body: DecisionIn) -> ExceptionOut:
    return _decision(exception_id, body, "decline")


@endpoint(
    "/filter-exceptions/<int:exception_id>/revoke",
    "POST",
    permission=Permission.FILTERING_MANAGE,
    summary="End an approved exception early",
    tag=TAG,
    body=DecisionIn,
    response=ExceptionOut,
)
def revoke_exception(exception_id: int, body: DecisionIn) -> ExceptionOut:
    return _decision(exception_id, body, "revoke")
