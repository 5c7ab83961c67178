"""The JSON API: tokens, one error shape, and every bad request a 4xx."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.openapi import ROUTES
from tests.server.conftest import csrf_token, log_in_as


def _is_error(response: object, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)  # type: ignore[attr-defined]
    body = response.get_json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_bearer_token_reads_the_register(
    client: FlaskClient,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    device = make_device()
    headers = token_for(make_user(Role.SBM))
    body = client.get("/api/v1/devices", headers=headers).get_json()
    assert body["total"] == 1 and body["items"][0]["asset_tag"] == device.asset_tag
    one = client.get(f"/api/v1/devices/{device.asset_tag}", headers=headers).get_json()
    assert one["serial"] == device.serial


def test_missing_bad_and_revoked_tokens_are_401(
    client: FlaskClient, make_user: Callable[..., User], token_for: Callable[[User], dict[str, str]]
) -> None:
    _is_error(client.get("/api/v1/me"), 401, "unauthorised")
    _is_error(client.get("/api/v1/me", headers={"Authorization": "Bearer trl_nope"}), 401)
    _is_error(client.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401)
    user = make_user()
    headers = token_for(user)
    tokens = client.get("/api/v1/tokens", headers=headers).get_json()["items"]
    revoked = client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    _is_error(client.get("/api/v1/me", headers=headers), 401)


def test_tokens_are_hashed_at_rest(
    session: Session,
    client: FlaskClient,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    from server.auth.models import ApiToken

    headers = token_for(make_user())
    plain = headers["Authorization"].split()[1]
    stored = session.query(ApiToken).one()
    assert plain not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64


def test_a_token_is_stamped_last_used_at_most_once_a_minute(
    session: Session, make_user: Callable[..., User]
) -> None:
    """Reads stay reads: a token used again within the minute is not written to."""
    from datetime import timedelta

    from server.auth.services import issue_token, user_for_token

    user = make_user()
    token, plain = issue_token(session, user, "tests")
    assert token.last_used_at is None
    assert user_for_token(session, plain) == user
    first = token.last_used_at
    assert first is not None
    session.flush()
    assert user_for_token(session, plain) == user
    assert token.last_used_at == first and not session.dirty
    token.last_used_at = first - timedelta(minutes=2)
    session.flush()
    user_for_token(session, plain)
    assert token.last_used_at is not None and token.last_used_at > first - timedelta(minutes=1)


def test_bad_bodies_get_a_clear_400(
    client: FlaskClient, make_user: Callable[..., User], token_for: Callable[[User], dict[str, str]]
) -> None:
    headers = token_for(make_user())
    _is_error(client.post("/api/v1/tokens", headers=headers, data="name=x"), 400, "invalid_json")
    _is_error(
        client.post(
            "/api/v1/tokens", headers={**headers, "Content-Type": "application/json"}, data="{oops"
        ),
        400,
        "invalid_json",
    )
    _is_error(client.post("/api/v1/tokens", headers=headers, json=[1, 2]), 400, "invalid_json")
    wrong_type = _is_error(
        client.post("/api/v1/tokens", headers=headers, json={"name": 5}), 400, "invalid"
    )
    assert wrong_type["details"][0]["field"] == "name"
    unknown = _is_error(
        client.post("/api/v1/tokens", headers=headers, json={"name": "ok", "admin": True}), 400
    )
    assert unknown["details"][0]["field"] == "admin"
    _is_error(client.get("/api/v1/devices?page=zero", headers=headers), 400, "invalid")
    _is_error(client.get("/api/v1/me?x=1", headers=headers), 400)


def test_oversized_requests_get_413(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    headers = token_for(make_user())
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    _is_error(
        client.post(
            "/api/v1/tokens", headers={**headers, "Content-Type": "application/json"}, data=big
        ),
        413,
    )


def test_unknown_api_paths_and_methods_use_the_error_shape(client: FlaskClient) -> None:
    _is_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    _is_error(client.put("/api/v1/openapi.json"), 405)


def test_cookie_session_writes_need_csrf(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    log_in_as(client, make_user())
    _is_error(client.post("/api/v1/tokens", json={"name": "x"}), 400, "csrf_failed")
    token = csrf_token(client, "/account")
    made = client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRFToken": token})
    assert made.status_code == 201 and made.get_json()["token"].startswith("trl_")


def test_openapi_document_describes_every_route(client: FlaskClient, app: Flask) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    operations = {(path, method) for path, item in doc["paths"].items() for method in item}
    api_rules = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(p.replace("{", "<").replace("}", ">"), m) for p, m in operations}
    for rule, method in api_rules:
        flat = rule.replace("<int:", "<")
        assert (flat, method) in documented, f"{method} {rule} is not in the OpenAPI document"
    assert len(ROUTES) == len(api_rules)
    create = doc["paths"]["/api/v1/tokens"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TokenIn"
    )
    assert doc["components"]["schemas"]["TokenIn"]["additionalProperties"] is False


def test_admin_adds_a_person_through_the_api(
    client: FlaskClient, make_user: Callable[..., User], token_for: Callable[[User], dict[str, str]]
) -> None:
    headers = token_for(make_user(Role.ADMIN))
    made = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "email": "New@Oakfield.example",
            "name": "New Teacher",
            "role": "teacher",
            "password": "long-enough-pw",
        },
    )
    assert made.status_code == 201 and made.get_json()["email"] == "new@oakfield.example"
    again = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "email": "new@oakfield.example",
            "name": "Dup",
            "role": "teacher",
            "password": "long-enough-pw",
        },
    )
    _is_error(again, 409, "conflict")
    _is_error(
        client.post(
            "/api/v1/users",
            headers=headers,
            json={
                "email": "x@y.example",
                "name": "X",
                "role": "wizard",
                "password": "long-enough-pw",
            },
        ),
        400,
        "invalid",
    )


def test_numbers_too_large_for_the_database_are_refused_not_crashed(
    client: FlaskClient, make_user: Callable[..., User], token_for: Callable[[User], dict[str, str]]
) -> None:
    """A 70-bit id in a URL is not found; one in a query is a bad request; never a 500."""
    headers = token_for(make_user(Role.SBM))
    huge = 2**70
    _is_error(client.delete(f"/api/v1/tokens/{huge}", headers=headers), 404)
    _is_error(client.get(f"/api/v1/activity?before_seq={huge}", headers=headers), 400)
    _is_error(client.get(f"/api/v1/devices?home_location_id={huge}", headers=headers), 400)
