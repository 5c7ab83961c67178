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

from tests.helpers import CI, free_port, unused_code

CHROMIUM = os.environ.get("TROLLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Passkeys need a domain name, never an IP address: "localhost" is this machine's 127.0.0.1.
    "--host-resolver-rules=MAP localhost 127.0.0.1",
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


# Every demo server's log, so a failed test's report can show what the server said.
SERVER_LOGS: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A failed browser test's report carries the end of each running server's log: an
    "Internal Server Error" in the browser says nothing of its cause."""
    report = yield
    if report.failed and call.when == "call":  # type: ignore[attr-defined]
        for log in SERVER_LOGS:
            if log.exists():
                tail = log.read_text(errors="replace")[-8000:]
                report.sections.append((f"server log {log.parent.name}", tail))  # type: ignore[attr-defined]
    return report


@contextmanager
def demo_server(workdir: Path, *, host_name: str = "127.0.0.1") -> Iterator[str]:
    """`trolley demo` on free ports: migrated, seeded, served by gunicorn, with its fleet; the
    browser calls it `host_name` (always 127.0.0.1 underneath)."""
    port = free_port()
    log = workdir / "server.log"
    SERVER_LOGS.append(log)
    env = {
        **os.environ,
        "TROLLEY_INSTANCE_DIR": str(workdir / "instance"),
        "TROLLEY_MQTT_PORT": str(free_port()),
        "TROLLEY_BASE_URL": f"http://{host_name}:{port}",
        # A demo lives for the rest of its test process: its worker's idle outbox reads, 20 a
        # second by default, cost a twentieth of a core that the other tests need.
        "TROLLEY_OUTBOX_POLL_SECONDS": "0.25",
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
        yield f"http://{host_name}:{port}"
    finally:
        _stop_group(proc)
        SERVER_LOGS.remove(log)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo school shared by the browser tests."""
    with demo_server(tmp_path_factory.mktemp("live")) as base:
        yield base


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the whole process group (server, worker, broker, fleet), then make sure."""
    # Nothing is checked after a test's server stops: gunicorn's five-second graceful timeout
    # for requests still being served (a fleet still enrolling) would only be waited out.
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=2)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# Second factors set up in the browser so far, by server and person: the privileged roles of a
# shared demo school need one, and the second test to log one of them in must give its code.
SECOND_FACTORS: dict[tuple[str, str], str] = {}


def log_in(page: object, base: str, email: str, password: str | None = None) -> None:
    """Log in to a demo school as `email` and land home: the form, then the second factor
    (set up the first time it is asked for)."""
    from server.schools.demo import DEMO_PASSWORD

    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.get_by_label("E-mail").fill(email)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(password or DEMO_PASSWORD)  # type: ignore[attr-defined]
    # The next page's heading says what comes next: read it only once that page has loaded
    # (a busy server answers slowly, and the log-in page's own heading would be read instead).
    with page.expect_navigation(timeout=90_000):  # type: ignore[attr-defined]
        page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    heading = page.locator("h1").inner_text()  # type: ignore[attr-defined]
    who = (base, email)
    if "Set up two-step" in heading:
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")  # type: ignore[attr-defined]
        SECOND_FACTORS[who] = secret
        button: str | None = "Turn on and continue"
    elif "Enter your 6-digit code" in heading or "Use your passkey" in heading:
        secret, button = SECOND_FACTORS[who], "Continue"
    else:
        button = None
    if button is not None:
        page.get_by_label("6-digit code").fill(unused_code(secret, who))  # type: ignore[attr-defined]
        page.get_by_role("button", name=button).click()  # type: ignore[attr-defined]
    # A demo that has just started is busy enrolling its simulated fleet: give it time.
    page.wait_for_url(f"{base}/", timeout=90_000)  # type: ignore[attr-defined]


def wait_until_online(page: object, base: str, tag: str, *, within: float = 180) -> None:
    """Wait for the demo's simulated device `tag` to be connected (it enrols itself over HTTP
    just after the demo starts, then connects; a busy 2-core machine takes its time)."""
    deadline = time.monotonic() + within
    while True:
        page.goto(f"{base}/devices/{tag}")  # type: ignore[attr-defined]
        panel = page.get_by_role("region", name="Device link")  # type: ignore[attr-defined]
        if "Online" in panel.inner_text():
            return
        assert time.monotonic() < deadline, f"{tag} never came online in the demo"
        page.wait_for_timeout(1000)  # type: ignore[attr-defined]


def ready_to_confirm(page: object, button: object) -> object:
    """`button`, a confirmed action, once its page's confirmation script has attached (it marks
    `<html data-confirm-ready>`): clicked sooner, the form posts without asking in the page and
    the server's own confirmation page asks instead of the dialog."""
    button.wait_for()  # type: ignore[attr-defined]  # the page that holds it, not the last one
    page.locator("html[data-confirm-ready]").wait_for(state="attached")  # type: ignore[attr-defined]
    return button


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (make test installs Debian's chromium)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # Playwright's 5 s for an expectation is too short on a busy 2-core machine while a demo's
    # fleet enrols (a passkey ceremony took longer): waiting longer only slows a failure.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield _Patient(chromium)
        chromium.close()


class _Patient:
    """The browser, whose pages wait up to 90 s for a page to load (Playwright's default is
    30 s): a demo that has just started enrols its fleet while the busiest tests run beside it."""

    def __init__(self, browser: object) -> None:
        self._browser = browser

    def new_context(self, **options: object) -> object:
        context = self._browser.new_context(**options)  # type: ignore[attr-defined]
        context.set_default_navigation_timeout(90_000)
        return context

    def __getattr__(self, name: str) -> object:
        return getattr(self._browser, name)


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1024, "height": 768})  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()
