"""The server's own cost: Trolley's command pipeline against the raw broker round, both to the
same light responders (`bench/light_responders.py`, a process of their own).

- measured: one photo wipe for every device, asked for by the technician and approved by the
  headteacher (as the web does), then the worker process(es) sign and publish it, each device
  acks `received` and `done`, and the workers record both. The clock stops when the last
  `done` is committed. Before each round the earlier rounds' commands move a term back: the
  table keeps every row (a school's history), and the fleet budget sees a new day.
- baseline: a bare paho client (paho's own, not `mqtt.client`'s) with the server's login
  publishes one pre-signed command to every device and waits for both acks of each (counted,
  not parsed); on topics the workers do not hear, so they do no work meanwhile.

The devices do the same in both rounds (read the `cmd_id`, sign two acks), so the ratio is the
server pipeline against the broker alone; `bench_fanout.py` is the end-to-end measure with full
simulated kiosks. Mosquitto from `trolley mqtt-config`; SQLite with one worker, or PostgreSQL
with two (`--postgres`, `--shared`); each worker is two processes, one publishing and one
recording (`server/worker.py`). Five rounds of each alternate and their medians are compared:
on a shared 2-core machine one round of either swings by a fifth. Each raw round starts a
second after the measured one ends, so it never shares the machine with acks a worker still had
queued when the last `done` was committed.

    .venv/bin/python bench/bench_server_cost.py [--postgres] [--count N] [--big] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    MOSQUITTO,
    bench_school,
    free_port,
    last_term,
    wait_batch_done,
    wait_port,
    wipe_every_device,
    write_result,
)

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5
SETTLE = 1.0  # seconds between a measured round and the raw round after it
POSTGRES = "postgresql+psycopg://127.0.0.1:5432/test"
# The raw round's topics: the responders answer on them, the workers never subscribe to them.
BENCH_TOPICS = ("pattern read trolley/v1/bench/%u/cmd", "pattern write trolley/v1/bench/%u/ack")


def _log_waiter(path: Path, text: str, timeout: float) -> None:
    """Wait until a process's log says `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} never said {text!r}:\n{path.read_text()[-2000:]}")


