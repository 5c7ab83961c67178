"""Photo-wipe fan-out end to end against a raw paho publish/ack round to the same devices.

One run, one broker, one fleet of real simulated kiosks (`FleetSimulator`, enrolled over HTTP):

- measured: `commands.issue` + `commands.approve` of a photo wipe for every device → the
  worker's `DeviceChannel` signs and publishes the outbox → every device verifies, wipes and
  acks → every `done` is recorded in the database (SQLite file). Clock stops when the last
  `done` is committed.
- baseline: a bare paho client with the server's login publishes one pre-signed command to
  every device (no database) and waits for every `done` ack on the wildcard.

Brokers: `--broker mosquitto` (a private Mosquitto on a free port with per-device passwords)
or `--broker embedded`. Prints the ratio first (aim ≤ 1.5 on Mosquitto), writes
bench/results/fanout_<broker>_<count>.json.

    .venv/bin/python bench/bench_fanout.py [--broker mosquitto|embedded|both] [--count N] [--big]
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select
from werkzeug.serving import make_server

from bench.common import write_result

MOSQUITTO = "/usr/sbin/mosquitto"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def run(broker: str, count: int, work: Path) -> dict[str, Any]:
    """Set up a school of `count` kiosks on `broker`, then time both rounds."""
    from kiosk_client import FleetSimulator, enrol_fleet
    from mqtt.broker import EmbeddedBroker
    from mqtt.envelope import open_envelope, sign
    from mqtt.messages import Ack, AckState, build_command
    from mqtt.mosquitto import write_mosquitto_config
    from mqtt.topics import QOS, cmd_topic
    from server import create_app
    from server.auth.models import Role
    from server.auth.services import create_user
    from server.commands import services as commands
    from server.commands.models import Command, CommandStatus
    from server.config import load_settings
    from server.crypto import SecretBox
    from server.db import Database, make_engine, migrate
    from server.devices.models import Device, DeviceStatus, Platform
    from server.enrolment.models import DeviceIdentity
    from server.enrolment.services import (
        broker_password_hashes,
        issue_enrolment_token,
        server_broker_password,
        server_key,
        write_broker_passwords,
    )
    from server.schools.services import create_school
    from server.worker import DeviceChannel, broker_url_for_worker

    url = f"sqlite:///{work / 'trolley.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    http_port, mqtt_port = _free_port(), _free_port()
    base: dict[str, Any] = {
        "testing": True,
        "database_url": url,
        "instance_dir": work / "instance",
        "base_url": f"http://127.0.0.1:{http_port}",
        "secret_key": "bench-" + "x" * 40,
    }
    if broker == "mosquitto":
        plain = load_settings(env={}, overrides=dict(base))
        secret = server_broker_password(plain)
        base["mqtt_url"] = f"mqtt://{plain.mqtt_server_user}:{secret}@127.0.0.1:{mqtt_port}"
    else:
        base["mqtt_port"] = mqtt_port
    settings = load_settings(env={}, overrides=base)
    database = Database(url)
    box = SecretBox(settings.data_keys)
    with database.begin() as session:
        school = create_school(session, slug="bench", name="Bench Primary")
        users = [
            create_user(
                session,
                actor=None,
                school=school,
                email=f"{role.value}@bench.example",
                name=role.value,
                role=role,
                password="long-password-1",
            )
            for role in (Role.TECHNICIAN, Role.HEADTEACHER)
        ]
        devices = [
            Device(
                school_id=school.id,
                asset_tag=f"B-{n:05d}",
                serial=f"SN{n:08d}",
                platform=Platform.LINUX,
                make="Bench",
                model="Kiosk",
                status=DeviceStatus.IN_SERVICE,
            )
            for n in range(count)
        ]
        session.add_all(devices)
        server_key(session, box)
        session.commit()
        codes = []
        for device in devices:
            _t, payload = issue_enrolment_token(session, None, device, settings)
            codes.append(payload.encode())
        tech_id, head_id = users[0].id, users[1].id
    app = create_app({**base, "data_keys": settings.data_keys})
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", http_port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    started = time.perf_counter()
    enrol_fleet(codes, work / "fleet", sample_photos=2, concurrency=4)
    enrol_seconds = time.perf_counter() - started
    httpd.shutdown()
    process = embedded = None
    with database.begin() as session:
        hashes = broker_password_hashes(session, settings)
    if broker == "mosquitto":
        run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
        files = write_mosquitto_config(
            work / "mosquitto", port=mqtt_port, hashes=hashes, run_as_user=run_as
        )
        process = subprocess.Popen(
            [MOSQUITTO, "-c", str(files.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(mqtt_port)
    else:
        with database.begin() as session:
            password_file = write_broker_passwords(session, settings)
        assert password_file is not None
        embedded = EmbeddedBroker(
            password_file=password_file,
            data_dir=work / "broker-data",
            port=mqtt_port,
            server_users=(settings.mqtt_server_user,),
        )
        embedded.start()
    channel = DeviceChannel(
        database, settings, box, broker_url=broker_url_for_worker(settings), client_id="bench-w"
    )
    stop = threading.Event()

    def pump() -> None:  # what `run_forever` does between scheduler passes
        while not stop.is_set():
            channel.publish_pending()
            channel.publish_desired()
            channel.wait_for_work(0.2)

    fleet = FleetSimulator(work / "fleet", count=count, report_interval=0)
    try:
        # The worker connects first: paho's network thread watches its socket with select(),
        # which cannot take a descriptor above 1023, and the fleet's sockets (and the embedded
        # broker's, which share this process) would otherwise push it there.
        channel.start()
        assert channel.connected.wait(30), "the worker could not connect to the broker"
        fleet.start()
        fleet.wait_connected(timeout=300)
        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()

        def online() -> int:
            with database.begin() as session:
                return int(
                    session.scalar(select(func.count()).where(DeviceIdentity.online.is_(True))) or 0
                )

        while online() < count:
            time.sleep(0.2)
        # --- measured: issue → approve → every done recorded -----------------------------
        started = time.perf_counter()
        with database.begin() as session:
            from server.auth.models import User

            tech, head = session.get(User, tech_id), session.get(User, head_id)
            rows = list(session.scalars(select(Device)))
            issued = commands.issue(session, tech, rows, "wipe_photos", reason="bench")
            commands.approve(session, head, batch_id=issued[0].batch_id)
        channel.wake()
        while True:
            with database.begin() as session:
                done = int(
                    session.scalar(select(func.count()).where(Command.status == CommandStatus.DONE))
                    or 0
                )
            if done >= count:
                break
            time.sleep(0.02)
        e2e = time.perf_counter() - started
        print(f"{broker} {count}: end to end {e2e:.2f} s", flush=True)
        stop.set()
        pumper.join(timeout=10)
        # --- baseline: bare paho, pre-signed commands, every done ack ----------------------
        with database.begin() as session:
            signing = server_key(session, box)
            ids = list(session.execute(select(DeviceIdentity.mqtt_id, DeviceIdentity.last_seq)))
            keys = {i.mqtt_id: i for i in session.scalars(select(DeviceIdentity))}
            pubkeys = {m: (i.kid, i.public_key) for m, i in keys.items()}
        now = int(time.time())
        messages = [
            (
                cmd_topic(mqtt_id),
                sign(
                    build_command(
                        "wipe_photos",
                        device_id=mqtt_id,
                        kid=signing.kid,
                        seq=seq + 1,
                        now=now,
                        exp=now + 600,
                    ).to_body(),
                    signing.private_key,
                ),
            )
            for mqtt_id, seq in ids
        ]
        acked: set[str] = set()
        all_done = threading.Event()
        from mqtt.envelope import decode_public_key

        decoded = {m: {kid: decode_public_key(pub)} for m, (kid, pub) in pubkeys.items()}

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            mqtt_id = message.topic.split("/")[-2]
            body = open_envelope(
                bytes(message.payload), decoded[mqtt_id], device_id=mqtt_id, now=int(time.time())
            )
            if Ack.from_body(body).state is AckState.DONE:
                acked.add(mqtt_id)
                if len(acked) >= count:
                    all_done.set()

        # The worker's own paho connection (already subscribed to every ack), without the
        # database behind it: only the broker round trip and the devices' work remain.
        raw = channel.client
        raw.on_message = on_message
        started = time.perf_counter()
        for topic, payload in messages:
            raw.publish(topic, payload, qos=QOS)
        assert all_done.wait(300), f"{len(acked)}/{count} acks"
        baseline = time.perf_counter() - started
        channel.stop()
    finally:
        stop.set()
        fleet.stop()
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
        if embedded is not None:
            embedded.stop()
        database.dispose()
    return {"e2e": e2e, "baseline": baseline, "enrol_seconds": enrol_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["mosquitto", "embedded", "both"], default="both")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--big", action="store_true", help="also 5,000 devices on Mosquitto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    runs = [("mosquitto", args.count), ("embedded", args.count)]
    if args.broker != "both":
        runs = [(args.broker, args.count)]
    if args.big:
        runs.append(("mosquitto", 5000))
    for broker, count in runs:
        work = Path(tempfile.mkdtemp(prefix="trolley-fanout-"))
        try:
            got = run(broker, count, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        ratio = got["e2e"] / got["baseline"]
        write_result(
            f"fanout_{broker}_{count}",
            value=got["e2e"],
            unit="s",
            baseline=got["baseline"],
            ratio=ratio,
            target="≤ 1.5" if broker == "mosquitto" else "report",
            details={
                "devices": count,
                "broker": broker,
                "database": "sqlite",
                "e2e_per_second": count / got["e2e"],
                "baseline_per_second": count / got["baseline"],
                "enrol_seconds": got["enrol_seconds"],
                "run": uuid.uuid4().hex[:8],
            },
        )


if __name__ == "__main__":
    main()
