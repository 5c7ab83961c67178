"""Numbers too big for the database are refused as a 4xx, never a 500 (PostgreSQL checks)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from server.auth.models import User
from tests.server.audits.conftest import Fleet

HUGE = 2**40


def test_huge_ids_are_plain_refusals(
    client: FlaskClient, lead: User, fleet: Fleet, token_for: Callable[[User], dict[str, str]]
) -> None:
    auth = token_for(lead)
    for path in (
        f"/api/v1/audits/{HUGE}/progress",
        f"/api/v1/audits/{HUGE}/report",
        f"/api/v1/photo-checks/{HUGE}",
        f"/api/v1/spot-checks/{HUGE}",
    ):
        response = client.get(path, headers=auth)
        assert response.status_code in (400, 404), (path, response.get_json())
    started = client.post("/api/v1/audits", json={}, headers=auth).get_json()
    for body in (
        {"code": "Y4-1", "location_id": HUGE},
        {"code": "Y4-1", "location_id": -1},
    ):
        response = client.post(f"/api/v1/audits/{started['id']}/scans", json=body, headers=auth)
        assert response.status_code == 400, body
    for body in ({"term_id": HUGE}, {"location_ids": [HUGE]}):
        response = client.post("/api/v1/audits", json=body, headers=auth)
        assert response.status_code in (400, 404, 409), body
    assert client.post("/api/v1/spot-checks", json={"size": HUGE}, headers=auth).status_code == 400
