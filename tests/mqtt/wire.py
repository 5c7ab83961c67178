"""Raw MQTT 3.1.1 packets over a socket: what the conformance cases send that paho never would."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from mqtt.packets import (  # noqa: F401  (the cases build their packets through this module)
    CONNACK,
    CONNECT,
    DISCONNECT,
    DISCONNECT_PACKET,
    PINGREQ,
    PINGREQ_PACKET,
    PINGRESP,
    PUBACK,
    PUBLISH,
    SUBACK,
    SUBSCRIBE,
    Will,
    connect,
    frame,
    puback,
    publish,
    remaining_length,
    string,
    subscribe,
)


@dataclass(frozen=True)
class Packet:
    """One packet read back from the broker."""

    kind: int
    flags: int
    body: bytes

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x03

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def topic(self) -> str:
        (length,) = struct.unpack("!H", self.body[:2])
        return self.body[2 : 2 + length].decode()

    @property
    def packet_id(self) -> int:
        (length,) = struct.unpack("!H", self.body[:2])
        start = 0 if self.kind != PUBLISH else 2 + length
        return int(struct.unpack("!H", self.body[start : start + 2])[0])

    @property
    def payload(self) -> bytes:
        (length,) = struct.unpack("!H", self.body[:2])
        return self.body[2 + length + (2 if self.qos else 0) :]


class Closed(Exception):
    """The broker closed the connection."""


class Wire:
    """One raw connection to a broker."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        """Send bytes; a broker that already hung up is not an error here."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _fill(self, size: int, deadline: float) -> None:
        while len(self._buffer) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing more from the broker")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                chunk = b""
            if not chunk:
                raise Closed
            self._buffer += chunk

    def read(self, timeout: float = 5.0) -> Packet:
        """The next packet; `Closed` if the broker hung up, `TimeoutError` if nothing came."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        length, multiplier, index = 0, 1, 1
        while True:
            self._fill(index + 1, deadline)
            byte = self._buffer[index]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if not byte & 0x80:
                break
        self._fill(index + length, deadline)
        first = self._buffer[0]
        packet = Packet(first >> 4, first & 0x0F, self._buffer[index : index + length])
        self._buffer = self._buffer[index + length :]
        return packet

    def expect(self, kind: int, timeout: float = 5.0) -> Packet:
        """The next packet of this kind (others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self.read(max(deadline - time.monotonic(), 0.01))
            if packet.kind == kind:
                return packet

    def login(self, client_id: str, **options: object) -> Packet:
        """CONNECT and return the CONNACK (return code in `body[1]`)."""
        self.send(connect(client_id, **options))  # type: ignore[arg-type]
        return self.expect(CONNACK)

    def closed_within(self, timeout: float) -> bool:
        """Whether the broker closes the connection within `timeout` (packets are skipped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.read(max(deadline - time.monotonic(), 0.01))
        except Closed:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
