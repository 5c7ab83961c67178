"""Term dates: edited in order without overlaps, next year added with the usual dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.errors import Conflict, NotFound, ValidationFailed
from server.schools import services
from server.schools.models import School, Term
from server.schools.services.terms import _monday_on_or_after
from tests.server.conftest import csrf_token, log_in_as

Headers = Callable[[User], dict[str, str]]


def school_terms(session: Session, school: School) -> list[Term]:
    return list(services.terms(session, school.id))


def test_a_new_school_has_this_years_three_terms(session: Session, school: School) -> None:
    autumn, spring, summer = school_terms(session, school)
    year = autumn.starts_on.year
    assert [t.name for t in (autumn, spring, summer)] == [
        f"Autumn {year}/{str(year + 1)[-2:]}",
        f"Spring {year}/{str(year + 1)[-2:]}",
        f"Summer {year}/{str(year + 1)[-2:]}",
    ]
    for term in (autumn, spring, summer):
        assert term.starts_on.weekday() == 0  # terms start on a Monday
        assert term.starts_on <= term.half_term_starts_on <= term.half_term_ends_on
        assert term.half_term_ends_on <= term.ends_on
    assert autumn.ends_on < spring.starts_on and spring.ends_on < summer.starts_on


def test_editing_a_terms_dates_is_recorded(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    admin = make_user(Role.ADMIN)
    autumn = school_terms(session, school)[0]
    old_end = autumn.ends_on
    edited = services.update_term(
        session,
        actor=admin,
        term_id=autumn.id,
        changes={"ends_on": old_end - timedelta(days=2), "starts_on": autumn.starts_on},
    )
    assert edited.ends_on == old_end - timedelta(days=2)
    [entry] = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "term.edited")
    ).all()
    assert entry.actor_id == admin.id
    assert entry.details == {
        "name": autumn.name,
        "changes": {"ends_on": [old_end.isoformat(), (old_end - timedelta(days=2)).isoformat()]},
    }


@pytest.mark.parametrize(
    ("shift", "words"),
    [
        ({"half_term_starts_on": -60}, "half term cannot start before the term"),
        ({"half_term_ends_on": -30}, "half term cannot end before it starts"),
        ({"ends_on": -70}, "term cannot end before its half term"),
        ({"ends_on": 40}, "would overlap Spring"),
        ({"starts_on": -120}, None),  # nothing before autumn: fine
    ],
)
def test_term_dates_stay_in_order_and_never_overlap(
    session: Session,
    school: School,
    make_user: Callable[..., User],
    shift: dict[str, int],
    words: str | None,
) -> None:
    admin = make_user(Role.ADMIN)
    autumn = school_terms(session, school)[0]
    before = {k: getattr(autumn, k) for k in services.TERM_DATES}
    changes = {k: getattr(autumn, k) + timedelta(days=v) for k, v in shift.items()}
    if words is None:
        services.update_term(session, actor=admin, term_id=autumn.id, changes=changes)
        return
    with pytest.raises(ValidationFailed, match=words):
        services.update_term(session, actor=admin, term_id=autumn.id, changes=changes)
    session.rollback()
    session.expire_all()
    assert {k: getattr(session.get(Term, autumn.id), k) for k in services.TERM_DATES} == before


def test_only_the_dates_of_ones_own_schools_terms(
    session: Session, school: School, other_school: School, make_user: Callable[..., User]
) -> None:
    admin = make_user(Role.ADMIN)
    theirs = school_terms(session, other_school)[0]
    for term_id in (theirs.id, 999_999):
        with pytest.raises(NotFound):
            services.update_term(
                session, actor=admin, term_id=term_id, changes={"ends_on": date(2030, 1, 1)}
            )
    with pytest.raises(ValidationFailed, match="Only a term's dates"):
        services.update_term(
            session, actor=admin, term_id=school_terms(session, school)[0].id, changes={"name": 1}
        )


def test_next_years_terms_follow_the_last_ones(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    admin = make_user(Role.ADMIN)
    year = school_terms(session, school)[0].starts_on.year
    added = services.add_next_year_terms(session, actor=admin)
    label = f"{year + 1}/{str(year + 2)[-2:]}"
    assert [t.name for t in added] == [f"Autumn {label}", f"Spring {label}", f"Summer {label}"]
    assert added[0].starts_on == _monday_on_or_after(date(year + 1, 9, 1))
    assert len(school_terms(session, school)) == 6
    entry = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "terms.added")
    ).one()
    assert entry.details == {"terms": [t.name for t in added]}
    # The year after that comes next.
    again = services.add_next_year_terms(session, actor=admin)
    assert again[0].name == f"Autumn {year + 2}/{str(year + 3)[-2:]}"


def test_next_year_is_refused_when_it_would_overlap_or_exists(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    admin = make_user(Role.ADMIN)
    summer = school_terms(session, school)[-1]
    services.update_term(
        session,
        actor=admin,
        term_id=summer.id,
        changes={"ends_on": date(summer.ends_on.year, 9, 20)},  # a summer school running late
    )
    # The dates are in the one format staff read everywhere ('Sun 20 September 2026').
    in_words = r"[A-Z][a-z]{2} \d{1,2} [A-Z][a-z]+ \d{4}"
    with pytest.raises(
        ValidationFailed, match=rf"would overlap Summer .*\({in_words} to {in_words}\)\.$"
    ):
        services.add_next_year_terms(session, actor=admin)
    session.rollback()
    assert len(school_terms(session, school)) == 3

    empty = School(slug="newschool", name="New School")
    session.add(empty)
    session.flush()
    year = summer.starts_on.year
    nobody = make_user(Role.ADMIN, in_school=empty)
    first = services.add_next_year_terms(session, actor=nobody, today=date(year, 1, 10))
    assert first[0].name == f"Autumn {year - 1}/{str(year)[-2:]}"
    session.add(
        Term(
            school_id=empty.id,
            name=f"Autumn {year}/{str(year + 1)[-2:]}",
            starts_on=date(year, 8, 1),
            half_term_starts_on=date(year, 8, 2),
            half_term_ends_on=date(year, 8, 3),
            ends_on=date(year, 8, 4),
        )
    )
    session.flush()
    # Its latest term starts in August, so it belongs to the year before: that year is "next".
    with pytest.raises(Conflict, match="already set"):
        services.add_next_year_terms(session, actor=nobody)


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]  # type: ignore[no-any-return]


def test_terms_over_the_api(
    client: FlaskClient,
    session: Session,
    school: School,
    other_school: School,
    make_user: Callable[..., User],
    token_for: Headers,
) -> None:
    admin = token_for(make_user(Role.ADMIN))
    teacher = token_for(make_user(Role.TEACHER))
    sbm = token_for(make_user(Role.SBM))
    listed = client.get("/api/v1/terms", headers=teacher).get_json()["items"]
    assert len(listed) == 3
    autumn = listed[0]
    path = f"/api/v1/terms/{autumn['id']}"
    _error(client.patch(path, json={"ends_on": "2030-01-01"}, headers=teacher), 403)
    # The SBM keeps the school's calendar as well as the administrator.
    kept = client.patch(path, json={"ends_on": autumn["ends_on"]}, headers=sbm)
    assert kept.status_code == 200
    moved = client.patch(
        path, json={"half_term_ends_on": autumn["half_term_starts_on"]}, headers=admin
    )
    assert moved.status_code == 200
    assert moved.get_json()["half_term_ends_on"] == autumn["half_term_starts_on"]
    bad = _error(client.patch(path, json={"ends_on": listed[1]["ends_on"]}, headers=admin), 400)
    assert "would overlap" in bad["message"] and bad["details"][0]["field"] == "starts_on"
    _error(client.patch(path, json={"ends_on": "31/12/2025"}, headers=admin), 400)
    _error(client.patch(path, json={"name": "Michaelmas"}, headers=admin), 400)
    theirs = school_terms(session, other_school)[0]
    _error(client.patch(f"/api/v1/terms/{theirs.id}", json={}, headers=admin), 404)
    _error(client.patch("/api/v1/terms/999999", json={}, headers=admin), 404)
    added = client.post("/api/v1/terms/next-year", headers=admin)
    assert added.status_code == 201 and len(added.get_json()["items"]) == 3
    _error(client.post("/api/v1/terms/next-year", headers=teacher), 403)
    assert len(client.get("/api/v1/terms", headers=admin).get_json()["items"]) == 6
    assert len(school_terms(session, other_school)) == 3  # theirs are untouched


def test_terms_page(
    client: FlaskClient,
    session: Session,
    school: School,
    other_school: School,
    make_user: Callable[..., User],
) -> None:
    log_in_as(client, make_user(Role.TEACHER))
    assert client.get("/terms").status_code == 403
    assert "Change term dates" not in client.get("/locations").get_data(as_text=True)

    log_in_as(client, make_user(Role.ADMIN))
    assert "Change term dates" in client.get("/locations").get_data(as_text=True)
    page = client.get("/terms")
    assert page.status_code == 200
    autumn, spring, _summer = school_terms(session, school)
    old_end = autumn.ends_on
    token = csrf_token(client, "/terms")
    prefix = f"t{autumn.id}-"
    form = {
        "csrf_token": token,
        prefix + "starts_on": autumn.starts_on.isoformat(),
        prefix + "half_term_starts_on": autumn.half_term_starts_on.isoformat(),
        prefix + "half_term_ends_on": autumn.half_term_ends_on.isoformat(),
        prefix + "ends_on": (old_end - timedelta(days=1)).isoformat(),
    }
    saved = client.post(f"/terms/{autumn.id}", data=form, follow_redirects=True)
    assert f"{autumn.name} saved." in saved.get_data(as_text=True)
    overlap = client.post(
        f"/terms/{autumn.id}", data={**form, prefix + "ends_on": spring.ends_on.isoformat()}
    )
    assert overlap.status_code == 400 and "would overlap" in overlap.get_data(as_text=True)
    missing = client.post(f"/terms/{autumn.id}", data={"csrf_token": token})
    assert missing.status_code == 400 and "Enter all four dates" in missing.get_data(as_text=True)
    theirs = school_terms(session, other_school)[0]
    their_form = {k.replace(prefix, f"t{theirs.id}-"): v for k, v in form.items()}
    assert client.post(f"/terms/{theirs.id}", data=their_form).status_code == 404
    added = client.post("/terms/next-year", data={"csrf_token": token}, follow_redirects=True)
    assert "Added Autumn" in added.get_data(as_text=True)
    assert len(school_terms(session, school)) == 6
    session.expire_all()
    assert session.get(Term, autumn.id).ends_on == old_end - timedelta(days=1)  # type: ignore[union-attr]
