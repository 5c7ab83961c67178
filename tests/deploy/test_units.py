"""The deployment files in deploy/ name commands and options that really exist."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import click
import pytest

from server.cli import main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").rglob("*.service")) + sorted(
    (DEPLOY / "systemd").rglob("*.conf")
)


def _exec_lines(unit: Path) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    lines = []
    for section in parser.sections():
        for key, value in parser.items(section):
            if key.startswith("Exec") and value.strip():
                lines.append(value.lstrip("+-!@"))
    return lines


def _check_trolley_command(argv: list[str]) -> None:
    """Parse the arguments with Trolley's own CLI, without running anything."""
    command: click.Command = main
    ctx = click.Context(main, info_name="trolley")
    rest = list(argv)
    while isinstance(command, click.Group):
        name, rest = rest[0], rest[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"trolley has no command {name!r}"
        command = sub
        ctx = click.Context(sub, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, rest, parent=ctx.parent)  # raises on a bad option


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_commands_parse(unit: Path) -> None:
    checked = 0
    for line in _exec_lines(unit):
        argv = shlex.split(line.replace("%i", "1"))
        if argv and argv[0].endswith("/trolley"):
            _check_trolley_command(argv[1:])
            checked += 1
    if unit.name.startswith("trolley-"):
        assert checked, f"{unit.name} runs no trolley command"


def test_web_listens_on_loopback_and_workers_share() -> None:
    web = (DEPLOY / "systemd" / "trolley-web.service").read_text()
    assert re.search(r"trolley serve --host 127\.0\.0\.1 --port 8000 --workers [2-9]", web)
    worker = (DEPLOY / "systemd" / "trolley-worker@.service").read_text()
    assert "--client-id trolley-worker-%i --shared" in worker


def test_nginx_proxies_to_the_web_unit_over_tls() -> None:
    conf = (DEPLOY / "nginx" / "trolley.conf").read_text()
    assert "server 127.0.0.1:8000;" in conf
    assert "listen 443 ssl;" in conf and "Strict-Transport-Security" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf


def test_nightly_backups_are_kept_drilled_and_copied_off_site() -> None:
    """P-SEC-2, P-SEC-6: a nightly encrypted backup with retention, a drill, an off-site copy."""
    timer = (DEPLOY / "systemd" / "trolley-backup.timer").read_text()
    assert re.search(r"^OnCalendar=\*-\*-\* \d\d:\d\d$", timer, re.M)
    assert "Persistent=true" in timer
    (backup,) = _exec_lines(DEPLOY / "systemd" / "trolley-backup.service")
    # Sealed to the school's public key: the server holds nothing that opens its backups.
    sealed = "--recipient /etc/trolley/backup.recipients"
    assert f"trolley backup /var/backups/trolley {sealed}" in backup
    assert "--keep-daily" in backup and "--keep-monthly" in backup
    (drill,) = _exec_lines(DEPLOY / "systemd" / "trolley-restore-drill.service")
    assert "trolley restore-drill /var/backups/trolley" in drill
    assert "OnCalendar=" in (DEPLOY / "systemd" / "trolley-restore-drill.timer").read_text()
    guide = (DEPLOY / "README.md").read_text()
    for needed in ("rrsync -wo", "rclone", "S3-compatible", "never go on laptops, phones"):
        assert needed in guide
