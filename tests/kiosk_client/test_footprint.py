"""The idle footprint of `trolley-kiosk run`: large libraries load only when their work arrives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk_client.enrol import enrol
from tests.helpers import free_port
from tests.kiosk_client.support import FakeServer, IdentityPool, identities

ROOT = Path(__file__).resolve().parents[2]

# What an idle kiosk must not hold: the profile library (a profile arrives), HTTP clients (the
# server is called at enrolment and factory reset only), certificate and TOML-writing code
# (enrolment), the fleet simulator and the other platform's adapter, and the server's stack.
HEAVY = (
    "device_profiles",
    "requests",
    "urllib3",
    "yaml",
    "pydantic",
    "flask",
    "sqlalchemy",
    "cryptography.x509",
    "tomli_w",
    "kiosk_client.simulator",
    "kiosk_client.adapters.linux",
)

# The import path of `python -m kiosk_client run`, stopped once the agent is built, idle.
PROBE = """
import json, sys
from kiosk_client import cli
agent = cli.Agent(cli.load_config(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A simulated kiosk enrolled over HTTP (its broker is never contacted)."""
    server = FakeServer(pool=IdentityPool(list(identities(1, "idle"))), broker_port=free_port())
    try:
        config = enrol(
            server.payload(), platform="simulated", data_dir=tmp_path / "kiosk", fsync=False
        )
    finally:
        server.close()
    return config.data_dir


def test_an_idle_kiosk_loads_no_heavy_library(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    # The probe really went through the agent's start-up, signing key included.
    assert {"kiosk_client.agent", "paho.mqtt.client", "mqtt.envelope"} <= loaded
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []
