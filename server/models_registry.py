"""Imports every domain's models so the metadata (and Alembic) sees every table."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

DOMAINS = sorted(
    info.name
    for info in pkgutil.iter_modules([str(Path(__file__).parent)])
    if info.ispkg and (Path(__file__).parent / info.name / "models.py").exists()
)

for _domain in DOMAINS:
    importlib.import_module(f"server.{_domain}.models")
