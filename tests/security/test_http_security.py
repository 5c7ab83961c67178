"""Log-in throttling, CSRF, cookies and headers, checked over real HTTP against a live server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from server.auth.models import Role
from server.auth.services import create_user
from server.schools.demo import DEMO_PASSWORD
from server.schools.services import create_school
from tests.security.conftest import LiveTrolley, build_app, form_token, log_in, serve

PASSWORD = "throttle-test-password-1"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    """A server of its own: lockouts here must not spill into other tests' log-ins."""
    app = build_app(tmp_path, secure_cookies=False)
    with app.extensions["trolley.db"].begin() as session:
        school = create_school(session, slug="ashgrove", name="Ashgrove Primary")
        session.flush()
        for name in ("sue", "raj"):
            create_user(
                session,
                actor=None,
                school=school,
                email=f"{name}@ashgrove.example",
                name=name.title(),
                role=Role.SBM,
                password=PASSWORD,
            )
    url, stop = serve(app)
    yield url, app
    stop()


def _attempt(base: str, email: str, password: str) -> requests.Response:
    http = requests.Session()
    return http.post(
        f"{base}/login",
        data={
            "csrf_token": form_token(http, f"{base}/login"),
            "email": email,
            "password": password,
        },
        allow_redirects=False,
        timeout=10,
    )


def _activity(app: Flask, action: str) -> list[tuple[str | None, str]]:
    from sqlalchemy import text

    with app.extensions["trolley.db"].engine.connect() as conn:
        rows = conn.execute(
            text("SELECT actor_label, details FROM activity_entries WHERE action = :a"),
            {"a": action},
        ).all()
    return [(r[0], str(r[1])) for r in rows]


def test_an_account_locks_over_http_and_only_that_account(fresh: tuple[str, Flask]) -> None:
    """P-SEC-1: per-account throttling with a lockout message and one activity entry."""
    base, app = fresh
    for _ in range(4):
        assert _attempt(base, "sue@ashgrove.example", "not-her-password").status_code == 401
    # The e-mail's case does not buy an attacker more guesses.
    assert _attempt(base, "SUE@Ashgrove.example", "not-her-password").status_code == 401
    locked = _attempt(base, "sue@ashgrove.example", PASSWORD)
    assert locked.status_code == 429
    assert "log-in is paused for 15 minutes" in locked.text
    assert "ask your administrator" in locked.text
    entries = _activity(app, "auth.locked_out")
    assert len(entries) == 1
    assert entries[0][0] == "sue@ashgrove.example" and "127.0.0.1" in entries[0][1]
    # Her colleague at the same address is not locked out by her mistakes.
    assert _attempt(base, "raj@ashgrove.example", PASSWORD).status_code == 302
    # Further guesses while locked are refused without adding more lockout entries.
    assert _attempt(base, "sue@ashgrove.example", "again").status_code == 429
    assert len(_activity(app, "auth.locked_out")) == 1


def test_one_address_guessing_many_accounts_is_locked_out_over_http(
    fresh: tuple[str, Flask],
) -> None:
    """P-SEC-1: per-address throttling: spraying guesses across accounts locks the address."""
    base, _app = fresh
    for i in range(20):
        assert _attempt(base, f"guess{i}@ashgrove.example", "spray-password").status_code == 401
    blocked = _attempt(base, "raj@ashgrove.example", PASSWORD)
    assert blocked.status_code == 429
    assert "paused" in blocked.text


def _html_post_rules(app: Flask) -> list[str]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.endpoint == "static":
            continue
        if "POST" in rule.methods:
            url = rule.rule.replace("<asset_tag>", "OAK-IPAD-001")
            url = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", url)
            rules.append(re.sub(r"<int:\w+>", "1", url))
    return rules


def _activity_count(live: LiveTrolley) -> int:
    return int(live.rows("SELECT count(*) FROM activity_entries")[0][0])


def test_every_form_refuses_a_post_without_a_csrf_token(live: LiveTrolley) -> None:
    """P-SEC-1: CSRF on every form: each HTML POST route refuses a missing or forged token."""
    http = log_in(live.url, "sbm@oakfield.example", DEMO_PASSWORD)
    before = _activity_count(live)
    rules = _html_post_rules(live.app)
    assert len(rules) >= 40
    refused = []
    for url in rules:
        for data in ({}, {"csrf_token": "forged-token"}):
            response = http.post(f"{live.url}{url}", data=data, allow_redirects=False, timeout=30)
            if response.status_code != 400 or "Reload the page" not in response.text:
                refused.append(f"POST {url} {data} -> {response.status_code}")
    assert not refused, "forms that accepted a request without a valid CSRF token:\n" + "\n".join(
        refused
    )
    assert _activity_count(live) == before  # nothing was done by any of them
    assert http.get(f"{live.url}/", timeout=10).status_code == 200  # still logged in


def test_the_api_refuses_cookie_writes_without_a_csrf_token(live: LiveTrolley) -> None:
    """P-SEC-1: a browser session cannot be ridden into API writes from another site."""
    http = log_in(live.url, "sbm@oakfield.example", DEMO_PASSWORD)
    assert http.get(f"{live.url}/api/v1/me", timeout=10).status_code == 200
    writes = [
        (method, rule.rule)
        for rule in live.app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"GET", "HEAD", "OPTIONS"}
    ]
    accepted = []
    for method, rule in writes:
        url = re.sub(r"<int:\w+>", "1", rule.replace("<asset_tag>", "OAK-IPAD-001"))
        response = http.request(method, f"{live.url}{url}", json={}, timeout=30)
        if response.status_code != 400 and response.status_code != 401:
            accepted.append(f"{method} {url} -> {response.status_code}")
    assert not accepted, "\n".join(accepted)


def _cookie(response: requests.Response, name: str) -> str:
    headers = response.raw.headers.getlist("Set-Cookie")
    found = [h for h in headers if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie in {headers}"
    return found[0]


def test_session_cookie_flags_outside_the_demo(tmp_path: Path) -> None:
    """P-SEC-1: secure cookie settings: HttpOnly, SameSite=Lax and Secure on a real install."""
    url, stop = serve(build_app(tmp_path))  # no demo, no overrides: a production-like config
    try:
        cookie = _cookie(requests.get(f"{url}/login", timeout=10), "trolley_session")
    finally:
        stop()
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "secure" in flags and "samesite=lax" in flags


def test_the_demo_cookie_is_http_only_and_lax(live: LiveTrolley) -> None:
    http = requests.Session()
    cookie = _cookie(http.get(f"{live.url}/login", timeout=10), "trolley_session")
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags


@pytest.fixture(scope="module")
def sbm_http(live: LiveTrolley) -> requests.Session:
    """One log-in for every page checked: a second factor's code is never taken twice, so each
    fresh log-in could wait up to 30 seconds for the next one."""
    return log_in(live.url, "sbm@oakfield.example", DEMO_PASSWORD)


@pytest.mark.parametrize("path", ["/login", "/", "/devices", "/api/v1/me", "/api/v1/openapi.json"])
def test_security_headers_on_real_responses(
    live: LiveTrolley, sbm_http: requests.Session, path: str
) -> None:
    """Pages cannot be framed or sniffed, scripts only come from Trolley, and nothing is cached."""
    response = sbm_http.get(f"{live.url}{path}", timeout=10)
    assert response.status_code == 200
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["Cache-Control"] == "no-store"
