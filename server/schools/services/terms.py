"""Schools and their terms."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.services import record
from server.auth.models import User
from server.errors import Conflict, NotFound, ValidationFailed
from server.schools.models import (
    School,
    Term,
)
from server.schools.services.clock import day_text

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def create_school(session: Session, *, slug: str, name: str, actor: User | None = None) -> School:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise ValidationFailed("A school's short name uses lower-case letters, digits and dashes.")
    if session.scalar(select(School.id).where(School.slug == slug)) is not None:
        raise Conflict(f"There is already a school called {slug!r}.")
    school = School(slug=slug, name=name.strip())
    session.add(school)
    session.flush()
    for term in uk_default_terms(date.today()):
        term.school_id = school.id
        session.add(term)
    record(
        session,
        actor=actor,
        action="school.created",
        school_id=school.id,
        target_type="school",
        target_id=school.id,
        details={"slug": slug, "name": school.name},
    )
    return school


def _monday_on_or_after(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7)


def uk_default_terms(today: date) -> list[Term]:
    """The usual English pattern for the academic year containing `today` (editable later)."""
    year = today.year if today.month >= 9 else today.year - 1
    autumn = _monday_on_or_after(date(year, 9, 1))
    spring = _monday_on_or_after(date(year + 1, 1, 3))
    summer = _monday_on_or_after(date(year + 1, 4, 15))
    label = f"{year}/{str(year + 1)[-2:]}"
    return [
        Term(
            name=f"Autumn {label}",
            starts_on=autumn,
            half_term_starts_on=_monday_on_or_after(date(year, 10, 23)),
            half_term_ends_on=_monday_on_or_after(date(year, 10, 23)) + timedelta(days=6),
            ends_on=date(year, 12, 19),
        ),
        Term(
            name=f"Spring {label}",
            starts_on=spring,
            half_term_starts_on=_monday_on_or_after(date(year + 1, 2, 13)),
            half_term_ends_on=_monday_on_or_after(date(year + 1, 2, 13)) + timedelta(days=6),
            ends_on=date(year + 1, 3, 31),
        ),
        Term(
            name=f"Summer {label}",
            starts_on=summer,
            half_term_starts_on=_monday_on_or_after(date(year + 1, 5, 25)),
            half_term_ends_on=_monday_on_or_after(date(year + 1, 5, 25)) + timedelta(days=6),
            ends_on=date(year + 1, 7, 22),
        ),
    ]


def terms(session: Session, school_id: int) -> Sequence[Term]:
    return session.scalars(
        select(Term).where(Term.school_id == school_id).order_by(Term.starts_on)
    ).all()


TERM_DATES = ("starts_on", "half_term_starts_on", "half_term_ends_on", "ends_on")


def check_term_dates(session: Session, school_id: int, term: Term) -> None:
    """In order inside the term, and no overlap with the school's other terms."""
    if not term.starts_on <= term.half_term_starts_on:
        raise ValidationFailed(
            f"{term.name}: the half term cannot start before the term does.",
            details=[{"field": "half_term_starts_on", "message": "Before the start of term."}],
        )
    if not term.half_term_starts_on <= term.half_term_ends_on:
        raise ValidationFailed(
            f"{term.name}: the half term cannot end before it starts.",
            details=[{"field": "half_term_ends_on", "message": "Before the half term starts."}],
        )
    if not term.half_term_ends_on <= term.ends_on:
        raise ValidationFailed(
            f"{term.name}: the term cannot end before its half term does.",
            details=[{"field": "ends_on", "message": "Before the half term ends."}],
        )
    query = select(Term).where(
        Term.school_id == school_id,
        Term.starts_on <= term.ends_on,
        Term.ends_on >= term.starts_on,
    )
    if term.id is not None:
        query = query.where(Term.id != term.id)
    other = session.scalars(query.order_by(Term.starts_on)).first()
    if other is not None:
        raise ValidationFailed(
            f"{term.name} would overlap {other.name} "
            f"({day_text(other.starts_on)} to {day_text(other.ends_on)}).",
            details=[{"field": "starts_on", "message": f"Overlaps {other.name}."}],
        )


def update_term(
    session: Session, *, actor: User, term_id: int, changes: Mapping[str, date]
) -> Term:
    """Correct a term's dates (the termly audit and half-termly photo checks follow them)."""
    unknown = set(changes) - set(TERM_DATES)
    if unknown:
        raise ValidationFailed(
            "Only a term's dates can be changed.",
            details=[{"field": name, "message": "not editable"} for name in sorted(unknown)],
        )
    term = session.scalar(select(Term).where(Term.id == term_id, Term.school_id == actor.school_id))
    if term is None:
        raise NotFound("No such term in your school.")
    before = {key: getattr(term, key) for key in changes}
    # Check a copy first, so a refused change leaves the term as it was.
    proposed = Term(id=term.id, name=term.name, **{k: getattr(term, k) for k in TERM_DATES})
    for key, value in changes.items():
        setattr(proposed, key, value)
    check_term_dates(session, actor.school_id, proposed)
    for key, value in changes.items():
        setattr(term, key, value)
    changed = {
        key: [before[key].isoformat(), value.isoformat()]
        for key, value in changes.items()
        if before[key] != value
    }
    if changed:
        record(
            session,
            actor=actor,
            action="term.edited",
            school_id=actor.school_id,
            target_type="term",
            target_id=term.id,
            details={"name": term.name, "changes": changed},
        )
    session.commit()
    return term


def _academic_year(day: date) -> int:
    """2025 for any day from September 2025 to August 2026."""
    return day.year if day.month >= 9 else day.year - 1


def add_next_year_terms(session: Session, *, actor: User, today: date | None = None) -> list[Term]:
    """Add the following academic year's terms with the usual English dates (edit them after)."""
    existing = terms(session, actor.school_id)
    if existing:
        year = _academic_year(existing[-1].starts_on) + 1
    else:
        year = _academic_year(today or date.today())
    new = uk_default_terms(date(year, 9, 1))
    names = {term.name for term in existing}
    if any(term.name in names for term in new):
        raise Conflict(f"The terms for {year}/{str(year + 1)[-2:]} are already set.")
    for term in new:
        term.school_id = actor.school_id
        check_term_dates(session, actor.school_id, term)
    session.add_all(new)
    session.flush()
    record(
        session,
        actor=actor,
        action="terms.added",
        school_id=actor.school_id,
        target_type="school",
        target_id=actor.school_id,
        details={"terms": [term.name for term in new]},
    )
    session.commit()
    return new
