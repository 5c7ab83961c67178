"""A live Trolley over real HTTP: a werkzeug server thread on a migrated, seeded SQLite file."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from server import create_app
from server.auth.models import Role, User
from server.auth.permissions import TOTP_REQUIRED
from server.auth.services import create_user, issue_token
from server.schools.demo import DEMO_PASSWORD, seed_demo
from server.schools.models import School
from server.schools.services import create_school
from tests.helpers import migrated_sqlite, unused_code
from tests.server.conftest import CSRF_RE, cheap_password_hashing

OTHER_PASSWORD = "elmwood-other-school-1"
# The demo school's second factors: its privileged roles log in over HTTP with a code.
SECOND_FACTORS: dict[str, str] = {}
__all__ = ["cheap_password_hashing"]  # Argon2 at a test-sized cost, as in the server suite


@dataclass
class LiveTrolley:
    """A running server, its app (for the url map) and who can use it."""

    url: str
    app: Flask
    school: School
    other_school: School
    # Bearer headers by role, for the demo school and for the other school.
    tokens: dict[Role, dict[str, str]] = field(default_factory=dict)
    other_tokens: dict[Role, dict[str, str]] = field(default_factory=dict)
    other_users: dict[Role, User] = field(default_factory=dict)
    other_totp: str = ""

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a read-only query, closed at once (SQLite has a single writer)."""
        with self.app.extensions["trolley.db"].engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())


def serve(app: Flask) -> tuple[str, Callable[[], None]]:
    """Serve an app on a free 127.0.0.1 port in a thread; returns its URL and a stop function."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


def build_app(tmp: Path, **overrides: Any) -> Flask:
    """A migrated SQLite file in `tmp` and an app on it, configured like a real install."""
    url = migrated_sqlite(tmp / "trolley.db")
    config: dict[str, Any] = {
        "database_url": url,
        "instance_dir": tmp / "instance",
        "secret_key": secrets.token_urlsafe(48),
        "data_keys": [Fernet.generate_key().decode()],
    }
    config.update(overrides)
    return create_app(config)


def _headers(session: Session, user: User) -> dict[str, str]:
    _token, plain = issue_token(session, user, "security tests")
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTrolley]:
    """The demo school plus a second school with one person per role, served over HTTP."""
    yield from start_live(tmp_path_factory.mktemp("live"))


def start_live(tmp: Path) -> Iterator[LiveTrolley]:
    """Build, seed and serve a LiveTrolley in `tmp` until the generator is closed."""
    # Plain http on 127.0.0.1, so the session cookie may not be Secure (the demo does the same).
    app = build_app(tmp, secure_cookies=False)
    db = app.extensions["trolley.db"]
    with db.begin() as session:
        school, _logins = seed_demo(session)
        other = create_school(session, slug="elmwood", name="Elmwood Primary")
        session.flush()
        other_users = {
            role: create_user(
                session,
                actor=None,
                school=other,
                email=f"{role.value}@elmwood.example",
                name=f"Elmwood {role.label}",
                role=role,
                password=OTHER_PASSWORD,
            )
            for role in Role
        }
        other_totp = pyotp.random_base32()
        sealed = app.extensions["trolley.box"].seal(other_totp)
        for user in other_users.values():
            user.totp_secret_sealed = sealed  # lets the roles that need a code log in over HTTP
        session.flush()
        mine = {u.role: u for u in session.scalars(select(User).where(User.school_id == school.id))}
        demo_totp = pyotp.random_base32()
        for user in mine.values():
            if user.role in TOTP_REQUIRED:
                user.totp_secret_sealed = app.extensions["trolley.box"].seal(demo_totp)
                SECOND_FACTORS[user.email] = demo_totp
        tokens = {role: _headers(session, user) for role, user in mine.items()}
        other_tokens = {role: _headers(session, user) for role, user in other_users.items()}
        session.expunge_all()
    url, stop = serve(app)
    try:
        yield LiveTrolley(
            url=url,
            app=app,
            school=school,
            other_school=other,
            tokens=tokens,
            other_tokens=other_tokens,
            other_users=other_users,
            other_totp=other_totp,
        )
    finally:
        stop()


def form_token(http: requests.Session, url: str) -> str:
    """The CSRF token on a real form page, valid for this session."""
    match = CSRF_RE.search(http.get(url, timeout=10).text)
    assert match, f"no CSRF token on {url}"
    return match.group(1) or match.group(2)


def log_in(
    base: str, email: str, password: str = DEMO_PASSWORD, totp_secret: str | None = None
) -> requests.Session:
    """A real browser-like log-in: the form with its CSRF token, then the code if one is set."""
    http = requests.Session()
    response = http.post(
        f"{base}/login",
        data={
            "csrf_token": form_token(http, f"{base}/login"),
            "email": email,
            "password": password,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:300]
    if response.headers["Location"].endswith("/login/code"):
        totp_secret = totp_secret or SECOND_FACTORS.get(email)
        assert totp_secret, f"{email} needs a second factor"
        code = unused_code(totp_secret, email)
        response = http.post(
            f"{base}/login/code",
            data={"csrf_token": form_token(http, f"{base}/login/code"), "code": code},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text[:300]
    assert response.headers["Location"] == "/", response.headers["Location"]
    return http
