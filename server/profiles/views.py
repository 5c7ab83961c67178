"""Profile pages: list, editor with live validation, history, export, assignment, compliance,
device groups and temporary filter exceptions."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from device_profiles import CompileWarning, SigningIdentity
from device_profiles import Profile as ProfileSettings
from device_profiles.descriptions import in_words
from device_profiles.form import app_choices, form_values
from server.auth.permissions import Permission, requires
from server.db import utcnow
from server.devices.models import Device
from server.devices.services import PROTECTION_LABELS
from server.errors import Conflict, ValidationFailed
from server.extensions import db_session
from server.profiles import services
from server.profiles.forms import (
    AssignForm,
    ConfirmForm,
    DecisionForm,
    ExceptionForm,
    GroupDevicesForm,
    GroupForm,
    NewProfileForm,
    SettingsForm,
    VersionForm,
)
from server.profiles.models import ExceptionStatus, Profile, ProfileVersion, TargetType
from server.schools.models import Location
from server.schools.services import from_local
from server.web import refusing

bp = Blueprint("profiles", __name__)


# --- helpers --------------------------------------------------------------------------------


@bp.app_template_filter("profile_words")
def profile_words(text: str) -> str:
    """Text naming the profile language's keys, with the keys in words."""
    return in_words(text)


@bp.app_template_filter("profile_text")
def profile_text(yaml_text: str) -> str:
    """A profile's text as staff are shown it."""
    return services.staff_text(yaml_text)


def _signing() -> SigningIdentity | None:
    return services.signing_identity(
        current_app.extensions["trolley.settings"],
        db_session(),
        current_app.extensions["trolley.box"],
        current_user.school_id,
    )


def _target_choices(*, school: bool, device: bool = True) -> list[tuple[str, str]]:
    session = db_session()
    choices = [("school", "The whole school (the default)")] if school else []
    choices += [
        (f"location:{i}", path)
        for i, path in services.assignable_places(session, current_user.school_id)
    ]
    choices += [
        (f"group:{g.id}", f"Group: {g.name}")
        for g, _n in services.list_groups(session, current_user)
    ]
    if device:
        choices.append(("device", "One device (give its asset tag)"))
    return choices


def _parse_target(value: str, asset_tag: str | None) -> tuple[TargetType, int | None]:
    kind, _, number = value.partition(":")
    target = TargetType(kind)
    if target is TargetType.DEVICE:
        if not (asset_tag or "").strip():
            raise ValidationFailed("Give the device's asset tag.")
        device = services.device_by_tag(db_session(), current_user.school_id, asset_tag or "")
        return target, device.id
    return target, int(number) if number.isdigit() else None


def _split_tags(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,;]+", text) if t]


def _around_editor(
    profile: Profile,
    settings: ProfileSettings | None,
    warnings: dict[str, list[CompileWarning]],
) -> dict[str, Any]:
    """What both editors show around the profile: its gaps, downloads and assignments."""
    session = db_session()
    assign_form = AssignForm()
    assign_form.target.choices = _target_choices(school=True)
    return {
        "profile": profile,
        "latest": services.latest_version(session, profile),
        "gaps": services.platform_gaps(session, profile, settings, warnings)
        if settings is not None
        else [],
        "assignments": services.list_assignments(session, current_user, profile),
        "assign_form": assign_form,
        "confirm": ConfirmForm(),
        "signing": _signing() is not None,
    }


def _editor(
    profile: Profile, form: VersionForm, *, errors: list[dict[str, Any]] | None = None
) -> str:
    """The advanced view: the profile as YAML, checked as it is typed."""
    session = db_session()
    latest = services.latest_version(session, profile)
    text = form.yaml_text.data or services.staff_text(latest.yaml_text)
    checked = services.validate_text(text, f"{profile.slug}.yaml")
    outputs = (
        services.previews(
            checked.profile,
            school=services.get_school(session, profile.school_id),
            version=latest.number,
        )
        if checked.profile is not None
        else {}
    )
    return render_template(
        "profiles/yaml.html",
        **_around_editor(profile, checked.profile, checked.warnings),
        form=form,
        text=text,
        errors=errors if errors is not None else [e.as_dict() for e in checked.errors],
        previews=outputs,
        labels=services.TARGET_LABELS,
        setting_labels=services.SETTING_LABELS,
    )


