"""Unblock requests take the address a teacher pastes and show what it will unblock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.devices.models import Device
from server.errors import ValidationFailed
from server.profiles import services
from server.profiles.models import Profile
from tests.server.conftest import csrf_token, log_in_as
from tests.server.profiles.conftest import NOW, Places
from tests.server.profiles.test_exceptions import _allowed

VIDEO = "https://www.youtube.com/watch?v=abc123"


def _ask(session: Session, teacher: User, places: Places, urls: list[str]) -> int:
    return services.request_exception(
        session,
        teacher,
        urls=urls,
        reason="Science: the water cycle video for the lesson",
        class_label="Year 4 Oak",
        target_type="location",
        target_id=places.trolley.id,
        starts_at=NOW,
        ends_at=NOW + timedelta(days=1),
        now=NOW,
    ).id


def test_a_pasted_video_link_unblocks_the_path_it_is_on(
    session: Session,
    lead: User,
    teacher: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-3: the whole address a teacher pastes is accepted, kept as what is unblocked."""
    device = make_device(home=places.trolley)
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    exception_id = _ask(session, teacher, places, [VIDEO])
    exception = services.get_exception(session, teacher, exception_id)
    assert exception.urls == ["https://www.youtube.com/watch"]
    asked = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "filter_exception.requested")
    ).one()
    assert asked.details["urls"] == ["https://www.youtube.com/watch"]  # the trail says the same
    services.approve_exception(session, lead, exception_id, now=NOW)
    assert "youtube.com/watch" in _allowed(session, device)


@pytest.mark.parametrize(
    ("typed", "address", "reach"),
    [
        (VIDEO, "https://www.youtube.com/watch", "youtube.com/watch and every page under it"),
        ("www.bbc.co.uk/bitesize", "https://www.bbc.co.uk/bitesize", "bbc.co.uk/bitesize and"),
        ("https://scratch.mit.edu/#editor", "https://scratch.mit.edu", "all of scratch.mit.edu"),
        ("https://scratch.mit.edu/", "https://scratch.mit.edu", "all of scratch.mit.edu"),
    ],
)
def test_each_address_is_shown_as_what_it_unblocks(typed: str, address: str, reach: str) -> None:
    (shown,) = services.preview_unblock([typed])
    assert (shown.typed, shown.address, shown.problem) == (typed, address, None)
    assert shown.reach.startswith(reach)


def test_what_a_filter_cannot_match_is_said_plainly() -> None:
    (video,) = services.preview_unblock([VIDEO])
    assert "?v=abc123" in video.reach and "not only" in video.reach
    (bad,) = services.preview_unblock(["ftp://files.example.com"])
    assert bad.address is None and bad.problem is not None and "https://" in bad.problem
    assert services.preview_unblock(["", "  "]) == []


def test_two_links_to_the_same_page_are_asked_for_once(
    session: Session, teacher: User, places: Places
) -> None:
    exception_id = _ask(session, teacher, places, [VIDEO, "https://www.youtube.com/watch?v=zzz"])
    assert services.get_exception(session, teacher, exception_id).urls == [
        "https://www.youtube.com/watch"
    ]


def test_an_address_that_cannot_be_filtered_is_still_refused(
    session: Session, teacher: User, places: Places
) -> None:
    with pytest.raises(ValidationFailed, match="not a valid site name"):
        _ask(session, teacher, places, ["https://intranet/page"])
    assert services.list_exceptions(session, teacher) == []


def test_the_form_takes_a_pasted_link_and_says_what_it_unblocks(
    client: FlaskClient, session: Session, teacher: User, places: Places
) -> None:
    log_in_as(client, teacher)
    form = client.get("/filter-exceptions/new").get_data(as_text=True)
    assert 'id="unblock-preview"' in form and "unblock.js" in form
    tomorrow = datetime.now() + timedelta(days=1)
    asked = client.post(
        "/filter-exceptions/new",
        data={
            "csrf_token": csrf_token(client, "/filter-exceptions/new"),
            "urls": VIDEO + "\n",
            "reason": "Science: the water cycle video",
            "class_label": "Year 4 Oak",
            "target": f"location:{places.trolley.id}",
            "starts_at": tomorrow.strftime("%Y-%m-%dT09:00"),
            "ends_at": tomorrow.strftime("%Y-%m-%dT15:00"),
        },
        follow_redirects=True,
    )
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200, page
    assert "youtube.com/watch and every page under it" in page


def test_the_preview_endpoint_answers_as_the_teacher_types(
    client: FlaskClient, teacher: User, token_for: Callable[[User], dict[str, str]]
) -> None:
    answer = client.get(
        "/api/v1/filter-exceptions/preview",
        query_string={"urls": f"{VIDEO}\nnot a site\n"},
        headers=token_for(teacher),
    )
    assert answer.status_code == 200, answer.get_json()
    video, bad = answer.get_json()["items"]
    assert video["address"] == "https://www.youtube.com/watch" and video["problem"] is None
    assert bad["address"] is None and bad["problem"]
