"""The Trolley device agent: enrolment, the agent loop, command handlers, platform adapters.

Entry points (also the public API the server's tests, the demo and the benchmarks use):

* `enrol(payload, platform=..., data_dir=...)` → `KioskConfig`: `trolley-kiosk enrol`.
* `Agent(load_config(data_dir)).run()`: `trolley-kiosk run` (or `.start()` / `.stop()`).
* `enrol_fleet(codes, fleet_dir)` and `FleetSimulator(fleet_dir, count=N)`: thousands of
  simulated devices in one process (`trolley-kiosk simulate`).

Modules: `config` (data directory and typed config), `state` (command ledger), `core`
(verify → persist → execute → ack), `agent` (one device over paho's network thread),
`simulator` (a fleet over a selector), `adapters` (simulated, linux), `enrol`, `server_api`
(HTTPS calls), `cli`, `errors`. This package imports `mqtt`, `provisioning` and
`device_profiles`, never `server` or flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiosk_client.agent import Agent
from kiosk_client.config import KioskConfig, Platform, load_config
from kiosk_client.enrol import enrol
from kiosk_client.errors import (
    AdapterError,
    AlreadyEnrolledError,
    BadServerResponseError,
    CommandFailedError,
    ConfigError,
    EnrolmentRefusedError,
    KioskError,
    NotEnrolledError,
    ResetNotConfirmedError,
    ServerUnreachableError,
    UsageError,
)

if TYPE_CHECKING:
    from kiosk_client.simulator import FleetSimulator, enrol_fleet, enrolled_device_dirs

# The simulator is imported on first use (PEP 562): one kiosk running idle never needs it.
_SIMULATOR_NAMES = frozenset({"FleetSimulator", "enrol_fleet", "enrolled_device_dirs"})

__all__ = [
    "AdapterError",
    "Agent",
    "AlreadyEnrolledError",
    "BadServerResponseError",
    "CommandFailedError",
    "ConfigError",
    "EnrolmentRefusedError",
    "FleetSimulator",
    "KioskConfig",
    "KioskError",
    "NotEnrolledError",
    "Platform",
    "ResetNotConfirmedError",
    "ServerUnreachableError",
    "UsageError",
    "enrol",
    "enrol_fleet",
    "enrolled_device_dirs",
    "load_config",
]


def __getattr__(name: str) -> Any:
    """The simulator's public names, imported on first use."""
    if name not in _SIMULATOR_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from kiosk_client import simulator

    return getattr(simulator, name)
