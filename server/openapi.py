"""The JSON API's plumbing: one decorator validates requests and documents them in OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_login import current_user
from pydantic import BaseModel, ValidationError

from server.auth.models import LoginSession, TokenScope, User
from server.auth.permissions import PUBLIC, Permission, declare, has_permission
from server.errors import HTTP_MESSAGES, Forbidden, Unauthorised, ValidationFailed
from server.extensions import csrf, db_session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RouteSpec:
    rule: str
    method: str
    name: str
    summary: str
    tag: str
    permission: Permission | str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    view: Callable[..., Any]


ROUTES: list[RouteSpec] = []


def build_api_blueprint() -> Blueprint:
    """A fresh API blueprint per app from every registered route (apps never share one)."""
    api = Blueprint("api", __name__, url_prefix="/api/v1")
    for spec in ROUTES:
        api.add_url_rule(spec.rule, endpoint=spec.name, view_func=spec.view, methods=[spec.method])
    api.add_url_rule(
        "/openapi.json", endpoint="openapi_json", view_func=openapi_json, methods=["GET"]
    )
    return api


def current_api_user() -> User:
    user: User = g.api_user
    return user


def current_api_login() -> LoginSession | None:
    """The browser session behind this API request; None when a token authenticated it."""
    login: LoginSession | None = g.get("api_login")
    return login


def _authenticate() -> User:
    """A Bearer token, or the browser's session (then CSRF applies to writes)."""
    from server.auth.services import authenticate_token
    from server.web import clock, current_login

    g.api_login = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, plain = header.partition(" ")
        if scheme.lower() != "bearer" or not plain.strip():
            raise Unauthorised("Send your token as 'Authorization: Bearer <token>'.")
        # A read must not write: an autoflushed stamp would turn its SQLite transaction into a
        # write, which fails at once while another writer holds the database.
        writing = request.method not in SAFE_METHODS
        token = authenticate_token(db_session(), plain.strip(), now=clock(), stamp=writing)
        if token is None:
            raise Unauthorised("That API token is not valid: it has expired or been revoked.")
        if token.scope is not TokenScope.READ_WRITE and request.method not in SAFE_METHODS:
            raise Forbidden(
                "This API token can only read. Make a token that may change things for this."
            )
        # last_used_at is saved only by writing requests, which commit; reads never write.
        return token.user
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            csrf.protect()
        g.api_login = current_login()
        user = current_user._get_current_object()
        return user  # type: ignore[no-any-return]
    raise Unauthorised("Log in, or send 'Authorization: Bearer <token>'.")


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or None, "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _parse_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise ValidationFailed(
            "Send a JSON object with 'Content-Type: application/json'.", code="invalid_json"
        )
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("Some fields are missing or wrong.", details=_errors(exc)) from exc


def _parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ValidationFailed("Some query parameters are wrong.", details=_errors(exc)) from exc


def endpoint(
    rule: str,
    method: str,
    *,
    permission: Permission | str,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an API route: authenticate, check the permission, validate, serialise."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def view(**path_args: Any) -> tuple[Response, int]:
            if permission != PUBLIC:
                user = _authenticate()
                g.api_user = user
                if not has_permission(user.role, Permission(permission)):
                    raise Forbidden("Your role does not allow this.")
            if body is not None:
                path_args["body"] = _parse_body(body)
            elif method not in SAFE_METHODS and request.content_length:
                if request.is_json and request.get_json(silent=True) not in (None, {}):
                    raise ValidationFailed("This action takes no request body.")
            if query is not None:
                path_args["query"] = _parse_query(query)
            elif request.args:
                raise ValidationFailed(
                    "This address takes no query parameters.",
                    details=[{"field": k, "message": "unknown parameter"} for k in request.args],
                )
            result = fn(**path_args)
            if isinstance(result, Response):  # a file download
                return result, status
            if isinstance(result, BaseModel):
                return jsonify(result.model_dump(mode="json")), status
            return jsonify(result), status

        declare(permission)(view)
        if any(existing.name == fn.__name__ for existing in ROUTES):
            raise RuntimeError(f"two API routes are both called {fn.__name__!r}")
        ROUTES.append(
            RouteSpec(
                rule,
                method,
                fn.__name__,
                summary,
                tag,
                permission,
                body,
                query,
                response,
                status,
                view,
            )
        )
        return view

    return decorate


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 from the same pydantic models that validate the requests."""
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for spec in ROUTES:
        path = "/api/v1" + re.sub(r"<(?:(\w+):)?(\w+)>", r"{\2}", spec.rule)
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if conv == "int" else "string"},
            }
            for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", spec.rule)
        ]
        if spec.query is not None:
            qschema = spec.query.model_json_schema()
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        error = {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }
        responses: dict[str, Any] = {
            str(code): {"description": HTTP_MESSAGES[code][1], **error}
            for code in (400, 401, 403, 404)
        }
        ok: dict[str, Any] = {"description": "Success"}
        if spec.response is not None:
            ok["content"] = {"application/json": {"schema": _schema_ref(spec.response, components)}}
        responses[str(spec.status)] = ok
        operation: dict[str, Any] = {
            "operationId": spec.name,
            "summary": spec.summary,
            "tags": [spec.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if spec.permission == PUBLIC:
            operation["security"] = []
        else:
            operation["description"] = f"Needs the `{spec.permission}` permission."
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(spec.body, components)}},
            }
        paths.setdefault(path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Trolley API",
            "version": "1",
            "description": "Device management for schools. Authenticate with a personal API "
            "token: `Authorization: Bearer <token>` (make one on your account page or with "
            "`trolley users token EMAIL`).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def openapi_json() -> Response:
    return jsonify(openapi_document())


declare(PUBLIC)(openapi_json)
