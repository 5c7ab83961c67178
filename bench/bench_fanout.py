"""Photo-wipe fan-out end to end against a raw paho publish/ack round to the same devices.

One run, one broker, one fleet of real simulated kiosks (`FleetSimulator`, enrolled over HTTP):

- measured: `commands.issue` + `commands.approve` of a photo wipe for every device → the
  worker's `DeviceChannel` signs and publishes the outbox → every device verifies, wipes and
  acks → every `done` is recorded in the database (SQLite file). Clock stops when the last
  `done` is committed.
- baseline: a bare paho client with the server's login publishes one pre-signed command to
  every device (no database) and waits for every `done` ack on the wildcard.

The two alternate for `ROUNDS` rounds each and the medians are compared: a single round of each
swings widely with whatever else the machine is doing.

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

from sqlalchemy import func, select, update
from werkzeug.serving import make_server

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

# Measured and baseline rounds, alternated; the medians are compared.
ROUNDS = 3


def run(broker: str, count: int, work: Path) -> dict[str, Any]:
    """Set up a school of `count` kiosks on `broker`, then time both rounds."""
    from kiosk_client import FleetSimulator, enrol_fleet
    from mqtt.broker import EmbeddedBroker
    from mqtt.envelope import open_envelope, sign
    from mqtt.messages import Ack, AckState, build_command
    from mqtt.mosquitto import write_mosquitto_config
    from mqtt.topics import QOS, cmd_topic
    from server import create_app
    from server.config import load_settings
    from server.crypto import SecretBox
    from server.db import Database, make_engine, migrate
    from server.device_channel import DeviceChannel, broker_url_for_worker
    from server.devices.models import Device
    from server.enrolment.models import DeviceIdentity
    from server.enrolment.services import (
        broker_password_hashes,
        issue_enrolment_token,
        server_broker_password,
        server_key,
        write_broker_passwords,
    )

    url = f"sqlite:///{work / 'trolley.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    http_port, mqtt_port = free_port(), free_port()
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
        bench = bench_school(session, box, count, tag="B", model="Kiosk")
        server_key(session, box)
        session.commit()
        codes = []
        for device_id in bench.device_ids:
            device = session.get(Device, device_id)
            assert device is not None
            _t, payload = issue_enrolment_token(session, None, device, settings)
            codes.append(payload.encode())
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
        wait_port(mqtt_port)
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
    fleet = FleetSimulator(work / "fleet", count=count, report_interval=0)
    pumping: list[tuple[threading.Event, threading.Thread]] = []

    def start_pump() -> None:
        stop = threading.Event()

        def pump() -> None:  # the publishing half of `run_forever`
            while not stop.is_set():
                channel.pump()
                channel.wait_for_work(0.2)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        pumping.append((stop, thread))

    def stop_pump() -> None:
        while pumping:
            stop, thread = pumping.pop()
            stop.set()
            thread.join(timeout=10)

    def measured() -> float:
        """issue → approve → every `done` of this batch recorded."""
        last_term(database, bench)
        started = time.perf_counter()
        batch = wipe_every_device(database, bench)
        channel.wake()
        wait_batch_done(database, batch, count)
        return time.perf_counter() - started

    def baseline() -> float:
        """Bare paho on the worker's own connection: pre-signed commands, every `done` ack."""
        from mqtt.envelope import decode_public_key
        from mqtt.errors import MqttError
        from mqtt.topics import TopicKind, parse_device_topic

        with database.begin() as session:
            signing = server_key(session, box)
            identities = list(session.scalars(select(DeviceIdentity)))
            ids = [(i.mqtt_id, i.last_seq) for i in identities]
            decoded = {i.mqtt_id: {i.kid: decode_public_key(i.public_key)} for i in identities}
            # The devices will have seen these sequence numbers: the next measured round
            # must go on from them, as the worker would.
            session.execute(update(DeviceIdentity).values(last_seq=DeviceIdentity.last_seq + 1))
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

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            try:
                mqtt_id, kind = parse_device_topic(message.topic)
            except MqttError:
                return
            if kind is not TopicKind.ACK:
                return
            body = open_envelope(
                bytes(message.payload), decoded[mqtt_id], device_id=mqtt_id, now=int(time.time())
            )
            if Ack.from_body(body).state is AckState.DONE:
                acked.add(mqtt_id)
                if len(acked) >= count:
                    all_done.set()

        raw = channel.client
        recording = raw.on_message
        raw.on_message = on_message
        try:
            started = time.perf_counter()
            for topic, payload in messages:
                raw.publish(topic, payload, qos=QOS)
            assert all_done.wait(300), f"{len(acked)}/{count} acks"
            return time.perf_counter() - started
        finally:
            raw.on_message = recording

    rounds: list[tuple[float, float]] = []
    try:
        # The worker connects first: paho's network thread watches its socket with select(),
        # which cannot take a descriptor above 1023, and the fleet's sockets (and the embedded
        # broker's, which share this process) would otherwise push it there.
        channel.start()
        assert channel.connected.wait(30), "the worker could not connect to the broker"
        fleet.start()
        fleet.wait_connected(timeout=300)

        def online() -> int:
            with database.begin() as session:
                return int(
                    session.scalar(select(func.count()).where(DeviceIdentity.online.is_(True))) or 0
                )

        start_pump()
        while online() < count:
            time.sleep(0.2)
        # Alternate the two, so that noise on the machine falls on both alike.
        for n in range(ROUNDS):
            if n:
                start_pump()
            e2e = measured()
            stop_pump()  # the baseline borrows the worker's connection
            bare = baseline()
            print(f"{broker} {count} round {n + 1}: end to end {e2e:.2f} s, baseline {bare:.2f} s")
            rounds.append((e2e, bare))
        channel.stop()
    finally:
        stop_pump()
        fleet.stop()
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
        if embedded is not None:
            embedded.stop()
        database.dispose()
    return {
        "e2e": statistics.median(e for e, _b in rounds),
        "baseline": statistics.median(b for _e, b in rounds),
        "rounds": [{"e2e": e, "baseline": b} for e, b in rounds],
        "enrol_seconds": enrol_seconds,
    }


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
                "rounds": got["rounds"],
                "run": uuid.uuid4().hex[:8],
            },
        )


if __name__ == "__main__":
    main()
