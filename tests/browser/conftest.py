"""A real Trolley server (gunicorn, SQLite) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import CI, free_port

CHROMIUM = os.environ.get("TROLLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on {port} within {timeout}s:\n{log.read_text()}")


@contextmanager
def demo_server(workdir: Path) -> Iterator[str]:
    """`trolley demo` on free ports: migrated, seeded, served by gunicorn, with its fleet."""
    port = free_port()
    log = workdir / "server.log"
    env = {
        **os.environ,
        "TROLLEY_INSTANCE_DIR": str(workdir / "instance"),
        "TROLLEY_MQTT_PORT": str(free_port()),
    }
    env.pop("TROLLEY_DATABASE_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "demo", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_group(proc)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo school shared by the browser tests."""
    with demo_server(tmp_path_factory.mktemp("live")) as base:
        yield base


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the whole process group (server, worker, broker, fleet), then make sure."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (make test installs Debian's chromium)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1024, "height": 768})  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()
