"""Receiving a stream of small QoS 1 messages: Trolley's MQTT client against paho's own.

- measured: the client `mqtt.client.make_client` builds (it reads its socket up to 64 KiB at a
  time and handles every packet read before waiting again) subscribes and receives `--count`
  messages of 300 bytes, the size of a device's ack; the CPU time of the receiving process per
  message is the figure.
- baseline: paho's own client, configured alike, receiving the same stream.

A second process publishes the stream through a private Mosquitto, 500 messages at a time, so
no queue limit drops any. Rounds of each alternate and their medians are compared.

    .venv/bin/python bench/bench_client_reads.py [--count N]
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
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MOSQUITTO, free_port, wait_port, write_result

ROUNDS = 5
CHUNK = 500
PAYLOAD = 300

# The publishing process: `CHUNK` messages, wait for their PUBACKs, a pause, and again.
_PUBLISHER = """
import sys, time
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, count, chunk, size = (int(a) for a in sys.argv[1:5])
client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-tx", protocol=paho.MQTTv311)
client.max_inflight_messages_set(0)
client.connect("127.0.0.1", port)
client.loop_start()
time.sleep(0.3)
for start in range(0, count, chunk):
    sent = [
        client.publish(f"bench/dev-{n % 1000:05d}/ack", b"x" * size, qos=1)
        for n in range(start, min(count, start + chunk))
    ]
    for info in sent:
        info.wait_for_publish(30)
    time.sleep(0.05)
client.disconnect()
client.loop_stop()
"""


def _receive(make: Any, port: int, count: int) -> float:
    """CPU seconds this process spent receiving `count` messages on a client from `make`."""
    received = 0
    done = threading.Event()

    def on_message(_client: Any, _userdata: Any, _message: Any) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    client = make()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe("bench/#", qos=1)
    time.sleep(0.3)
    publisher = subprocess.Popen(
        [sys.executable, "-c", _PUBLISHER, str(port), str(count), str(CHUNK), str(PAYLOAD)]
    )
    began = time.process_time()
    try:
        if not done.wait(120):
            raise RuntimeError(f"{received} of {count} messages arrived")
        return time.process_time() - began
    finally:
        publisher.wait(60)
        client.disconnect()
        client.loop_stop()


def main() -> None:
    from paho.mqtt import client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from mqtt.client import make_client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trolley-reads-"))
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
        # As root Mosquitto would switch to its own user; it stays this one.
        + (f"user {pwd.getpwuid(os.getuid()).pw_name}\n" if os.getuid() == 0 else "")
    )
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    rounds: list[tuple[float, float]] = []
    try:
        wait_port(port)

        def bare() -> Any:
            client = paho.Client(
                CallbackAPIVersion.VERSION2, client_id="bench-rx-bare", protocol=paho.MQTTv311
            )
            client.max_inflight_messages_set(0)
            return client

        def trolley() -> Any:
            return make_client("bench-rx-trolley", clean_session=True, max_inflight=0)

        for n in range(ROUNDS):
            ours = _receive(trolley, port, args.count)
            theirs = _receive(bare, port, args.count)
            per = 1e6 / args.count
            print(f"round {n + 1}: Trolley's {ours * per:.1f} µs, paho's {theirs * per:.1f} µs")
            rounds.append((ours, theirs))
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    ours = statistics.median(o for o, _t in rounds) * 1e6 / args.count
    theirs = statistics.median(t for _o, t in rounds) * 1e6 / args.count
    write_result(
        "client_reads",
        value=ours,
        unit="µs CPU a message",
        baseline=theirs,
        ratio=ours / theirs,
        target="≤ 0.7",
        details={"messages": args.count, "payload_bytes": PAYLOAD, "rounds": rounds},
    )


if __name__ == "__main__":
    main()
