"""Kiosk client footprint: idle RSS and CPU of one `trolley-kiosk run`, and the simulator's
memory per device.

A Trolley server (werkzeug, SQLite) enrols real simulated kiosks over HTTP; they connect to the
machine's Mosquitto at 127.0.0.1:1883. Then:

- one `trolley-kiosk run` process idles for `--idle` seconds: RSS (VmRSS) and CPU (utime+stime)
  are read from /proc. Baseline: a bare `python -c` interpreter in the same venv. Aim ≤ 30 MB.
- what dominates: the RSS after importing each heavy module on its own.
- `trolley-kiosk simulate` with a small and a large fleet: (RSS large − RSS small) / devices.

Prints the ratio (RSS / 30 MB) first, writes bench/results/kiosk.json.

    .venv/bin/python bench/bench_kiosk.py [--idle S] [--fleet N]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result

TARGET_MB = 30.0
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def settle(proc: subprocess.Popen[bytes], seconds: float) -> float:
    """Wait, then the process's RSS (fails loudly if it died)."""
    time.sleep(seconds)
    if proc.poll() is not None:
        raise RuntimeError(f"exited with {proc.returncode}")
    return rss_mb(proc.pid)


def import_rss(module: str) -> float:
    """RSS of a fresh interpreter after importing `module` (empty: the bare interpreter)."""
    code = (f"import {module}; " if module else "") + (
        "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def serve_and_enrol(work: Path, count: int) -> list[Path]:
    """A server on SQLite that gives devices the machine's Mosquitto; enrol `count` kiosks."""
    from werkzeug.serving import make_server

    from kiosk_client import enrol_fleet
    from server import create_app
    from server.config import load_settings
    from server.crypto import SecretBox
    from server.db import Database, make_engine, migrate
    from server.devices.models import Device, DeviceStatus, Platform
    from server.enrolment.services import issue_enrolment_token, server_key
    from server.schools.services import create_school

    url = f"sqlite:///{work / 'trolley.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    overrides: dict[str, Any] = {
        "testing": True,
        "database_url": url,
        "instance_dir": work / "instance",
        "base_url": f"http://127.0.0.1:{port}",
        "secret_key": "bench-" + "x" * 40,
        "mqtt_url": "mqtt://127.0.0.1:1883",
    }
    settings = load_settings(env={}, overrides=overrides)
    database = Database(url)
    with database.begin() as session:
        school = create_school(session, slug="kiosk-bench", name="Bench Primary")
        devices = [
            Device(
                school_id=school.id,
                asset_tag=f"K-{n:05d}",
                serial=f"KS{n:08d}",
                platform=Platform.LINUX,
                make="Bench",
                model="Kiosk",
                status=DeviceStatus.IN_SERVICE,
            )
            for n in range(count)
        ]
        session.add_all(devices)
        server_key(session, SecretBox(settings.data_keys))
        session.commit()
        codes = [issue_enrolment_token(session, None, d, settings)[1].encode() for d in devices]
    app = create_app({**overrides, "data_keys": settings.data_keys})
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        return enrol_fleet(codes, work / "fleet", sample_photos=2, concurrency=4)
    finally:
        httpd.shutdown()
        database.dispose()


def kiosk_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kiosk_client", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--fleet", type=int, default=500)
    parser.add_argument("--small", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="trolley-kiosk-bench-"))
    try:
        dirs = serve_and_enrol(work, args.fleet)
        # --- one kiosk, idle ------------------------------------------------------------
        kiosk = subprocess.Popen(
            kiosk_cli("run", "--data-dir", str(dirs[0])),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            settle(kiosk, 5)
            cpu_before, started = cpu_seconds(kiosk.pid), time.monotonic()
            peak = max(settle(kiosk, args.idle / 4) for _ in range(4))
            cpu = (cpu_seconds(kiosk.pid) - cpu_before) / (time.monotonic() - started)
            rss = rss_mb(kiosk.pid)
        finally:
            kiosk.terminate()
            kiosk.wait(timeout=15)
        bare = import_rss("")
        imports = {
            name: round(import_rss(name) - bare, 1)
            for name in (
                "paho.mqtt.client",
                "cryptography.hazmat.primitives.asymmetric.ed25519",
                "requests",
                "device_profiles",
                "provisioning",
                "mqtt.messages",
                "kiosk_client.agent",
                "kiosk_client.cli",
            )
        }
        # --- the simulator: memory per device -----------------------------------------
        fleet_rss = {}
        for count in (args.small, args.fleet):
            sim = subprocess.Popen(
                kiosk_cli("simulate", "--data-dir", str(work / "fleet"), "--count", str(count)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                fleet_rss[count] = settle(sim, 15)
            finally:
                sim.terminate()
                sim.wait(timeout=30)
        per_device_kib = (
            (fleet_rss[args.fleet] - fleet_rss[args.small]) * 1024 / (args.fleet - args.small)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(
        "kiosk",
        value=rss,
        unit="MB RSS (idle trolley-kiosk run)",
        baseline=TARGET_MB,
        ratio=rss / TARGET_MB,
        target="≤ 1.0 (RSS ≤ 30 MB)",
        details={
            "idle_seconds": args.idle,
            "peak_rss_mb": round(peak, 1),
            "idle_cpu_percent": round(cpu * 100, 3),
            "bare_interpreter_rss_mb": round(bare, 1),
            "import_rss_mb_over_bare": imports,
            "simulator_rss_mb": {str(k): round(v, 1) for k, v in fleet_rss.items()},
            "simulator_kib_per_device": round(per_device_kib, 1),
        },
    )
    print(f"idle CPU {cpu * 100:.3f}%  bare interpreter {bare:.1f} MB")
    print("RSS over a bare interpreter after importing:")
    for name, extra in sorted(imports.items(), key=lambda item: -item[1]):
        print(f"  {extra:6.1f} MB  {name}")
    print(f"simulator: {fleet_rss}  → {per_device_kib:.1f} KiB per device")


if __name__ == "__main__":
    main()
