"""Light devices for benchmarks: many MQTT connections in one process of their own, each
answering a command with a signed `received` and a signed `done` ack and doing nothing else.

    python -m bench.light_responders DEVICES.json HOST PORT

DEVICES.json lists `[mqtt_id, password, private key seed (hex)]`. The process prints `ready N`
once every device has subscribed, then answers until SIGTERM. A device reads only the command's
`cmd_id` (no signature check, no state, no photos), so the device side of a round is two
Ed25519 signatures: the same for Trolley's round and for the raw broker round.
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mqtt import packets as wire
from mqtt.envelope import key_id, sign
from mqtt.messages import AckState, build_ack
from mqtt.topics import ack_topic, cmd_topic

# The raw round's tree (its ACL lines are added by the benchmark), mirroring `trolley/v1/dev`.
BENCH_TREE = "trolley/v1/bench"

# Connections opened at once: Mosquitto's listen backlog is finite.
CONNECT_BATCH = 200


async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One packet: its first byte and its body."""
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, await reader.readexactly(length)


class Device:
    """One light responder."""

    def __init__(self, mqtt_id: str, password: str, seed: str) -> None:
        self.mqtt_id = mqtt_id
        self.password = password
        self.key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        self.kid = key_id(self.key.public_key())
        self.packet_id = 0

    async def connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Log in with a persistent session and subscribe to its commands."""
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            wire.connect(
                self.mqtt_id,
                username=self.mqtt_id,
                password=self.password,
                clean=False,
                keepalive=600,
            )
        )
        first, body = await _read(reader)
        if first >> 4 != wire.CONNACK or body[1] != 0:
            raise RuntimeError(f"{self.mqtt_id}: refused ({body!r})")
        writer.write(
            wire.subscribe(1, (cmd_topic(self.mqtt_id), 1), (f"{BENCH_TREE}/{self.mqtt_id}/cmd", 1))
        )
        while (await _read(reader))[0] >> 4 != wire.SUBACK:
            pass
        return reader, writer

    def _ack(self, topic: str, cmd_id: str, state: AckState) -> bytes:
        self.packet_id = self.packet_id % 65535 + 1
        ack = build_ack(cmd_id, state, device_id=self.mqtt_id, kid=self.kid, now=int(time.time()))
        payload = sign(ack.to_body(), self.key)
        return wire.publish(topic, payload, qos=1, packet_id=self.packet_id)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer every command until the connection ends."""
        while True:
            first, body = await _read(reader)
            if first >> 4 != wire.PUBLISH:
                continue  # PUBACKs for our acks
            (length,) = struct.unpack("!H", body[:2])
            raw = body[2 : 2 + length].decode().startswith(BENCH_TREE)
            topic = f"{BENCH_TREE}/{self.mqtt_id}/ack" if raw else ack_topic(self.mqtt_id)
            qos = (first >> 1) & 0x03
            start = 2 + length
            if qos:
                writer.write(wire.puback(struct.unpack("!H", body[start : start + 2])[0]))
                start += 2
            cmd_id = json.loads(body[start:])["body"]["cmd_id"]
            received = self._ack(topic, cmd_id, AckState.RECEIVED)
            writer.write(received + self._ack(topic, cmd_id, AckState.DONE))


async def main(devices_file: Path, host: str, port: int) -> None:
    """Connect every device, say `ready N`, answer until SIGTERM."""
    devices = [Device(*entry) for entry in json.loads(devices_file.read_text())]
    connections = []
    for start in range(0, len(devices), CONNECT_BATCH):
        batch = devices[start : start + CONNECT_BATCH]
        connections += await asyncio.gather(*(d.connect(host, port) for d in batch))
    tasks = [asyncio.ensure_future(d.serve(*c)) for d, c in zip(devices, connections, strict=True)]
    print(f"ready {len(devices)}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    for _reader, writer in connections:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
