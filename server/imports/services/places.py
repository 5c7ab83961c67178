"""Places named in the file: found by name or path, and where missing ones would go."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.orm import Session

from server.imports.pages import Plan, Problem
from server.imports.services.columns import column_letter
from server.imports.services.shared import _norm
from server.schools.models import ALLOWED_PARENTS, Location, LocationKind
from server.schools.services import location_path, locations


class Places:
    """The school's places, found by name or by path ('Main building › Year 4 trolley')."""

    def __init__(self, places: Sequence[Location]) -> None:
        self.by_id = {p.id: p for p in places}
        self.paths = {p.id: [_norm(part) for part in location_path(p).split("›")] for p in places}
        self._cache: dict[str, tuple[Location | None, str | None]] = {}

    def find(self, text: str) -> tuple[Location | None, str | None]:
        """(the place, None), (None, why not) if ambiguous, or (None, None) if unknown."""
        key = _norm(text)
        if key not in self._cache:
            self._cache[key] = self._find(text)
        return self._cache[key]

    def _find(self, text: str) -> tuple[Location | None, str | None]:
        parts = [_norm(p) for p in re.split(r"[›>]", text) if p.strip()]
        if not parts:
            return None, None
        matches = [pid for pid, path in self.paths.items() if path[-len(parts) :] == parts]
        if len(matches) == 1:
            return self.by_id[matches[0]], None
        if len(matches) > 1:
            options = "; ".join(sorted(location_path(self.by_id[m]) for m in matches))
            return None, f"More than one place is called that ({options}): write the full path."
        return None, None


def _resolve_parent(session: Session, school_id: int, plan: Plan) -> None:
    """Decide (and describe) where places named in the file but missing would be added."""
    if not plan.missing_places:
        return
    places = locations(session, school_id)
    allowed = ALLOWED_PARENTS[LocationKind.ROOM]
    chosen = plan.options.location_parent_id
    if chosen is not None:
        parent = next((p for p in places if p.id == chosen), None)
        if parent is None or parent.kind not in allowed:
            plan.problems.append(
                Problem(1, None, None, "New rooms can only go in a site or a building.")
            )
            return
    else:
        buildings = [p for p in places if p.kind is LocationKind.BUILDING]
        sites = [p for p in places if p.kind is LocationKind.SITE]
        parent = buildings[0] if len(buildings) == 1 else None
        parent = parent or (sites[0] if len(sites) == 1 and not buildings else None)
        if parent is None and (buildings or sites):
            plan.places_parent = None
            if plan.options.create_locations:
                plan.problems.append(
                    Problem(1, None, None, "Choose the site or building the new rooms go in.")
                )
            return
    if parent is None:
        plan.places_parent = "a new site named after the school"
    else:
        plan.places_parent_id = parent.id
        plan.places_parent = location_path(parent)


def _missing_place_problems(plan: Plan) -> None:
    if plan.options.create_locations:
        return
    where = f" (as a room in {plan.places_parent})" if plan.places_parent else ""
    for name, rows in plan.missing_places.items():
        for number in rows:
            column = plan.mapping.index("location")
            plan.problems.append(
                Problem(
                    number,
                    column_letter(column),
                    plan.headings[column],
                    f"“{name}” is not in Places yet. Choose “Add missing places” to add it"
                    f"{where}, or correct the name.",
                    name,
                )
            )
    bad = set(plan.bad_rows)
    plan.rows = [r for r in plan.rows if r.row not in bad]
