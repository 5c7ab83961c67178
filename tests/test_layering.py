"""The architecture's layering, enforced by reading every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.domains import DOMAINS

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("device_profiles", "provisioning", "mqtt")
PRODUCT = ("server", "device_profiles", "kiosk_client", "mqtt", "provisioning")
FLASK = {"flask", "flask_login", "flask_wtf", "werkzeug"}
# The modules of a domain that hold the rules and the data: never the web, the CLI or the worker.
BELOW_THE_WEB = {"services", "models", "pages", "handlers", "jobs"}
ABOVE_SERVICES = {"views", "api", "cli"}
# A domain's own forms and schemas may share its parsers; another domain's are its web layer.
OTHERS_ONLY = {"forms", "schemas"}
SERVER_ABOVE_SERVICES = {"server.cli", "server.cli_support", "server.worker", "server.web"}
MAX_LINES = 800


def _imports(path: Path, *, module_level: bool = False) -> set[str]:
    """Absolute imports of a file; with `module_level`, only those run when it is imported."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: Iterator[ast.AST] = _module_level(tree.body) if module_level else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import: skips function bodies and `if TYPE_CHECKING:` blocks."""
    for node in body:
        if isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" not in test:
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body + node.finalbody + node.orelse)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files(root: Path, package: str) -> list[Path]:
    return sorted(p for p in (root / package).rglob("*.py") if "versions" not in p.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


def _role(module: str) -> str | None:
    """'services' for server.loans.services.returning, 'views' for server.loans.views, ..."""
    parts = module.split(".")
    return parts[2] if len(parts) >= 3 and parts[0] == "server" else None


# --- the checks, written to run on any tree (the tests below also run them on a made-up one) ---


def services_reaching_up(root: Path) -> list[str]:
    """Rules-and-data modules that import the web, the CLI or the worker, or any Flask."""
    found = []
    for path in _files(root, "server"):
        module = _module_name(root, path)
        if _role(module) not in BELOW_THE_WEB:
            continue
        for name in sorted(_imports(path)):
            other_domain = name.split(".")[:2] != module.split(".")[:2]
            if (
                _role(name) in ABOVE_SERVICES
                or (_role(name) in OTHERS_ONLY and other_domain)
                or any(name == m or name.startswith(f"{m}.") for m in SERVER_ABOVE_SERVICES)
                or _top(name) in FLASK
            ):
                found.append(f"{module} imports {name}")
    return found


def string_calls_between_domains(root: Path) -> list[str]:
    """Modules that reach another domain by a name string or swallow a missing import."""
    found = []
    for path in _files(root, "server"):
        module = _module_name(root, path)
        if module == "server.domains":  # the one place that imports domains by their names
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                if called.endswith(("import_module", "__import__")):
                    found.append(f"{module}:{node.lineno} calls {called}")
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = ast.unparse(node.type)
                if "ImportError" in caught or "ModuleNotFoundError" in caught:
                    found.append(f"{module}:{node.lineno} catches {caught}")
    return found


def import_cycles(root: Path, package: str = "server") -> list[list[str]]:
    """Cycles among the modules of `package` through imports run at module level (Tarjan)."""
    paths = {_module_name(root, p): p for p in _files(root, package)}
    graph = {
        module: sorted(n for n in _imports(path, module_level=True) if n in paths and n != module)
        for module, path in paths.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


# --- the product --------------------------------------------------------------------------


@pytest.mark.parametrize("package", LEAVES)
def test_leaf_packages_import_no_server_kiosk_or_flask(package: str) -> None:
    for path in _files(ROOT, package):
        bad = {n for n in _imports(path) if _top(n) in {"server", "kiosk_client", *FLASK}}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_kiosk_client_never_imports_the_server() -> None:
    for path in _files(ROOT, "kiosk_client"):
        bad = {n for n in _imports(path) if _top(n) in {"server", "flask"}}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_the_server_imports_flask() -> None:
    for package in ("device_profiles", "provisioning", "mqtt", "kiosk_client"):
        for path in _files(ROOT, package):
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


def test_services_never_reach_up_to_the_web_the_cli_or_the_worker() -> None:
    """Services, models, pages, handlers and jobs never import views, api, forms, schemas, a
    cli.py, the worker or Flask: the CLI, the worker and the web all call the same services."""
    assert services_reaching_up(ROOT) == []


def test_domains_never_call_each_other_by_name() -> None:
    """A rename must fail loudly, never switch a rule off (e.g. erasure after a factory reset)."""
    assert string_calls_between_domains(ROOT) == []


def test_no_import_cycles_inside_the_server() -> None:
    assert import_cycles(ROOT) == []


def test_errors_and_services_pull_in_no_flask() -> None:
    """Importing the error hierarchy and every domain's services loads no Flask at all."""
    modules = ["server.errors"] + [
        f"server.{d.name}.services"
        for d in DOMAINS
        if (ROOT / "server" / d.name / "services.py").exists()
        or (ROOT / "server" / d.name / "services").is_dir()
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'werkzeug'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_domain_list_matches_the_folders() -> None:
    """server/domains.py is the one list: every domain folder is on it with exactly its parts."""
    folders = {p.name for p in (ROOT / "server").iterdir() if (p / "__init__.py").exists()} - {
        "migrations"
    }
    assert {d.name for d in DOMAINS} == folders
    for domain in DOMAINS:
        folder = ROOT / "server" / domain.name
        present = {
            part
            for part in ("models", "views", "api", "cli", "jobs", "handlers")
            if (folder / f"{part}.py").exists() or (folder / part).is_dir()
        }
        assert set(domain.parts) == present, domain.name


def test_no_product_module_is_too_long_to_find_your_way_in() -> None:
    """A module past ~600 lines becomes a package; none may pass 800."""
    long = [
        f"{path.relative_to(ROOT)}: {n}"
        for package in PRODUCT
        for path in _files(ROOT, package)
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []


def test_services_and_models_never_touch_the_request() -> None:
    """Views and the API handle HTTP; services take the session and hold the rules."""
    for path in _files(ROOT, "server"):
        if _role(_module_name(ROOT, path)) in {"services", "models"}:
            assert not {n for n in _imports(path) if _top(n) in FLASK}, path


def test_views_never_build_queries() -> None:
    for path in _files(ROOT, "server"):
        if _role(_module_name(ROOT, path)) in {"views", "api"}:
            source = path.read_text()
            assert "select(" not in source and "session.query(" not in source, path


# --- the checks can fail ------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_service_importing_views_is_caught(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/loans/__init__.py": "",
            "server/loans/views.py": "bp = None\n",
            "server/loans/services/__init__.py": "",
            "server/loans/services/taking_out.py": "from server.audits.views import bp\n",
            "server/audits/services.py": "from server.worker import run_forever\n",
            "server/audits/jobs.py": "from flask import current_app\n",
            "server/audits/pages.py": "from server.audits.forms import F\n",
            "server/devices/models.py": "from server.loans.schemas import LoanIn\n",
        },
    )
    assert services_reaching_up(root) == [
        "server.audits.jobs imports flask",
        "server.audits.jobs imports flask.current_app",
        "server.audits.services imports server.worker",
        "server.audits.services imports server.worker.run_forever",
        "server.devices.models imports server.loans.schemas",
        "server.devices.models imports server.loans.schemas.LoanIn",
        "server.loans.services.taking_out imports server.audits.views",
        "server.loans.services.taking_out imports server.audits.views.bp",
    ]


def test_a_string_call_between_domains_is_caught(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/commands/services.py": (
                "import importlib\n\n\n"
                "def tell(device):\n"
                "    importlib.import_module('server.escrow.services').device_reset(device)\n"
            ),
            "server/audits/services.py": (
                "try:\n    from server.losses.services import report_loss\n"
                "except ImportError:\n    report_loss = None\n"
            ),
        },
    )
    assert string_calls_between_domains(root) == [
        "server.audits.services:3 catches ImportError",
        "server.commands.services:5 calls importlib.import_module",
    ]


def test_a_module_level_cycle_is_caught_and_a_local_import_is_not(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/commands/services.py": "from server.losses import services\n",
            "server/losses/services.py": "from server.commands.services import queue\n",
            "server/escrow/services.py": "def f():\n    from server.devices import services\n",
            "server/devices/services.py": "from server.escrow.services import f\n",
        },
    )
    assert import_cycles(root) == [["server.commands.services", "server.losses.services"]]
