"""A trust-scale deployment on this machine: the layout deploy/README.md describes, under load.

gunicorn with several processes on PostgreSQL, a private Mosquitto with per-device passwords and
TLS from the school CA, two workers sharing device topics, and a simulated fleet: a fleet wipe
sent through the API is done exactly once on every device.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from tests.helpers import CI, POSTGRES_ADDR, free_port, require_service

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# CI runs the trust-scale load (2,000 devices, about 90 s); a local `make test` runs 300 to keep
# the loop quick, and TROLLEY_TRUST_DEVICES chooses any other size.
DEVICES = int(os.environ.get("TROLLEY_TRUST_DEVICES") or (2000 if CI else 300))
PHOTOS = 2
POSTGRES_BASE = f"postgresql+psycopg://{POSTGRES_ADDR[0]}:{POSTGRES_ADDR[1]}/test"

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mosquitto]


class Stack:
    """The processes of one deployment, stopped together (each in its own process group)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def run(self, *argv: str, stdin: str | None = None, timeout: float = 600) -> str:
        result = subprocess.run(
            list(argv),
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def diagnosis(self, *names: str) -> str:
        """Which processes have exited, and the end of the named logs (for a failure message)."""
        lines = [
            f"{name}: exited with {proc.returncode}"
            for name, proc in self.procs
            if proc.poll() is not None
        ]
        for name in names:
            lines += [f"--- end of {name}.log", self.log(name)[-3000:]]
        return "\n".join(lines)

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_for_port(port: int, stack: Stack, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{name} did not listen on {port}:\n{stack.log(name)}")


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema in database `test`, dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_ADDR)
    if shutil.which("mosquitto") is None:
        message = "the mosquitto binary is not installed"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"trust_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


def _mqtt_config(stack: Stack, argv: tuple[str, ...], directory: Path) -> None:
    """`trolley mqtt-config`; as root (a CI container) Mosquitto must not drop to its own user,
    which could not read a private temporary folder. A real install chowns the files instead."""
    stack.run(*argv)
    if os.geteuid() == 0:
        conf = directory / "mosquitto.conf"
        conf.write_text(conf.read_text() + "\nuser root\n")


def _add_devices(url: str, school_slug: str, count: int) -> list[str]:
    """The register of a large school (as a CSV import would leave it): `count` iPads."""
    from sqlalchemy.orm import Session

    from server.devices.models import Device, DeviceStatus, Platform
    from server.schools.models import School

    engine = create_engine(url)
    with Session(engine) as session:
        school = session.query(School).filter_by(slug=school_slug).one()
        existing = session.query(Device.asset_tag).filter_by(school_id=school.id).all()
        tags = [t for (t,) in existing]
        for n in range(count - len(tags)):
            tag = f"TRUST-{n:05d}"
            session.add(
                Device(
                    school_id=school.id,
                    asset_tag=tag,
                    serial=f"TRS{n:08d}",
                    platform=Platform.IPADOS,
                    make="Apple",
                    model="iPad (10th generation)",
                    status=DeviceStatus.IN_SERVICE,
                )
            )
            tags.append(tag)
        session.commit()
    engine.dispose()
    return tags[:count]


def _enrolment_codes(env: dict[str, str], school_slug: str, broker_ca: Path) -> list[str]:
    """One-time codes as the technician prints them; each pins the CA that signed Mosquitto."""
    from cryptography import x509
    from sqlalchemy.orm import Session

    from provisioning.ca import fingerprint
    from server.config import load_settings
    from server.devices.models import Device
    from server.enrolment.services import issue_enrolment_tokens
    from server.schools.models import School

    settings = load_settings(env)
    engine = create_engine(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        school = session.query(School).filter_by(slug=school_slug).one()
        devices = session.query(Device).filter_by(school_id=school.id).order_by(Device.id).all()
        payloads = [p for _t, p in issue_enrolment_tokens(session, None, devices, settings)]
    engine.dispose()
    pin = fingerprint(x509.load_pem_x509_certificate(broker_ca.read_bytes()))
    assert {p.ca_fingerprint for p in payloads} == {pin}
    return [p.encode() for p in payloads[:DEVICES]]


def _set_up_second_factor(env: dict[str, str], email: str) -> str:
    """The person turns on two-step verification, as at their first log-in: an approver of
    destructive commands must have it (P-SEC-1)."""
    import pyotp
    from sqlalchemy.orm import Session

    from server.auth.services import enable_totp, new_totp_secret, user_by_email
    from server.config import load_settings
    from server.crypto import SecretBox

    settings = load_settings(env)
    engine = create_engine(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        secret = new_totp_secret()
        person = user_by_email(session, email)
        enable_totp(
            session, person, SecretBox(settings.data_keys), secret, pyotp.TOTP(secret).now()
        )
    engine.dispose()
    return secret


def _commands(url: str, batch_id: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT cmd_id, status, device_id FROM commands WHERE batch_id = :b"),
            {"b": batch_id},
        ).all()
    engine.dispose()
    return [(str(r[0]), str(r[1]).lower(), str(r[2])) for r in rows]


@pytest.mark.timeout(1800)
def test_a_trust_deployment_wipes_every_device_exactly_once(tmp_path: Path, schema: str) -> None:
    """P-PHOTO-1 at trust scale: no command lost or run twice with two workers and gunicorn."""
    web_port, mqtt_port, tls_port = free_port(), free_port(), free_port()
    url = f"{POSTGRES_BASE}?options=-csearch_path%3D{schema}"
    instance = tmp_path / "instance"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TROLLEY_DATABASE_URL": url,
        "TROLLEY_INSTANCE_DIR": str(instance),
        "TROLLEY_SECRET_KEY": uuid.uuid4().hex * 2,
        "TROLLEY_DATA_KEYS": Fernet.generate_key().decode(),
        "TROLLEY_BASE_URL": f"http://127.0.0.1:{web_port}",
        "TROLLEY_MQTT_DEVICE_URL": f"mqtts://127.0.0.1:{tls_port}",
        "TROLLEY_SECURE_COOKIES": "false",  # plain http on 127.0.0.1; nginx adds TLS in production
    }
    env.pop("TROLLEY_DEMO", None)
    stack = Stack(tmp_path, env)
    trolley = str(BIN / "trolley")
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        stack.run(trolley, "db", "upgrade")
        stack.run(trolley, "demo", "--seed-only")  # the demo school's people and places
        tags = _add_devices(url, "oakfield", DEVICES)
        mosquitto_dir = tmp_path / "mosquitto"
        mqtt_config = (
            trolley,
            "mqtt-config",
            str(mosquitto_dir),
            "--port",
            str(mqtt_port),
            "--tls-port",
            str(tls_port),
            "--school",
            "oakfield",
        )
        _mqtt_config(stack, mqtt_config, mosquitto_dir)
        secret = (instance / "broker" / "server.secret").read_text().strip()
        env["TROLLEY_MQTT_URL"] = f"mqtt://trolley_server:{secret}@127.0.0.1:{mqtt_port}"
        mosquitto = stack.start(
            "mosquitto", "mosquitto", "-c", str(mosquitto_dir / "mosquitto.conf")
        )
        _wait_for_port(tls_port, stack, "mosquitto")
        stack.start("web", trolley, "serve", "--workers", "3", "--port", str(web_port))
        _wait_for_port(web_port, stack, "web")
        for n in (1, 2):
            stack.start(
                f"worker{n}",
                trolley,
                "worker",
                "--client-id",
                f"trolley-worker-{n}",
                "--shared",
                "--tick",
                "2",
            )
        timings["stack up"] = time.monotonic() - started

        # Enrol every simulated device over HTTPS-less HTTP, as a kiosk does, then give
        # Mosquitto the new per-device passwords (mqtt-config again, then SIGHUP).
        started = time.monotonic()
        codes = tmp_path / "codes.txt"
        printed = _enrolment_codes(env, "oakfield", mosquitto_dir / "broker-ca.pem")
        codes.write_text("".join(f"{c}\n" for c in printed))
        fleet = tmp_path / "fleet"
        stack.run(
            str(BIN / "trolley-kiosk"),
            "simulate",
            "--data-dir",
            str(fleet),
            "--enrol-file",
            str(codes),
            "--photos",
            str(PHOTOS),
            # Enrol only: Mosquitto would refuse every device until it has their passwords.
            "--count",
            "0",
            "--duration",
            "0",
            timeout=1200,
        )
        _mqtt_config(stack, mqtt_config, mosquitto_dir)
        mosquitto.send_signal(signal.SIGHUP)
        timings["enrol"] = time.monotonic() - started

        started = time.monotonic()
        simulator = stack.start(
            "fleet",
            str(BIN / "trolley-kiosk"),
            "simulate",
            "--data-dir",
            str(fleet),
            "--io-threads",
            "4",
            "--workers",
            "8",
            "--report-interval",
            "0",
        )
        _wait_for(
            lambda: f"ready: {DEVICES} device(s) connected" in stack.log("fleet"),
            600,
            f"{DEVICES} devices to connect:\n{stack.log('fleet')[-2000:]}",
        )
        assert simulator.poll() is None
        timings["connect"] = time.monotonic() - started

        tech = {
            "Authorization": "Bearer "
            + stack.run(trolley, "users", "token", "tech@oakfield.example").strip()
        }
        head_secret = _set_up_second_factor(env, "head@oakfield.example")
        head = {
            "Authorization": "Bearer "
            + stack.run(trolley, "users", "token", "head@oakfield.example").strip()
        }
        api = f"http://127.0.0.1:{web_port}/api/v1"
        started = time.monotonic()
        sent = requests.post(
            f"{api}/commands/fleet",
            json={"type": "wipe_photos", "asset_tags": tags, "reason": "End of term photo wipe"},
            headers=tech,
            timeout=300,
        )
        assert sent.status_code == 202, sent.text[:500]
        items = sent.json()["items"]
        assert len(items) == DEVICES
        batch_id = items[0]["batch_id"]
        approved = requests.post(
            f"{api}/commands/batches/{batch_id}/approve",
            # A token approves only with a fresh code (the one that turned it on is spent).
            json={"code": pyotp.TOTP(head_secret).at(time.time() + 30)},
            headers=head,
            timeout=300,
        )
        assert approved.status_code == 200, approved.text[:500]
        let_go = approved.json()["items"]
        assert len(let_go) == DEVICES and all(item["approved_at"] for item in let_go)
        assert {item["batch_id"] for item in let_go} == {batch_id}

        # Wait while the wipe makes progress; a stall means commands were lost.
        progress = {"done": -1, "at": time.monotonic()}
        while True:
            states = Counter(status for _c, status, _d in _commands(url, batch_id))
            if states["done"] == DEVICES:
                break
            if states["done"] != progress["done"]:
                progress = {"done": states["done"], "at": time.monotonic()}
            assert time.monotonic() - progress["at"] < 120, (
                f"the wipe stalled at {dict(states)}: commands the devices ran were lost\n"
                + stack.diagnosis("worker1", "worker2", "fleet", "mosquitto")
            )
            time.sleep(1)
        timings["wipe"] = time.monotonic() - started
        rows = _commands(url, batch_id)
        assert len(rows) == DEVICES and len({d for _c, _s, d in rows}) == DEVICES
        cmd_ids = {c for c, _s, _d in rows}
    finally:
        stack.stop()

    # Every device ran the wipe once: one ledger record for the batch's command, done, and no
    # photo left; a second run would show as a second record or a re-execution.
    runs = 0
    for state_file in sorted(fleet.glob("sim-*/agent-state.json")):
        state = json.loads(state_file.read_text())
        records = state["commands"]
        mine = [
            r
            for r in (records.values() if isinstance(records, dict) else records)
            if r["cmd_id"] in cmd_ids
        ]
        assert len(mine) == 1, f"{state_file.parent.name}: {mine}"
        assert mine[0]["stage"] == "done"
        assert not any((state_file.parent / "device" / "DCIM").iterdir())
        runs += 1
    assert runs == DEVICES
    retries = sum(stack.log(n).count("could not record") for n in ("worker1", "worker2"))
    figures = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    print(
        f"trust deployment, {DEVICES} devices, 3 web processes, 2 workers: {figures}; "
        f"{retries} batch retries"
    )
