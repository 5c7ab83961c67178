"""The amqtt patches load only on the amqtt version they were written against."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

import mqtt.amqtt_patches as patches
from mqtt.errors import BrokerError

ROOT = Path(__file__).resolve().parents[2]


def _refusal(found: str) -> str:
    return (
        "Trolley's embedded broker patches amqtt 0.12.1 internals; "
        f"found {found}. Pin amqtt==0.12.1 or review mqtt/amqtt_patches.py."
    )


def _fresh_import(monkeypatch: pytest.MonkeyPatch, amqtt_version: str | None) -> ModuleType:
    """Run the patches module anew, as a first import does, with amqtt reported at a version."""
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name != "amqtt":
            return real_version(name)
        if amqtt_version is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return amqtt_version

    monkeypatch.setattr(importlib.metadata, "version", version)
    spec = importlib.util.spec_from_file_location(patches.__name__, patches.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Kept out of sys.modules, so the broker keeps using the module it already imported.
    spec.loader.exec_module(module)
    return module


def test_the_installed_amqtt_is_the_pinned_one() -> None:
    assert patches.AMQTT_VERSION == "0.12.1"
    assert importlib.metadata.version("amqtt") == patches.AMQTT_VERSION


def test_imports_with_the_pinned_version(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _fresh_import(monkeypatch, "0.12.1")
    assert issubclass(module.TrolleyBroker, Broker)
    assert issubclass(module.TrolleyHandler, BrokerProtocolHandler)


@pytest.mark.parametrize("version", ["0.12.2", "0.12.0", "0.13.0", "0.12.1.post1"])
def test_refuses_any_other_amqtt(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    with pytest.raises(BrokerError) as refused:
        _fresh_import(monkeypatch, version)
    assert str(refused.value) == _refusal(f"amqtt {version}")


def test_refuses_a_missing_amqtt(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BrokerError) as refused:
        _fresh_import(monkeypatch, None)
    assert str(refused.value) == _refusal("no amqtt installed")


def test_importing_the_broker_fails_with_one_clear_message() -> None:
    """A fresh interpreter, as the server starts, stops at the guard with its message last."""
    program = (
        "import importlib.metadata as metadata\n"
        "real_version = metadata.version\n"
        "metadata.version = lambda name: '0.12.2' if name == 'amqtt' else real_version(name)\n"
        "import mqtt.broker\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == f"mqtt.errors.BrokerError: {_refusal('amqtt 0.12.2')}"
