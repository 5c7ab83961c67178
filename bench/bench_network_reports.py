"""The worker's cost of a batch of kiosk reports that each name a network.

Builds a school with listed networks and `--count` enrolled kiosks (in two schools, so the
batch spans more than one network list), then hands the device channel batches of signed
reports, as the broker would, and times `DeviceChannel.process`. Counts the SQL statements
each batch runs. SQLite in a temporary folder, or PostgreSQL with `--postgres URL`.

    .venv/bin/python bench/bench_network_reports.py [--count N] [--rounds R] [--postgres URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

import server.models_registry  # noqa: F401  (every mapper)
from mqtt.envelope import encode_public_key, key_id, sign
from mqtt.messages import Report
from mqtt.topics import reported_topic
from server.config import load_settings
from server.crypto import SecretBox
from server.db import Database, make_engine, migrate
from server.device_channel import DeviceChannel
from server.devices.models import Device, DeviceStatus, Platform
from server.enrolment.models import DeviceIdentity
from server.schools.models import SchoolNetwork
from server.schools.services import create_school


def _seed(database: Database, count: int) -> list[tuple[str, Ed25519PrivateKey]]:
    """Two schools with listed networks; `count` kiosks split between them; their keys."""
    kiosks = []
    with database.begin() as session:
        schools = [create_school(session, slug=f"s{n}", name=f"School {n}") for n in (1, 2)]
        for school in schools:
            for n in range(10):
                session.add(SchoolNetwork(school_id=school.id, ssid=f"STAFF-{n}"))
                session.add(SchoolNetwork(school_id=school.id, public_range=f"81.2.{n}.0/24"))
        for n in range(count):
            school = schools[n % 2]
            device = Device(
                school_id=school.id,
                asset_tag=f"K{n:05d}",
                serial=f"SER{n:05d}",
                status=DeviceStatus.IN_SERVICE,
                platform=Platform.LINUX,
                make="Kiosk",
                model="Kiosk",
            )
            session.add(device)
            session.flush()
            key = Ed25519PrivateKey.generate()
            mqtt_id = f"dev-{uuid.uuid4().hex[:16]}"
            session.add(
                DeviceIdentity(
                    school_id=school.id,
                    device_id=device.id,
                    mqtt_id=mqtt_id,
                    public_key=encode_public_key(key.public_key()),
                    kid=key_id(key.public_key()),
                    broker_secret_hash="x",
                    platform="linux",
                    enrolled_at=datetime.now(UTC),
                )
            )
            kiosks.append((mqtt_id, key))
    return kiosks


def _batch(kiosks: list[tuple[str, Ed25519PrivateKey]], round_: int) -> list[tuple[str, bytes]]:
    """One signed report from every kiosk, on a school Wi-Fi or a café's (alternating)."""
    stamp = int(time.time())
    out = []
    for n, (mqtt_id, key) in enumerate(kiosks):
        ssid = "STAFF-1" if (n + round_) % 2 else "Costa-Guest"
        report = Report(
            kid=key_id(key.public_key()),
            device_id=mqtt_id,
            iat=stamp,
            exp=stamp + 60,
            network={"ssid": ssid, "gateway": "10.0.0.1"},
        )
        out.append((reported_topic(mqtt_id), sign(report.to_body(), key)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="kiosks, one report each a batch")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--postgres", help="a PostgreSQL URL to an empty database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        settings = load_settings(
            env={},
            overrides={"testing": True, "database_url": url, "instance_dir": Path(folder)},
        )
        database = Database(url)
        kiosks = _seed(database, args.count)
        statements = [0]

        @event.listens_for(database.engine, "before_cursor_execute")
        def _count(*_args: object) -> None:
            statements[0] += 1

        channel = DeviceChannel(
            database,
            settings,
            SecretBox(settings.data_keys),
            broker_url="mqtt://127.0.0.1:1",  # never connected: batches are handed over directly
            batch=args.count,
        )
        times, counts = [], []
        for round_ in range(args.rounds):
            batch = _batch(kiosks, round_)
            statements[0] = 0
            start = time.perf_counter()
            channel.process(batch)
            times.append(time.perf_counter() - start)
            counts.append(statements[0])
        assert channel.stats.reports == args.count * args.rounds, channel.stats
        print(
            f"{args.count} reports a batch, {args.rounds} batches ({engine.dialect.name}): "
            f"median {statistics.median(times) * 1000:.0f} ms a batch, "
            f"min {min(times) * 1000:.0f} ms, {statistics.median(counts):.0f} SQL statements"
        )


if __name__ == "__main__":
    main()
