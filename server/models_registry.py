"""Imports every domain's models so the metadata (and Alembic) sees every table."""

from __future__ import annotations

from server.domains import import_part

import_part("models")