def _settings_editor(
    profile: Profile,
    fields: dict[str, list[str]] | None = None,
    *,
    check: services.FormCheck | None = None,
    errors: tuple[dict[str, list[str]], list[str]] | None = None,
    form: SettingsForm | None = None,
) -> str:
    """The settings editor: switches and lists in groups, with a preview and the changes."""
    session = db_session()
    latest = services.latest_version(session, profile)
    in_force = services.loaded(latest)
    if check is not None:
        errors = (check.field_errors, check.general_errors)
    in_force_outputs = services.previews(
        in_force, school=services.get_school(session, profile.school_id), version=latest.number
    )
    return render_template(
        "profiles/editor.html",
        **_around_editor(profile, in_force, {t: r.warnings for t, r in in_force_outputs.items()}),
        groups=services.groups(),
        values=fields if fields is not None else form_values(in_force),
        check=check,
        field_errors=errors[0] if errors else {},
        general_errors=errors[1] if errors else [],
        app_choices=app_choices,
        in_force=services.platform_previews(in_force, in_force_outputs),
        form=form or SettingsForm(),
    )


def _flash_saved(version: ProfileVersion | None) -> None:
    if version is None:
        flash("Nothing changed, so no new version was saved.", "info")
    else:
        flash(f"Saved version {version.number}. Assigned devices get it shortly.", "success")


def _posted_settings() -> dict[str, list[str]]:
    """The settings fields of the posted form, by key path."""
    own = ("csrf_token", "note", "action")
    return {key: request.form.getlist(key) for key in request.form if key not in own}


# --- profiles -------------------------------------------------------------------------------


def _index(form: NewProfileForm, status: int = 200) -> tuple[str, int]:
    session = db_session()
    return render_template(
        "profiles/index.html",
        profiles=services.list_profiles(session, current_user, include_archived=True),
        assignments=services.list_assignments(session, current_user),
        summary=services.compliance_summary(session, current_user.school_id),
        labels=services.COMPLIANCE_LABELS,
        form=form,
        confirm=ConfirmForm(),
    ), status


def _new_profile_form() -> NewProfileForm:
    form = NewProfileForm()
    form.start_from.choices = [("", "A blank profile")] + [
        (slug, f"Built-in: {name}") for slug, name in services.library().items()
    ]
    return form


@bp.get("/profiles")
@requires(Permission.FILTERING_MANAGE)
def index() -> tuple[str, int]:
    form = _new_profile_form()
    start = request.args.get("start_from", "")
    if start in dict(form.start_from.choices):
        form.start_from.data = start
    return _index(form)


@bp.post("/profiles/new")
@requires(Permission.FILTERING_MANAGE)
def create() -> Response | tuple[str, int]:
    form = _new_profile_form()
    if not form.validate_on_submit():
        return _index(form, 400)
    with refusing(None) as refused:
        profile = services.create_profile(
            db_session(),
            current_user,
            name=form.name.data or "",
            note=form.note.data or "",
            start_from=form.start_from.data or None,
        )
    if refused.error:
        form.name.errors = [refused.message]
        return _index(form, refused.error.status)
    flash(
        f"{profile.name} is saved as version 1. It is not on any device until you assign it.",
        "success",
    )
    return redirect(url_for("profiles.editor", profile_id=profile.id))


@bp.get("/profiles/<int:profile_id>")
@requires(Permission.FILTERING_MANAGE)
def editor(profile_id: int) -> str:
    return _settings_editor(services.get_profile(db_session(), current_user, profile_id))


@bp.post("/profiles/<int:profile_id>/settings")
@requires(Permission.FILTERING_MANAGE)
def save_settings(profile_id: int) -> Response | tuple[str, int]:
    session = db_session()
    profile = services.get_profile(session, current_user, profile_id)
    form = SettingsForm()
    fields = _posted_settings()
    if not form.validate_on_submit():
        return _settings_editor(profile, fields, form=form), 400
    if request.form.get("action") != "save":
        check = services.check_form(session, profile, fields)
        status = 200 if check.profile is not None else 400
        return _settings_editor(profile, fields, check=check, form=form), status
    with refusing(None) as refused:
        version = services.save_form(session, current_user, profile, fields, form.note.data or "")
    if refused.error:
        details = refused.error.details if isinstance(refused.error.details, list) else []
        errors = services.errors_by_field(details) if details else ({}, [refused.message])
        return _settings_editor(profile, fields, errors=errors, form=form), refused.error.status
    _flash_saved(version)
    return redirect(url_for("profiles.editor", profile_id=profile.id))


