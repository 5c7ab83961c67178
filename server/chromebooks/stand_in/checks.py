"""Requests checked against Google's discovery documents: what Google would reject is named."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from googleapiclient.discovery_cache import get_static_doc

STANDARD_QUERY = {"alt", "fields", "key", "prettyPrint", "quotaUser", "$.xgafv", "access_token"}


def discovery_doc(name: str, version: str) -> dict[str, Any]:
    text = get_static_doc(name, version)
    assert text, f"the client library ships no discovery document for {name} {version}"
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass(frozen=True)
class Route:
    verb: str
    pattern: re.Pattern[str]
    literal: int
    method_id: str
    spec: dict[str, Any]
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        """directory.<resource>.<method> or chromepolicy.<resource>.<method>."""
        api = "directory" if self.doc["name"] == "admin" else self.doc["name"]
        return f"{api}.{self.method_id.split('.', 1)[1]}"


def _methods(resources: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for resource in resources.values():
        found += list(resource.get("methods", {}).values())
        found += _methods(resource.get("resources", {}))
    return found


def routes_of(doc: dict[str, Any]) -> list[Route]:
    routes = []
    for spec in _methods(doc["resources"]):
        template = doc["servicePath"] + spec["path"]
        regex = ""
        for piece in re.split(r"(\{\+?\w+\})", template):
            name = re.fullmatch(r"\{(\+?)(\w+)\}", piece)
            if name is None:
                regex += re.escape(piece)
            else:
                regex += f"(?P<{name.group(2)}>{'.+?' if name.group(1) else '[^/]+'})"
        literal = len(re.sub(r"\{\+?\w+\}", "", template))
        routes.append(
            Route(
                spec["httpMethod"],
                re.compile(regex + "$"),
                literal,
                spec["id"],
                spec,
                doc,
            )
        )
    return routes


def match(routes: list[Route], verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
    candidates = []
    for route in routes:
        if route.verb != verb:
            continue
        found = route.pattern.match(path)
        if found:
            params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
            candidates.append((route.literal, route, params))
    if not candidates:
        return None
    _literal, route, params = max(candidates, key=lambda c: c[0])
    return route, params


def _check_scalar(value: str, spec: dict[str, Any], where: str) -> list[str]:
    kind = spec.get("type")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return [f"{where}={value!r} is not an integer"]
        number = int(value)
        if "minimum" in spec and number < int(spec["minimum"]):
            return [f"{where}={value} is below {spec['minimum']}"]
        if "maximum" in spec and number > int(spec["maximum"]):
            return [f"{where}={value} is above {spec['maximum']}"]
    if kind == "boolean" and value not in ("true", "false"):
        return [f"{where}={value!r} is not true or false"]
    if "enum" in spec and value not in spec["enum"]:
        return [f"{where}={value!r} is not one of {spec['enum']}"]
    if "pattern" in spec and not re.match(spec["pattern"], value):
        return [f"{where}={value!r} does not match {spec['pattern']}"]
    return []


def check_params(
    route: Route, path_params: dict[str, str], query: dict[str, list[str]]
) -> list[str]:
    problems = []
    declared = route.spec.get("parameters", {})
    for name, value in path_params.items():
        problems += _check_scalar(value, declared.get(name, {}), name)
    for name, values in query.items():
        if name in STANDARD_QUERY:
            continue
        spec = declared.get(name)
        if spec is None or spec.get("location") != "query":
            problems.append(f"unknown query parameter {name}")
            continue
        if len(values) > 1 and not spec.get("repeated"):
            problems.append(f"{name} given {len(values)} times")
        for value in values:
            problems += _check_scalar(value, spec, name)
    for name, spec in declared.items():
        if spec.get("required") and name not in path_params and name not in query:
            problems.append(f"required parameter {name} is missing")
    return problems


def _required(prop: dict[str, Any], method_id: str) -> bool:
    if str(prop.get("description", "")).startswith("Required."):
        return True
    return method_id in prop.get("annotations", {}).get("required", [])


def check_value(
    value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str, method_id: str
) -> list[str]:
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    kind = schema.get("type")
    if kind == "any":
        return []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where} should be an object"]
        problems: list[str] = []
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                problems += check_value(item, properties[name], doc, f"{where}.{name}", method_id)
            elif extra is not None:
                problems += check_value(item, extra, doc, f"{where}.{name}", method_id)
            else:
                problems.append(f'Invalid JSON payload received. Unknown name "{name}" at {where}')
        for name, prop in properties.items():
            if name not in value and _required(prop, method_id):
                problems.append(f"{where}.{name} is required")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where} should be a list"]
        return [
            p
            for n, item in enumerate(value)
            for p in check_value(item, schema.get("items", {}), doc, f"{where}[{n}]", method_id)
        ]
    if kind == "string":
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and schema.get("format")
            in (
                "int64",
                "uint64",
            )
        ):
            return []
        if not isinstance(value, str):
            return [f"{where} should be a string"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}={value!r} is not one of Google's values"]
        if schema.get("format") == "google-fieldmask" and not re.fullmatch(
            r"[A-Za-z_][\w.]*(,[A-Za-z_][\w.]*)*", value
        ):
            return [f"{where}={value!r} is not a field mask"]
        return []
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where} should be an integer"]
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where} should be a number"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where} should be true or false"]
    return []


def error(code: int, message: str, status: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "errors": [{"message": message, "domain": "global", "reason": "backendError"}],
        }
    }
