"""An app built after another in the same process routes exactly as werkzeug's own rules would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import AnyConverter, Map, PathConverter, Rule, UnicodeConverter

from server import create_app
from tests.server.conftest import DATA_KEY


def _app(tmp_path: Path, name: str) -> Flask:
    return create_app(
        {
            "database_url": f"sqlite:///{tmp_path / 'trolley.db'}",
            "instance_dir": tmp_path / name,
            "testing": True,
            "data_keys": [DATA_KEY],
        }
    )


def _sample(converter: Any) -> Any:
    """A value each converter accepts."""
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]  # type: ignore[attr-defined]
    if isinstance(converter, PathConverter):
        return "Year 4/spare"
    if isinstance(converter, UnicodeConverter):
        return "ab-12"
    return 7  # a database id


def test_a_second_app_parses_nothing_again_and_routes_as_werkzeug_does(tmp_path: Path) -> None:
    """The second app's rules reuse what the first one parsed; every URL each of its ~390 rules
    builds is the URL werkzeug's plain rules build, and matches back to the same endpoint and
    values; each rule's converters are its own app's (they hold its map)."""
    _app(tmp_path, "first")
    second = _app(tmp_path, "second")
    rules = list(second.url_map.iter_rules())
    assert len(rules) > 300
    plain = Map(
        [Rule(rule.rule, endpoint=rule.endpoint, methods=rule.methods) for rule in rules],
        converters=dict(second.url_map.converters),
    )
    ours, theirs = second.url_map.bind("school.test"), plain.bind("school.test")
    for rule, twin in zip(rules, plain.iter_rules(), strict=True):
        assert rule.arguments == twin.arguments, rule.rule
        assert all(converter.map is second.url_map for converter in rule._converters.values())
        values = {name: _sample(converter) for name, converter in rule._converters.items()}
        method = sorted(rule.methods or {"GET"})[0]
        url = ours.build(rule.endpoint, values, method=method)
        assert url == theirs.build(rule.endpoint, values, method=method), rule.rule
        assert ours.match(url, method=method) == theirs.match(url, method=method), rule.rule