@bp.get("/profiles/<int:profile_id>/yaml")
@requires(Permission.FILTERING_MANAGE)
def yaml_editor(profile_id: int) -> str:
    profile = services.get_profile(db_session(), current_user, profile_id)
    return _editor(profile, VersionForm())


@bp.post("/profiles/<int:profile_id>")
@requires(Permission.FILTERING_MANAGE)
def save(profile_id: int) -> Response | tuple[str, int]:
    session = db_session()
    profile = services.get_profile(session, current_user, profile_id)
    form = VersionForm()
    if not form.validate_on_submit():
        return _editor(profile, form), 400
    with refusing() as refused:
        version = services.save_version(
            session, current_user, profile, form.yaml_text.data or "", form.note.data or ""
        )
    if refused.error:
        details = refused.error.details if isinstance(refused.error.details, list) else []
        return _editor(profile, form, errors=details), refused.error.status
    _flash_saved(version)
    return redirect(url_for("profiles.yaml_editor", profile_id=profile.id))


@bp.get("/profiles/<int:profile_id>/history")
@requires(Permission.FILTERING_MANAGE)
def history(profile_id: int) -> str:
    session = db_session()
    profile = services.get_profile(session, current_user, profile_id)
    return render_template(
        "profiles/history.html",
        profile=profile,
        entries=services.history(session, current_user, profile),
    )


