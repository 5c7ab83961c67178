"""Platform adapters behind one interface (`PlatformAdapter`): `simulated` and `linux`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiosk_client.adapters.base import Inventory, PlatformAdapter, WipeResult
from kiosk_client.adapters.simulated import SimulatedAdapter, create_simulated_device
from kiosk_client.config import KioskConfig, Platform
from kiosk_client.errors import ConfigError

if TYPE_CHECKING:
    from kiosk_client.adapters.linux import LinuxAdapter

__all__ = [
    "Inventory",
    "LinuxAdapter",
    "PlatformAdapter",
    "SimulatedAdapter",
    "WipeResult",
    "create_simulated_device",
    "make_adapter",
]


def make_adapter(config: KioskConfig) -> PlatformAdapter:
    """The adapter the configuration names."""
    if config.platform is Platform.SIMULATED and config.simulated is not None:
        return SimulatedAdapter(
            config.simulated.root,
            operation_delay=config.simulated.operation_delay,
            fsync=config.fsync,
        )
    if config.platform is Platform.LINUX and config.linux is not None:
        from kiosk_client.adapters.linux import LinuxAdapter

        return LinuxAdapter(config.linux, config.data_dir, school=config.school, fsync=config.fsync)
    raise ConfigError(f"no settings for platform {config.platform.value!r}")


def __getattr__(name: str) -> Any:
    """`LinuxAdapter`, imported on first use: a simulated device never loads it (PEP 562)."""
    if name != "LinuxAdapter":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from kiosk_client.adapters.linux import LinuxAdapter

    return LinuxAdapter
