"""The agent's version, reported in every inventory."""

from __future__ import annotations

from importlib import metadata

try:
    AGENT_VERSION = metadata.version("trolley-mdm")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    AGENT_VERSION = "0.0.0"
