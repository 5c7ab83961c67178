"""The icon browsers show in tabs and bookmarks: served to anyone, linked from every page."""

from __future__ import annotations

import io
from collections.abc import Callable

from flask.testing import FlaskClient
from PIL import Image

from server.auth.models import User
from tests.server.conftest import log_in_as


def test_favicon_is_served_to_anyone_and_linked_from_every_page(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """Browsers ask for /favicon.ico on every page; it was a 404 each time."""
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.mimetype in ("image/x-icon", "image/vnd.microsoft.icon")
    assert "max-age" in icon.headers["Cache-Control"]
    with Image.open(io.BytesIO(icon.data)) as image:
        assert image.format == "ICO"
        assert {(16, 16), (32, 32)} <= set(image.info["sizes"])
    login = client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/favicon.ico"' in login
    assert 'type="image/svg+xml"' in login
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200 and svg.data.startswith(b"<svg")
    log_in_as(client, make_user())
    home = client.get("/").get_data(as_text=True)
    assert '<link rel="icon" href="/favicon.ico"' in home
    assert client.get("/favicon.ico").status_code == 200
