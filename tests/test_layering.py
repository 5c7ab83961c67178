"""The architecture's layering, enforced by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("device_profiles", "provisioning", "mqtt")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", LEAVES)
def test_leaf_packages_import_no_server_kiosk_or_flask(package: str) -> None:
    for path in _modules(package):
        bad = {
            n
            for n in _imports(path)
            if _top(n) in {"server", "kiosk_client", "flask", "flask_login", "flask_wtf"}
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_kiosk_client_never_imports_the_server() -> None:
    for path in _modules("kiosk_client"):
        bad = {n for n in _imports(path) if _top(n) in {"server", "flask"}}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_the_server_imports_flask() -> None:
    for package in ("device_profiles", "provisioning", "mqtt", "kiosk_client"):
        for path in _modules(package):
            assert not {n for n in _imports(path) if _top(n) == "flask"}, path


def test_paho_is_never_imported_as_mqtt() -> None:
    """`import paho.mqtt.client as mqtt` would shadow our own mqtt package."""
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    assert alias.asname != "mqtt", (
                        f"{path.relative_to(ROOT)} aliases something as mqtt"
                    )


def test_services_and_models_never_touch_the_request() -> None:
    """Views and the API handle HTTP; services take the session and hold the rules."""
    for path in (ROOT / "server").rglob("*.py"):
        if path.name in {"services.py", "models.py"}:
            names = _imports(path)
            assert not {n for n in names if _top(n) in {"flask", "flask_login", "flask_wtf"}}, path


def test_views_never_build_queries() -> None:
    for path in (ROOT / "server").rglob("*.py"):
        if path.name in {"views.py", "api.py"}:
            source = path.read_text()
            assert "select(" not in source and "session.query(" not in source, path
