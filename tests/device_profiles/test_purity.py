"""The package is a pure leaf: no server imports, no file or clock access while compiling."""

from __future__ import annotations

import ast
import builtins
import datetime
import io
import time
from pathlib import Path
from typing import Any

import pytest

import device_profiles
from device_profiles import TARGETS, builtin_profiles, compile_profile

PACKAGE = Path(device_profiles.__file__).parent
FORBIDDEN = ("flask", "server", "kiosk_client", "provisioning", "mqtt", "requests")


def test_no_forbidden_imports() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {name}" for name in names if name.split(".")[0] in FORBIDDEN
            ]
    assert offenders == []


def test_compiling_touches_no_files_and_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = builtin_profiles()  # loading the library reads files; compiling must not

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("compilers must not do I/O or read the clock")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(time, "time", refuse)
    monkeypatch.setattr(time, "time_ns", refuse)

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            refuse()

    monkeypatch.setattr(datetime, "datetime", FrozenDatetime)
    for profile in profiles.values():
        for target in TARGETS:
            options = {"org_unit_id": "03ph8a2z1example"} if target == "chromeos" else {}
            assert compile_profile(profile, target, **options).content
