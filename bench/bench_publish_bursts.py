"""Publishing commands in bursts through Mosquitto as `trolley mqtt-config` writes it, against
the same Mosquitto with Nagle's algorithm left on (its default).

- measured: the worker's own publishing step (`DeviceChannel._publish_all`: a burst of
  `PUBLISH_BATCH` QoS 1 commands, then wait for every PUBACK) on Trolley's MQTT client, burst
  after burst, to a Mosquitto started from the generated configuration (`set_tcp_nodelay true`).
- baseline: the same, to a Mosquitto started from the same configuration without that line.

Without it Mosquitto holds all but the first PUBACK of a burst until the worker's TCP stack
acknowledges the first, which Linux delays by up to 40 ms when it has nothing to send back: the
worker's publishing connection sends only commands. Rounds of each alternate and their medians
are compared; the figure is the wall time a burst takes.

    .venv/bin/python bench/bench_publish_bursts.py [--bursts N]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MOSQUITTO, free_port, wait_port, write_result

ROUNDS = 5
PAYLOAD = 450  # about a signed command's size
NAGLE_OFF = "set_tcp_nodelay true"


def _broker(work: Path, name: str, *, nodelay: bool) -> tuple[subprocess.Popen[bytes], int, str]:
    """A Mosquitto from the generated configuration (less its TCP_NODELAY line if asked)."""
    from mqtt.mosquitto import DEFAULT_SERVER_USERNAME, write_mosquitto_config

    port = free_port()
    password = f"bench-{name}-secret"
    run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
    files = write_mosquitto_config(
        work / name,
        port=port,
        passwords={DEFAULT_SERVER_USERNAME: password},
        run_as_user=run_as,
        iterations=1000,
    )
    text = files.conf.read_text()
    assert NAGLE_OFF in text.splitlines(), "the generated configuration changed"
    if not nodelay:
        files.conf.write_text(text.replace(NAGLE_OFF + "\n", ""))
    process = subprocess.Popen([MOSQUITTO, "-c", str(files.conf)], stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port, password


def _publish(port: int, password: str, bursts: int) -> float:
    """Seconds a burst took, over `bursts` bursts published as the worker does."""
    from mqtt.client import make_client
    from mqtt.mosquitto import DEFAULT_SERVER_USERNAME
    from mqtt.topics import cmd_topic
    from server.device_channel import PUBLISH_BATCH, DeviceChannel

    client = make_client(
        f"bench-bursts-{port}",
        username=DEFAULT_SERVER_USERNAME,
        password=password,
        clean_session=True,
        max_inflight=0,
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        time.sleep(0.3)
        # The step itself, on a stand-in holding just what it reads.
        channel: Any = SimpleNamespace(client=client, publish_timeout=30.0)
        burst = [
            (cmd_topic(f"dev-burst-{n:05d}"), b"x" * PAYLOAD, False) for n in range(PUBLISH_BATCH)
        ]
        began = time.perf_counter()
        for _ in range(bursts):
            if not DeviceChannel._publish_all(channel, burst):
                raise RuntimeError("the broker did not take a burst")
        return (time.perf_counter() - began) / bursts
    finally:
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trolley-bursts-"))
    brokers = []
    rounds: list[tuple[float, float]] = []
    try:
        ours, ours_port, ours_password = _broker(work, "generated", nodelay=True)
        brokers.append(ours)
        theirs, theirs_port, theirs_password = _broker(work, "nagle", nodelay=False)
        brokers.append(theirs)
        for n in range(ROUNDS):
            measured = _publish(ours_port, ours_password, args.bursts)
            baseline = _publish(theirs_port, theirs_password, args.bursts)
            print(
                f"round {n + 1}: {measured * 1000:.1f} ms a burst, "
                f"with Nagle's algorithm {baseline * 1000:.1f} ms"
            )
            rounds.append((measured, baseline))
    finally:
        for broker in brokers:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    measured = statistics.median(m for m, _b in rounds)
    baseline = statistics.median(b for _m, b in rounds)
    write_result(
        "publish_bursts",
        value=measured * 1000,
        unit="ms a burst of 100 commands",
        baseline=baseline * 1000,
        ratio=measured / baseline,
        target="≤ 0.5",
        details={"bursts": args.bursts, "payload_bytes": PAYLOAD, "rounds": rounds},
    )


if __name__ == "__main__":
    main()
