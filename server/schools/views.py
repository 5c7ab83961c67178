"""The location tree pages (add, rename, resize, move, delete) and the school's term dates."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from server.auth.permissions import Permission, requires
from server.errors import TrolleyError
from server.extensions import db_session
from server.schools import services
from server.schools.forms import (
    KIND_LABELS,
    ConfirmForm,
    LocationEditForm,
    LocationForm,
    NetworkForm,
    TermForm,
)
from server.schools.models import STORAGE_KINDS, Location, LocationKind
from server.web import refusing

bp = Blueprint("schools", __name__)


def _problem(exc: TrolleyError) -> str:
    return exc.message + "".join(f" {d['message']}" for d in (exc.details or []))


def _parent_choices(places: list[Location], blank: str, exclude: set[int]) -> list[tuple[str, str]]:
    """Places that can hold others (not trolleys, safes or cupboards), by their full path."""
    choices = [
        (str(p.id), services.location_path(p))
        for p in places
        if p.kind not in STORAGE_KINDS and p.id not in exclude
    ]
    return [("", blank), *sorted(choices, key=lambda c: c[1].lower())]


def _tree_page(form: LocationForm, error: str | None = None, status: int = 200) -> tuple[str, int]:
    session = db_session()
    places = list(services.locations(session, current_user.school_id))
    form.parent_id.choices = _parent_choices(places, "Nothing (top level)", set())
    children: dict[int | None, list[Location]] = {}
    for place in places:
        children.setdefault(place.parent_id, []).append(place)
    return render_template(
        "schools/locations.html",
        children=children,
        counts=services.storage_counts(session, current_user.school_id),
        terms=services.terms(session, current_user.school_id),
        form=form,
        kinds=KIND_LABELS,
        error=error,
    ), status


@bp.get("/locations")
@requires(Permission.LOCATIONS_READ)
def locations() -> tuple[str, int]:
    return _tree_page(LocationForm(formdata=None))


@bp.post("/locations")
@requires(Permission.LOCATIONS_WRITE)
def add_location() -> Response | tuple[str, int]:
    form = LocationForm()
    places = services.locations(db_session(), current_user.school_id)
    form.parent_id.choices = _parent_choices(list(places), "", set())
    if not form.validate_on_submit():
        return _tree_page(form, "Check the highlighted details.", 400)
    with refusing(None) as refused:
        location = services.create_location(db_session(), actor=current_user, **form.values())
    if refused.error:
        return _tree_page(form, _problem(refused.error), refused.error.status)
    flash(f"{location.name} added.", "success")
    return redirect(url_for("schools.location", location_id=location.id))


def _location_page(
    location: Location,
    form: LocationEditForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    session = db_session()
    places = list(services.locations(session, current_user.school_id))
    inside = services.descendant_ids(session, location)
    if form is None:
        form = LocationEditForm(
            formdata=None,
            name=location.name,
            parent_id=str(location.parent_id or ""),
            capacity=location.capacity,
            code=location.code or "",
        )
    form.parent_id.choices = _parent_choices(places, "Nothing (top level)", inside | {location.id})
    ancestors: list[Location] = []
    node = location.parent
    while node is not None:
        ancestors.insert(0, node)
        node = node.parent
    return render_template(
        "schools/location.html",
        location=location,
        ancestors=ancestors,
        kind_label=KIND_LABELS[location.kind],
        children=services.children_of(session, location),
        placed=services.location_devices(session, location),
        counts=services.storage_counts(session, current_user.school_id),
        form=form,
        confirm=ConfirmForm(formdata=None),
        error=error,
    ), status


@bp.get("/locations/<int:location_id>")
@requires(Permission.LOCATIONS_READ)
def location(location_id: int) -> tuple[str, int]:
    found = services.get_location(db_session(), current_user.school_id, location_id)
    return _location_page(found)


@bp.post("/locations/<int:location_id>")
@requires(Permission.LOCATIONS_WRITE)
def edit_location(location_id: int) -> Response | tuple[str, int]:
    session = db_session()
    found = services.get_location(session, current_user.school_id, location_id)
    form = LocationEditForm()
    form.parent_id.choices = _parent_choices(
        list(services.locations(session, current_user.school_id)), "", set()
    )
    if not form.validate_on_submit():
        return _location_page(found, form, "Check the highlighted details.", 400)
    with refusing(None) as refused:
        services.edit_location(
            session,
            actor=current_user,
            location_id=found.id,
            changes=form.changes(storage=found.is_storage),
        )
    if refused.error:
        return _location_page(found, form, _problem(refused.error), refused.error.status)
    flash("Saved.", "success")
    return redirect(url_for("schools.location", location_id=found.id))


@bp.post("/locations/<int:location_id>/delete")
@requires(Permission.LOCATIONS_WRITE)
def delete_location(location_id: int) -> Response | tuple[str, int]:
    session = db_session()
    found = services.get_location(session, current_user.school_id, location_id)
    name, parent_id = found.name, found.parent_id
    if not ConfirmForm().validate_on_submit():
        return _location_page(found, None, "This form has expired; reload the page.", 400)
    with refusing(None) as refused:
        services.delete_location(session, actor=current_user, location_id=found.id)
    if refused.error:
        return _location_page(found, None, _problem(refused.error), refused.error.status)
    flash(f"{name} deleted.", "success")
    if parent_id is not None:
        return redirect(url_for("schools.location", location_id=parent_id))
    return redirect(url_for("schools.locations"))


# --- terms ----------------------------------------------------------------------------------


def _terms_page(
    failed: TermForm | None = None,
    failed_id: int | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    items = services.terms(db_session(), current_user.school_id)
    forms = {
        term.id: failed
        if failed is not None and term.id == failed_id
        else TermForm(formdata=None, obj=term, prefix=f"t{term.id}")
        for term in items
    }
    return render_template(
        "schools/terms.html",
        terms=items,
        forms=forms,
        confirm=ConfirmForm(formdata=None),
        error=error,
        error_id=failed_id,
    ), status


@bp.get("/terms")
@requires(Permission.TERMS_MANAGE)
def terms() -> tuple[str, int]:
    return _terms_page()


@bp.post("/terms/<int:term_id>")
@requires(Permission.TERMS_MANAGE)
def edit_term(term_id: int) -> Response | tuple[str, int]:
    form = TermForm(prefix=f"t{term_id}")
    if not form.validate_on_submit():
        return _terms_page(form, term_id, "Enter all four dates.", 400)
    with refusing(None) as refused:
        term = services.update_term(
            db_session(),
            actor=current_user,
            term_id=term_id,
            changes={name: getattr(form, name).data for name in services.TERM_DATES},
        )
    if refused.error:
        return _terms_page(form, term_id, _problem(refused.error), refused.error.status)
    flash(f"{term.name} saved.", "success")
    return redirect(url_for("schools.terms"))


@bp.post("/terms/next-year")
@requires(Permission.TERMS_MANAGE)
def add_next_year() -> Response | tuple[str, int]:
    if not ConfirmForm().validate_on_submit():
        return _terms_page(error="This form has expired; reload the page.", status=400)
    with refusing(None) as refused:
        added = services.add_next_year_terms(db_session(), actor=current_user)
    if refused.error:
        return _terms_page(error=_problem(refused.error), status=refused.error.status)
    names = ", ".join(t.name for t in added)
    flash(f"Added {names}. Check them against your local authority's dates.", "success")
    return redirect(url_for("schools.terms"))


def _networks_page(
    form: NetworkForm, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    session = db_session()
    sites = [
        p
        for p in services.locations(session, current_user.school_id)
        if p.kind == LocationKind.SITE
    ]
    form.site_id.choices = [("", "Whole school"), *((str(s.id), s.name) for s in sites)]
    return render_template(
        "schools/networks.html",
        networks=services.networks(session, current_user.school_id),
        form=form,
        remove_form=ConfirmForm(),
        error=error,
    ), status


@bp.get("/locations/networks")
@requires(Permission.LOCATIONS_READ)
def networks() -> tuple[str, int]:
    return _networks_page(NetworkForm(formdata=None))


@bp.post("/locations/networks")
@requires(Permission.LOCATIONS_WRITE)
def add_network() -> Response | tuple[str, int]:
    form = NetworkForm()
    if not form.validate_on_submit():
        return _networks_page(form, "Check the highlighted details.", 400)
    with refusing(None) as refused:
        services.add_network(db_session(), current_user, **form.values())
    if refused.error:
        return _networks_page(form, _problem(refused.error), refused.error.status)
    flash("Network added: devices on it count as in school.", "success")
    return redirect(url_for("schools.networks"))


@bp.post("/locations/networks/<int:network_id>/remove")
@requires(Permission.LOCATIONS_WRITE)
def remove_network(network_id: int) -> Response | tuple[str, int]:
    if not ConfirmForm().validate_on_submit():
        return _networks_page(NetworkForm(formdata=None), "The form expired: try again.", 400)
    with refusing(None) as refused:
        services.remove_network(db_session(), current_user, network_id)
    if refused.error:
        return _networks_page(
            NetworkForm(formdata=None), _problem(refused.error), refused.error.status
        )
    flash("Network removed from the school's list.", "success")
    return redirect(url_for("schools.networks"))
