"""Trolley's web server: create_app builds it, and only then loads Flask."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.routing import Rule


@cache  # one class for every app, so their rules share parsed forms (see LazilyBuiltRule)
def _database_id_converter() -> type:
    from werkzeug.routing import IntegerConverter

    class DatabaseId(IntegerConverter):
        """An id in a URL: never larger than a database integer (such a URL is simply not found)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("max", 2**63 - 1)
            super().__init__(*args, **kwargs)

    return DatabaseId


# Each rule's parsed form (its parts, its trace and the converters it asks for), by its text and
# the converters it may use: the same for every app this process builds.
_PARSED: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = {}


@cache
def _lazily_built_rule() -> type[Rule]:
    from werkzeug.routing import Rule

    class LazilyBuiltRule(Rule):
        """A URL rule that is cheap to build many times: the app has about 390 rules, and
        parsing each and compiling its URL builder was most of the cost of building the app
        (paid by every process and every test that makes one). Its builders are compiled when
        `url_for` first needs them, and a rule parsed once in this process is not parsed again."""

        def _parse_rule(self, rule: str) -> Iterator[Any]:
            key = (rule, tuple(self.map.converters.items()))
            parsed = _PARSED.get(key)
            if parsed is None:
                asked: list[tuple[str, str, Any, Any]] = []
                trace_from, self._asked = len(self._trace), asked
                parts = tuple(super()._parse_rule(rule))
                parsed = (parts, tuple(self._trace[trace_from:]), tuple(asked))
                _PARSED[key] = parsed
                del self._asked
            else:
                # What werkzeug's parse leaves on the rule; converters are the rule's own, as
                # they hold its map. The parts are shared: werkzeug only reads them.
                self._trace.extend(parsed[1])
                for name, converter, args, kwargs in parsed[2]:
                    self._converters[name] = super().get_converter(name, converter, args, kwargs)
                    self.arguments.add(name)
            return iter(parsed[0])

        def get_converter(
            self, variable_name: str, converter_name: str, args: Any, kwargs: Any
        ) -> Any:
            if (asked := self.__dict__.get("_asked")) is not None:
                asked.append((variable_name, converter_name, args, kwargs))
            return super().get_converter(variable_name, converter_name, args, kwargs)

        def _compile_builder(self, append_unknown: bool = True) -> Any:
            compile_now = super()._compile_builder
            compiled: list[Any] = []

            def build(rule: Rule, *args: Any, **kwargs: Any) -> tuple[str, str]:
                if not compiled:  # two threads may both compile: the same function, harmless
                    compiled.append(compile_now(append_unknown).__get__(rule, None))
                result: tuple[str, str] = compiled[0](*args, **kwargs)
                return result

            return build

    return LazilyBuiltRule


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app from TROLLEY_* settings plus optional overrides (tests pass `bind`)."""
    from flask import Flask

    from server.config import load_settings
    from server.crypto import SecretBox
    from server.db import Database
    from server.events import connect_handlers
    from server.extensions import close_db_session, csrf, login_manager
    from server.web import (
        TEMPLATE_CODE,
        install_security,
        register_blueprints,
        register_error_handlers,
    )

    overrides = dict(config or {})
    bind = overrides.pop("bind", None)
    settings = load_settings(overrides=overrides)
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.url_rule_class = _lazily_built_rule()
    app.jinja_options = {**app.jinja_options, "bytecode_cache": TEMPLATE_CODE}
    app.url_map.converters["int"] = _database_id_converter()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="trolley_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        # The cookie is written only when the session changes: a slower request running beside
        # (a stylesheet, the favicon) would otherwise answer with the session as it was when it
        # began and overwrite a newer one (a sign-in, a just-flashed "Imported …"). Idle
        # time-out is the server's own (`resume_session`), so nothing needs the cookie renewed.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        TESTING=settings.testing,
        TROLLEY=settings,
    )
    app.extensions["trolley.settings"] = settings
    app.extensions["trolley.db"] = Database(settings.database_url, bind=bind)
    app.extensions["trolley.box"] = SecretBox(settings.data_keys)
    login_manager.init_app(app)
    csrf.init_app(app)
    app.teardown_appcontext(close_db_session)
    register_blueprints(app)
    connect_handlers()  # a domain that would not hear what devices report fails start-up
    register_error_handlers(app)
    install_security(app)
    if settings.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # One trusted proxy (nginx) in front: its X-Forwarded-For is the real address, which
        # log-in throttling needs.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    return app


# Python looks at its youngest objects every 700 allocations, and at every object once ten of
# those have moved more than a quarter of what it last kept into the oldest generation. With
# start-up frozen that quarter is nearly nothing, so a request or batch building thousands of
# rows set off full collections over and over: at 10,000 devices, 28 in five rounds of asking
# and approving (0.7 s). These thresholds keep collecting cycles, about 70 times less often.
GC_THRESHOLDS = (50_000, 20, 10)


def settle_process() -> None:
    """For a long-lived process that has started: what start-up built is frozen, left out of
    every collection, and collections come less often (`GC_THRESHOLDS`)."""
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
