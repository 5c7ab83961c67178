"""After `make demo`, every `trolley` command the README shows works as written, no settings set."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import requests
from click.testing import CliRunner

from server.cli import main
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PASSPHRASE = "the demo school's passphrase"
PROFILE = ROOT / "device_profiles" / "library" / "ks2-ipad.yaml"

# Each command the README shows, as someone would type it in the demo's folder: in order, since
# later ones use what earlier ones made. The long-running ones are started in the slow test.
AS_WRITTEN = {
    "db upgrade": "db upgrade",
    "demo": "demo --seed-only",
    "users token": "users token sbm@oakfield.example",
    "users deactivate": "users deactivate governor@oakfield.example --reason 'Term ended'",
    "users reactivate": "users reactivate governor@oakfield.example --reason 'Re-elected'",
    "users role": "users role governor@oakfield.example teacher",
    "schools security": "schools security oakfield --idle-minutes 10",
    "devices shared-serials": "devices shared-serials",
    "activity verify": "activity verify",
    "devices import": "devices import register.csv --dry-run",
    "labels": "labels --out labels.pdf",
    "profiles compile": f"profiles compile {PROFILE} --target kiosk --out kiosk.json",
    "devices enrol-payload": "devices enrol-payload OAK-IPAD-001 --qr code.png",
    "mqtt-config": "mqtt-config mosquitto --port 1883 --tls-port 8883",
    "keys new": "keys new",
    "keys rotate": "keys rotate",
    "backup-keygen": "backup-keygen backup.key",
    "backup": "backup backups --passphrase-file passphrase --keep-daily 14 --keep-monthly 12",
    "restore-drill": "restore-drill backups --passphrase-file passphrase",
    "restore": "restore {newest} --passphrase-file passphrase --yes",
    # A second school last: from then on commands name the school they mean.
    "schools create": "schools create elmwood 'Elmwood Primary'",
    "users create": "users create bursar@oakfield.example --role sbm --school oakfield "
    "--name Bursar --password-stdin",
    "users reset-password": "users reset-password bursar@oakfield.example --password-stdin",
}
LONG_RUNNING = {"serve", "worker", "broker"}
NEEDS_INPUT = {
    "users create": "a-long-password-1\n",
    "users reset-password": "another-password-2\n",
}


def readme_commands() -> set[str]:
    """`trolley X [Y]` in the README's code, as command paths ('users create', 'serve')."""
    text = README.read_text()
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    found = set()
    ctx = click.Context(main)
    for code in [*fenced, *inline]:
        for first, second in re.findall(
            r"(?<![\w/-])trolley ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code
        ):
            command = main.get_command(ctx, first)
            assert command is not None, f"the README shows `trolley {first}`, which does not exist"
            if isinstance(command, click.Group):
                assert command.get_command(ctx, second) is not None, (
                    f"no `trolley {first} {second}`"
                )
                found.add(f"{first} {second}")
            else:
                found.add(first)
    return found


def test_every_readme_command_is_exercised_here() -> None:
    assert readme_commands() == set(AS_WRITTEN) | LONG_RUNNING


@pytest.fixture
def demo_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder where `make demo` ran, and a shell with no TROLLEY_* setting."""
    for name in list(os.environ):
        if name.startswith("TROLLEY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    port = free_port()
    monkeypatch.setenv("TROLLEY_MQTT_PORT", str(port))  # the demo's choice, kept for later commands
    seeded = CliRunner().invoke(main, ["demo", "--seed-only"], catch_exceptions=False)
    assert seeded.exit_code == 0, seeded.output
    monkeypatch.delenv("TROLLEY_MQTT_PORT")
    (tmp_path / "passphrase").write_text(PASSPHRASE + "\n")
    (tmp_path / "backups").mkdir()
    exported = CliRunner().invoke(main, ["devices", "export", "register.csv"])
    assert exported.exit_code == 0, exported.output
    yield tmp_path


def test_readme_commands_work_after_the_demo(demo_folder: Path) -> None:
    """Every command as the README writes it runs in the demo's folder with nothing set."""
    for name, line in AS_WRITTEN.items():
        if "{newest}" in line:
            line = line.format(newest=max((demo_folder / "backups").iterdir()))
        argv = shlex.split(line)
        result = CliRunner().invoke(main, argv, input=NEEDS_INPUT.get(name))
        assert result.exit_code == 0, f"`trolley {' '.join(argv)}` failed:\n{result.output}"
        assert "TROLLEY_" not in result.output or name == "mqtt-config", result.output
    assert (demo_folder / "labels.pdf").stat().st_size > 1000
    assert (demo_folder / "code.png").exists() and (demo_folder / "kiosk.json").exists()


def test_the_demo_settings_apply_only_to_the_demo_database(demo_folder: Path) -> None:
    """What the demo chose is used in its folder; a command aimed at another database ignores it."""
    from server.cli_support import Context
    from server.config import with_demo_settings

    kept = Context().settings
    assert kept.demo and kept.mqtt_port == int(_demo_setting(demo_folder, "TROLLEY_MQTT_PORT"))
    elsewhere = {"TROLLEY_DATABASE_URL": f"sqlite:///{demo_folder / 'other.db'}"}
    assert with_demo_settings(elsewhere) == elsewhere


def _demo_setting(folder: Path, name: str) -> str:
    lines = (folder / "instance" / "demo.env").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith(f"{name}="))


@pytest.mark.slow
def test_long_running_readme_commands_start_after_the_demo(demo_folder: Path) -> None:
    """`trolley broker`, `trolley worker` and `trolley serve` start in the demo's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROLLEY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", *argv],
            cwd=demo_folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    try:
        start("broker")
        worker = start("worker", "--tick", "1")
        web = start("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail("`trolley serve` did not answer in the demo's folder")
        time.sleep(3)  # long enough for a worker that cannot reach its broker to give up
        for proc in started:
            assert proc.poll() is None, f"{proc.args[3]} stopped: {proc.communicate()[0]!r}"
        assert worker.poll() is None and web.poll() is None
    finally:
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