@bp.get("/profiles/<int:profile_id>/versions/<int:number>/export")
@requires(Permission.FILTERING_MANAGE)
def export(profile_id: int, number: int) -> Response:
    session = db_session()
    profile = services.get_profile(session, current_user, profile_id)
    version = services.get_version(session, profile, number)
    target = request.args.get("target", "")
    if target not in services.COMPILE_TARGETS:
        raise ValidationFailed(
            f"Choose what to export: {', '.join(services.COMPILE_TARGETS)}.", code="bad_target"
        )
    signed = request.args.get("signed") == "1"
    result = services.export(
        session,
        version,
        target,
        sign=signed,
        identity=_signing() if signed else None,
        now=utcnow(),
        org_unit_id=request.args.get("org_unit_id"),
    )
    response = Response(result.content, mimetype=result.media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    return response


@bp.post("/profiles/<int:profile_id>/archive")
@requires(Permission.FILTERING_MANAGE)
def archive(profile_id: int) -> Response:
    session = db_session()
    profile = services.get_profile(session, current_user, profile_id)
    ConfirmForm().validate_on_submit()  # CSRFProtect already refused a forged request
    with refusing() as refused:
        services.set_archived(session, current_user, profile, not profile.archived)
    if not refused:
        flash(f"{profile.name} is {'archived' if profile.archived else 'back in use'}.", "info")
    return redirect(url_for("profiles.index"))


# --- assignments ----------------------------------------------------------------------------


@bp.post("/profiles/<int:profile_id>/assign")
@requires(Permission.FILTERING_MANAGE)
def assign(profile_id: int) -> Response:
    session = db_session()
    profile = services.get_profile(session, current_user, profile_id)
    form = AssignForm()
    form.target.choices = _target_choices(school=True)
    if not form.validate_on_submit():
        flash("Choose where to assign the profile.", "warning")
        return redirect(url_for("profiles.editor", profile_id=profile.id))
    with refusing() as refused:
        target, target_id = _parse_target(form.target.data or "", form.asset_tag.data)
        services.assign(session, current_user, profile, target, target_id)
    if not refused:
        flash(f"{profile.name} is assigned. The devices it applies to get it shortly.", "success")
    return redirect(url_for("profiles.editor", profile_id=profile.id))


@bp.post("/profiles/assignments/<int:assignment_id>/remove")
@requires(Permission.FILTERING_MANAGE)
def unassign(assignment_id: int) -> Response:
    session = db_session()
    row = services.get_assignment(session, current_user, assignment_id)
    ConfirmForm().validate_on_submit()
    services.unassign(session, current_user, assignment_id)
    flash(
        f"{row.profile_name} no longer applies to {row.target}; "
        "its devices fall back to the next most specific profile.",
        "info",
    )
    target = request.form.get("back")
    if target == "editor":
        return redirect(url_for("profiles.editor", profile_id=row.assignment.profile_id))
    return redirect(url_for("profiles.index"))


# --- compliance and the filtering history ---------------------------------------------------


@bp.get("/profiles/compliance")
@requires(Permission.FILTERING_MANAGE)
def compliance() -> str:
    session = db_session()
    school_id = current_user.school_id
    return render_template(
        "profiles/compliance.html",
        summary=services.compliance_summary(session, school_id),
        labels=services.COMPLIANCE_LABELS,
        partial=services.compliance(session, school_id, states=["partial"]),
        unconfirmed=services.compliance(session, school_id, states=["unconfirmed"]),
        drifting=services.compliance(session, school_id, states=["drifting"]),
        pending=services.compliance(
            session, school_id, states=["pending", "never_reported", "erased"]
        ),
    )


@bp.get("/profiles/activity")
@requires(Permission.FILTERING_MANAGE)
def activity() -> str:
    return render_template(
        "profiles/activity.html",
        entries=services.filtering_history(db_session(), current_user),
    )


# --- device groups --------------------------------------------------------------------------


@bp.route("/profiles/groups", methods=["GET", "POST"])
@requires(Permission.FILTERING_MANAGE)
def groups() -> Response | tuple[str, int]:
    session = db_session()
    form = GroupForm()
    status = 200
    if form.validate_on_submit():
        with refusing(None) as refused:
            group = services.create_group(session, current_user, form.name.data or "")
        if refused.error:
            form.name.errors = [refused.message]
            status = refused.error.status
        else:
            flash(f"Group {group.name} added. Now add its devices.", "success")
            return redirect(url_for("profiles.group", group_id=group.id))
    elif request.method == "POST":
        status = 400
    return render_template(
        "profiles/groups.html", groups=services.list_groups(session, current_user), form=form
    ), status


@bp.route("/profiles/groups/<int:group_id>", methods=["GET", "POST"])
@requires(Permission.FILTERING_MANAGE)
def group(group_id: int) -> Response | tuple[str, int]:
    session = db_session()
    found = services.get_group(session, current_user.school_id, group_id)
    form = GroupDevicesForm()
    status = 200
    if form.validate_on_submit():
        with refusing(None) as refused:
            added = services.add_to_group(
                session, current_user, found, _split_tags(form.asset_tags.data or "")
            )
        if refused.error:
            form.asset_tags.errors = [refused.message]
            status = refused.error.status
        else:
            flash(f"{added} device(s) added to {found.name}.", "success")
            return redirect(url_for("profiles.group", group_id=found.id))
    elif request.method == "POST":
        status = 400
    members: list[Device] = list(services.group_members(session, found))
    return render_template(
        "profiles/group.html", group=found, members=members, form=form, confirm=ConfirmForm()
    ), status


@bp.post("/profiles/groups/<int:group_id>/devices/<int:device_id>/remove")
@requires(Permission.FILTERING_MANAGE)
def group_remove(group_id: int, device_id: int) -> Response:
    session = db_session()
    found = services.get_group(session, current_user.school_id, group_id)
    ConfirmForm().validate_on_submit()
    services.remove_from_group(session, current_user, found, device_id)
    flash("The device was taken out of the group.", "info")
    return redirect(url_for("profiles.group", group_id=found.id))


# --- temporary filter exceptions (P-PROFILE-3) ----------------------------------------------


@bp.get("/filter-exceptions")
@requires(Permission.LOANS_USE)
def exceptions() -> str:
    session = db_session()
    items = services.list_exceptions(session, current_user)
    labels = services.target_labels(
        session, current_user.school_id, [(e.target_type, e.target_id) for e in items]
    )
    manages = services.can_manage(current_user)
    return render_template(
        "profiles/exceptions.html",
        waiting=[e for e in items if e.status is ExceptionStatus.REQUESTED],
        others=[e for e in items if e.status is not ExceptionStatus.REQUESTED],
        labels=labels,
        manages=manages,
        decision=DecisionForm(),
        now=utcnow(),
        unblocks=services.preview_unblock,
    )


@bp.route("/filter-exceptions/new", methods=["GET", "POST"])
@requires(Permission.LOANS_USE)
def request_exception() -> Response | tuple[str, int]:
    form = ExceptionForm()
    form.target.choices = _target_choices(school=False)
    status = 200
    shown = services.preview_unblock((form.urls.data or "").splitlines())
    if form.validate_on_submit():
        with refusing() as refused:
            target, target_id = _parse_target(form.target.data or "", form.asset_tag.data)
            if target_id is None:
                raise ValidationFailed("Choose which devices.")
            services.request_exception(
                db_session(),
                current_user,
                urls=(form.urls.data or "").splitlines(),
                reason=form.reason.data or "",
                class_label=form.class_label.data or "",
                target_type=target,
                target_id=target_id,
                starts_at=_aware(form.starts_at.data),
                ends_at=_aware(form.ends_at.data),
            )
        if refused.error:
            status = refused.error.status
        else:
            reach = "; ".join(dict.fromkeys(u.reach for u in shown))
            flash(
                f"Your request is with the computing lead: it unblocks {reach}. "
                "You will be told when they decide.",
                "success",
            )
            return redirect(url_for("profiles.exceptions"))
    elif request.method == "POST":
        status = 400
    return render_template(
        "profiles/exception_form.html",
        form=form,
        max_days=services.MAX_EXCEPTION_DAYS,
        shown=shown,
    ), status


def _aware(value: datetime | None) -> datetime:
    if value is None:  # the form's DataRequired makes this unreachable
        raise ValidationFailed("Give the start and the end.")
    return from_local(value, current_user.school)


def _decide(exception_id: int, action: str) -> Response:
    form = DecisionForm()
    form.validate_on_submit()
    decide = services.DECISIONS[action]
    with refusing(None) as refused:
        exception = decide(db_session(), current_user, exception_id, form.note.data or "")
    if isinstance(refused.error, (ValidationFailed, Conflict)):
        flash(refused.message, "warning")
    elif refused.error is not None:
        raise refused.error  # a request that is not there is the error page, not a warning
    else:
        flash(
            f"Request {exception.id} is now {exception.status.value}; "
            f"{exception.requester.name} has been told.",
            "success",
        )
    return redirect(url_for("profiles.exceptions"))


@bp.post("/filter-exceptions/<int:exception_id>/approve")
@requires(Permission.FILTERING_MANAGE)
def approve(exception_id: int) -> Response:
    return _decide(exception_id, "approve")


@bp.post("/filter-exceptions/<int:exception_id>/decline")
@requires(Permission.FILTERING_MANAGE)
def decline(exception_id: int) -> Response:
    return _decide(exception_id, "decline")


@bp.post("/filter-exceptions/<int:exception_id>/revoke")
@requires(Permission.FILTERING_MANAGE)
def revoke(exception_id: int) -> Response:
    return _decide(exception_id, "revoke")


# --- partials on the home page and the device page ------------------------------------------


@bp.app_context_processor
def _partials() -> dict[str, object]:
    def profiles_home() -> services.HomeSummary | None:
        if not current_user.is_authenticated:
            return None
        return services.home_summary(db_session(), current_user)

    def profiles_my_requests() -> int:
        if not current_user.is_authenticated:
            return 0
        return services.my_open_requests(db_session(), current_user)

    def profiles_device_panel(device: Device) -> services.DevicePanel | None:
        if not current_user.is_authenticated:
            return None
        return services.device_panel(db_session(), current_user, device)

    def profiles_place_devices(location: Location) -> list[services.PlaceDevice] | None:
        if not current_user.is_authenticated:
            return None
        return services.place_devices(db_session(), current_user, location)

    def profiles_reported() -> services.ReportedSummary | None:
        if not current_user.is_authenticated:
            return None
        return services.reported_summary(db_session(), current_user)

    return {
        "profiles_home": profiles_home,
        "profiles_my_requests": profiles_my_requests,
        "profiles_device_panel": profiles_device_panel,
        "profiles_place_devices": profiles_place_devices,
        "profiles_reported": profiles_reported,
        "protection_labels": PROTECTION_LABELS,
    }
