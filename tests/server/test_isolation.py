"""A user of school A can neither read nor change anything of school B."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.auth.services import issue_token
from server.devices.models import Device
from server.schools.models import School
from tests.server.conftest import log_in_as


def test_school_a_cannot_see_school_b(
    client: FlaskClient,
    session: Session,
    other_school: School,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1 / P-REG-1: every query is scoped to the user's school, pages and API alike."""
    mine = make_device()
    theirs = make_device(in_school=other_school, asset_tag="ELM-001", serial="ELMSERIAL1")
    sbm = make_user(Role.SBM)
    their_admin = make_user(Role.ADMIN, in_school=other_school)
    _tok, their_plain = issue_token(session, their_admin, "theirs")
    session.commit()
    their_token = session.query(type(_tok)).filter_by(user_id=their_admin.id).one()

    headers = token_for(sbm)
    listing = client.get("/api/v1/devices", headers=headers).get_json()
    assert [d["asset_tag"] for d in listing["items"]] == [mine.asset_tag]
    assert client.get("/api/v1/devices?q=ELM", headers=headers).get_json()["total"] == 0
    assert client.get(f"/api/v1/devices/{theirs.asset_tag}", headers=headers).status_code == 404
    people = client.get("/api/v1/users", headers=headers).get_json()["items"]
    assert their_admin.email not in {p["email"] for p in people}
    assert client.delete(f"/api/v1/tokens/{their_token.id}", headers=headers).status_code == 404
    activity = client.get("/api/v1/activity", headers=headers).get_json()["items"]
    assert all("elmwood" not in str(entry["details"]) for entry in activity)

    log_in_as(client, sbm)
    assert client.get(f"/devices/{theirs.asset_tag}").status_code == 404
    assert client.get(f"/d/{theirs.asset_tag}", follow_redirects=True).status_code == 404
    assert theirs.serial not in client.get("/devices?q=ELM").get_data(as_text=True)
    assert their_admin.email not in client.get("/people").get_data(as_text=True)

    # The same tag may exist in both schools; each sees only its own.
    make_device(in_school=other_school, asset_tag=mine.asset_tag, serial="ELMSERIAL2")
    page = client.get(f"/devices/{mine.asset_tag}").get_data(as_text=True)
    assert mine.serial in page and "ELMSERIAL2" not in page
    assert session.get(User, their_admin.id) is not None and their_plain