def run(count: int, postgres: bool, work: Path, worker_count: int | None = None) -> dict[str, Any]:
    """Set up the school, broker, responders and workers, then time both rounds."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )
    from paho.mqtt import client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from sqlalchemy import create_engine, text

    from mqtt.envelope import encode_public_key, key_id, sign
    from mqtt.messages import build_command
    from mqtt.mosquitto import write_mosquitto_config
    from mqtt.passwords import hash_password
    from server import settle_process
    from server.config import load_settings
    from server.crypto import SecretBox
    from server.db import Database, make_engine, migrate
    from server.enrolment.models import DeviceIdentity
    from server.enrolment.services import (
        broker_password_hashes,
        server_broker_password,
        server_key,
    )

    schema = None
    if postgres:
        schema = f"cost_{uuid.uuid4().hex[:10]}"
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{work / 'trolley.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    mqtt_port = free_port()
    env = {
        "TROLLEY_DATABASE_URL": url,
        "TROLLEY_INSTANCE_DIR": str(work / "instance"),
        "TROLLEY_SECRET_KEY": "bench-" + "x" * 40,
        "TROLLEY_DATA_KEYS": Fernet.generate_key().decode(),
    }
    plain = load_settings(env=env)
    secret = server_broker_password(plain)
    env["TROLLEY_MQTT_URL"] = f"mqtt://{plain.mqtt_server_user}:{secret}@127.0.0.1:{mqtt_port}"
    settings = load_settings(env=env)
    database = Database(url)
    box = SecretBox(settings.data_keys)
    password = "bench-device-secret"
    shared_hash = hash_password(password)
    keys = [Ed25519PrivateKey.generate() for _ in range(count)]
    with database.begin() as session:
        bench = bench_school(session, box, count, tag="C", model="Responder")
        session.add_all(
            DeviceIdentity(
                school_id=bench.school_id,
                device_id=device_id,
                mqtt_id=f"dev-cost-{n:05d}",
                public_key=encode_public_key(key.public_key()),
                kid=key_id(key.public_key()),
                broker_secret_hash=shared_hash,
                platform="simulated",
            )
            for n, (device_id, key) in enumerate(zip(bench.device_ids, keys, strict=True))
        )
        server_key(session, box)
        session.flush()
        hashes = broker_password_hashes(session, settings)
    seed = [
        key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex() for key in keys
    ]
    devices_file = work / "devices.json"
    devices_file.write_text(
        json.dumps([[f"dev-cost-{n:05d}", password, seed[n]] for n in range(count)])
    )

    run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
    files = write_mosquitto_config(
        work / "mosquitto", port=mqtt_port, hashes=hashes, run_as_user=run_as
    )
    with files.acl_file.open("a") as acl:
        acl.write("\n# The raw round's topics (this benchmark only).\n")
        acl.write("".join(f"{line}\n" for line in BENCH_TOPICS))
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *argv: str) -> Path:
        log = work / f"{name}.log"
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    list(argv),
                    cwd=ROOT,
                    env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        return log

    started_at = time.perf_counter()
    try:
        start("mosquitto", MOSQUITTO, "-c", str(files.conf))
        wait_port(mqtt_port)
        responders = start(
            "responders",
            sys.executable,
            "-m",
            "bench.light_responders",
            str(devices_file),
            "127.0.0.1",
            str(mqtt_port),
        )
        _log_waiter(responders, f"ready {count}", 600)
        workers = worker_count or (2 if postgres else 1)
        for n in range(1, workers + 1):
            log = start(
                f"worker{n}",
                sys.executable,
                "-c",
                "from server.cli import main; main()",
                "worker",
                "--client-id",
                f"bench-cost-{n}",
                "--tick",
                "0.1",
                *(["--shared"] if workers > 1 else []),
            )
            # Each worker is two processes: one publishing, one recording (`server/worker.py`).
            for client in (f"bench-cost-{n}-publish", f"bench-cost-{n}\n"):
                _log_waiter(log, f"worker connected to the broker as {client}", 120)
        setup_seconds = time.perf_counter() - started_at
        # This process asks and approves as a web process would, and each of those settles once
        # started (`trolley serve`): the set-up here is kept out of full collections too.
        settle_process()

        def measured() -> float:
            """issue → approve → every `done` of this batch recorded."""
            last_term(database, bench)
            began = time.perf_counter()
            wait_batch_done(database, wipe_every_device(database, bench), count)
            return time.perf_counter() - began

        with database.begin() as session:
            signing = server_key(session, box)
        # paho's own client, not the one `mqtt.client` makes (which reads its socket a buffer
        # at a time): the baseline stays the bare library.
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.username_pw_set(settings.mqtt_server_user, secret)
        client.max_inflight_messages_set(0)
        acks = 0
        all_acked = threading.Event()
        lock = threading.Lock()

        def on_message(_c: Any, _u: Any, _message: Any) -> None:
            nonlocal acks
            with lock:
                acks += 1
                if acks >= 2 * count:
                    all_acked.set()

        client.on_message = on_message
        client.connect("127.0.0.1", mqtt_port)
        client.loop_start()
        client.subscribe("trolley/v1/bench/+/ack", qos=1)
        time.sleep(1)

        def baseline() -> float:
            """Bare paho: pre-signed commands out, both acks of each back."""
            nonlocal acks
            now = int(time.time())
            messages = [
                (
                    f"trolley/v1/bench/dev-cost-{n:05d}/cmd",
                    sign(
                        build_command(
                            "ping",
                            device_id=f"dev-cost-{n:05d}",
                            kid=signing.kid,
                            seq=1,
                            now=now,
                            exp=now + 600,
                        ).to_body(),
                        signing.private_key,
                    ),
                )
                for n in range(count)
            ]
            with lock:
                acks = 0
            all_acked.clear()
            began = time.perf_counter()
            for topic, payload in messages:
                client.publish(topic, payload, qos=1)
            assert all_acked.wait(600), f"{acks}/{2 * count} acks"
            return time.perf_counter() - began

        rounds = []
        for n in range(ROUNDS):
            e2e = measured()
            # What the round left the workers (a `received` still queued when the last `done`
            # was committed) is done before the raw round starts, which has the machine alone.
            time.sleep(SETTLE)
            bare = baseline()
            print(f"{count} round {n + 1}: Trolley {e2e:.2f} s, raw broker round {bare:.2f} s")
            rounds.append((e2e, bare))
        client.loop_stop()
        client.disconnect()
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        database.dispose()
        if schema is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return {
        "e2e": statistics.median(e for e, _b in rounds),
        "baseline": statistics.median(b for _e, b in rounds),
        "rounds": [{"e2e": e, "baseline": b} for e, b in rounds],
        "setup_seconds": setup_seconds,
        "workers": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL and two workers")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--big", action="store_true", help="10,000 devices")
    parser.add_argument(
        "--workers", type=int, help="`trolley worker`s (each two processes); 1 on SQLite, else 2"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    count = 10_000 if args.big else args.count
    database = "postgresql" if args.postgres else "sqlite"
    work = Path(tempfile.mkdtemp(prefix="trolley-cost-"))
    try:
        got = run(count, args.postgres, work, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(
        f"server_cost_{database}_{count}",
        value=got["e2e"],
        unit="s",
        baseline=got["baseline"],
        ratio=got["e2e"] / got["baseline"],
        target="≤ 3",
        details={
            "devices": count,
            "broker": "mosquitto",
            "database": database,
            "workers": got["workers"],
            "server_ms_per_device": 1000 * (got["e2e"] - got["baseline"]) / count,
            "rounds": got["rounds"],
            "setup_seconds": got["setup_seconds"],
            "run": uuid.uuid4().hex[:8],
        },
    )


if __name__ == "__main__":
    main()
