"""The one list of Trolley's domains, read by the app, the CLI, the worker and the models."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

Part = Literal["models", "views", "api", "cli", "jobs", "handlers"]


@dataclass(frozen=True)
class Domain:
    """A folder under server/ and which of the fixed modules it has."""

    name: str
    parts: frozenset[Part]


def _domain(name: str, *parts: Part) -> Domain:
    return Domain(name, frozenset(parts))


# Alphabetical: pages include each domain's optional partials (home cards, device panels) in
# this order.
DOMAINS: tuple[Domain, ...] = (
    _domain("activity", "models", "views", "api"),
    _domain("audits", "models", "views", "api", "jobs"),
    _domain("auth", "models", "views", "api", "cli"),
    _domain("backups", "cli"),
    _domain("chromebooks", "models", "views", "api", "cli", "jobs"),
    _domain("commands", "models", "views", "api", "jobs"),
    _domain("dashboard", "views"),
    _domain("devices", "models", "views", "api", "cli"),
    _domain("disposals", "models", "views", "api", "handlers"),
    _domain("enrolment", "models", "views", "api", "cli"),
    _domain("escrow", "models", "views", "api", "cli", "handlers"),
    _domain("imports", "models", "views", "api", "cli", "jobs"),
    _domain("ipads", "models", "views", "jobs"),
    _domain("labels", "views", "api", "cli"),
    _domain("leavers", "models", "views", "api", "jobs"),
    _domain("licences", "models", "views", "api", "handlers"),
    _domain("loans", "models", "views", "api", "jobs", "handlers"),
    _domain("losses", "models", "views", "api", "jobs", "handlers"),
    _domain("notifications", "models", "views", "api", "jobs"),
    _domain("personal_devices", "models", "views", "api", "jobs"),
    _domain("profiles", "models", "views", "api", "cli", "jobs", "handlers"),
    _domain("reports", "views"),
    _domain("schools", "models", "views", "api"),
)

NAMES: tuple[str, ...] = tuple(domain.name for domain in DOMAINS)


def with_part(part: Part) -> tuple[Domain, ...]:
    """The domains that have `part` (e.g. every domain with a jobs.py)."""
    return tuple(domain for domain in DOMAINS if part in domain.parts)


def import_part(part: Part) -> list[ModuleType]:
    """Import `server.<domain>.<part>` for every domain that declares it; a missing one fails."""
    return [importlib.import_module(f"server.{domain.name}.{part}") for domain in with_part(part)]
