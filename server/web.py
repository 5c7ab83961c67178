"""Wiring the web layer: blueprints, the session user, security headers, route declarations."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, request
from flask_login import current_user

from server.auth.permissions import Permission, declared_permission, has_permission
from server.extensions import csrf, db_session, login_manager

# Domain folders, in order; pages include each one's optional partials (home cards, device panels).
DOMAINS = sorted(p.name for p in Path(__file__).parent.iterdir() if (p / "__init__.py").exists())


def register_blueprints(app: Flask) -> None:
    """Every domain folder's views.py `bp`, and its api.py routes on the shared API blueprint."""
    import importlib

    from server.openapi import build_api_blueprint

    for folder in sorted(Path(__file__).parent.iterdir()):
        if not (folder / "__init__.py").exists():
            continue
        if (folder / "api.py").exists():
            importlib.import_module(f"server.{folder.name}.api")
        if (folder / "views.py").exists():
            app.register_blueprint(importlib.import_module(f"server.{folder.name}.views").bp)
    api = build_api_blueprint()
    csrf.exempt(api)  # cookie-authenticated API writes are CSRF-checked in server.openapi
    app.register_blueprint(api)


def install_security(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def _load(user_id: str) -> object:
        from server.auth.services import load_session_user

        return load_session_user(db_session(), user_id)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            "script-src 'self'; media-src 'self' blob:; frame-ancestors 'none'",
        )
        if request.path.startswith("/api/") or current_user.is_authenticated:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def _template_helpers() -> dict[str, object]:
        def can(permission: str) -> bool:
            return bool(
                current_user.is_authenticated
                and has_permission(current_user.role, Permission(permission))
            )

        return {"can": can, "settings": app.extensions["trolley.settings"], "domains": DOMAINS}

    # Fail fast: a route without a declared permission never ships.
    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        and declared_permission(app.view_functions[rule.endpoint]) is None
    ]
    if undeclared:
        raise RuntimeError(f"routes without a declared permission: {', '.join(sorted(undeclared))}")
