"""An error in the middle of a request still gets Trolley's own error page, never the web
server's bare "Internal Server Error"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import IntegrityError, OperationalError

from server.auth.models import Role, User
from server.extensions import db_session
from server.schools.models import Location, LocationKind
from tests.server.conftest import log_in_as


@pytest.mark.parametrize("failure", ["broken", "locked"])
def test_a_database_error_half_way_through_a_page_gets_the_error_page(
    app: Flask, client: FlaskClient, make_user: Callable[..., User], failure: str
) -> None:
    """A write that fails leaves the request's transaction unusable; the error page (its
    navigation and the school's name read the database too) must still be drawn."""
    log_in_as(client, make_user(Role.SBM))

    @app.get("/half-way")
    def half_way() -> str:
        session = db_session()
        session.add(Location(school_id=None, name="Nowhere", kind=LocationKind.TROLLEY))
        try:
            session.flush()
        except IntegrityError:
            pass  # swallowed, as a careless caller might: the transaction is now unusable
        if failure == "locked":
            raise OperationalError("UPDATE devices", {}, Exception("database is locked"))
        raise RuntimeError("the view went wrong after its failed write")

    page = client.get("/half-way")
    body = page.get_data(as_text=True)
    assert page.status_code == (503 if failure == "locked" else 500)
    assert "<nav" in body and "Trolley" in body
    wording = "Try again" if failure == "locked" else "Something went wrong on our side"
    assert wording in body
