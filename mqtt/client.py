"""Broker URLs and the paho-mqtt client factory both sides use.

Every client speaks MQTT 3.1.1 (amqtt knows nothing newer), uses the VERSION2 callback API
(VERSION1 warns and is going away), a fixed client id with `clean_session=False` so the broker
queues QoS 1 messages while it is away, and paho's own reconnect with a jittered backoff.
Callbacks run on paho's network thread: hand messages to a queue, never block there.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from mqtt.errors import BrokerURLError, ClientSetupError, PublishError
from mqtt.topics import QOS

__all__ = [
    "DEFAULT_KEEPALIVE",
    "BrokerURL",
    "TLSSettings",
    "make_client",
    "make_client_for_url",
    "publish_and_wait",
]

logger = logging.getLogger(__name__)

DEFAULT_KEEPALIVE = 30
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class TLSSettings:
    """TLS for a client: the CA to trust (system CAs if None) and an optional client certificate."""

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    # Off only for brokers reached by an address their certificate does not name.
    check_hostname: bool = True

    def __post_init__(self) -> None:
        """Refuse half a client certificate."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ClientSetupError("TLS client certificate needs both cert_file and key_file")

    def context(self) -> ssl.SSLContext:
        """A client SSLContext: verified server certificate, TLS 1.2 or newer."""
        try:
            ctx = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH,
                cafile=str(self.ca_file) if self.ca_file is not None else None,
            )
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.check_hostname = self.check_hostname
            if self.cert_file is not None and self.key_file is not None:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ClientSetupError(f"cannot load TLS files: {exc}") from exc
        return ctx


@dataclass(frozen=True)
class BrokerURL:
    """A parsed `mqtt://user:pass@host:port` or `mqtts://...` URL (password hidden from repr)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS (`mqtts`)."""
        return self.scheme == "mqtts"

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        """Parse a broker URL; raise `BrokerURLError` with a message safe to show (no password)."""
        if not isinstance(url, str) or not url.strip():
            raise BrokerURLError("broker URL is empty")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
            host = parts.hostname
        except ValueError as exc:
            raise BrokerURLError(f"broker URL has an invalid host or port: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise BrokerURLError(
                f"broker URL scheme must be mqtt:// or mqtts://, not {parts.scheme or 'none'!r}"
            )
        if not host:
            raise BrokerURLError("broker URL has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BrokerURLError("broker URL must not have a path, query or fragment")
        if port == 0:
            raise BrokerURLError("broker URL port must be between 1 and 65535")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is not None and username is None:
            raise BrokerURLError("broker URL has a password but no username")
        return cls(
            scheme=scheme,
            host=host,
            port=port if port is not None else _DEFAULT_PORTS[scheme],
            username=username,
            password=password,
        )

    def __str__(self) -> str:
        """The URL with the password masked, fit for logs."""
        auth = (
            f"{self.username}:***@"
            if self.password
            else (f"{self.username}@" if self.username else "")
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}"


class _Client(paho.Client):
    """paho's client reading the socket up to 64 KiB at a time, and writing what waits at once.

    paho reads a packet's first byte, its length and its body with a system call each, and
    waits in select() before every packet: receiving a stream of small QoS 1 messages (a fleet's
    acks, on the server) cost 46 µs of CPU a message, 21 µs read this way. Packets already read
    are handled before paho waits again, since select() cannot know about them.

    On the way out paho sends each packet with a system call of its own, and a packet queued on
    its own network thread (the PUBACK of every message received) also writes a byte to wake
    that thread, which is not waiting. Here the packets waiting are sent together, and the
    network thread wakes nobody: it looks at what is queued before it waits again.
    """

    READ_SIZE = 65536
    WRITE_SIZE = 65536  # packets joined into one send, at most (one larger goes alone)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read = b""  # read from the socket and not yet handed to paho from `_read_at` on
        self._read_at = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        start = self._read_at
        if start >= len(self._read):
            data = super()._sock_recv(max(bufsize, self.READ_SIZE))
            if len(data) <= bufsize:
                return data
            self._read, self._read_at = data, bufsize
            return data[:bufsize]
        self._read_at = start + bufsize
        return self._read[start : start + bufsize]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        result = super().loop_read(max_packets)
        while (
            result == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._sock is not None
            and self._read_at < len(self._read)
        ):
            result = super().loop_read(1)
        return result

    def _sock_close(self) -> None:
        self._read, self._read_at = b"", 0  # never carried over to the next connection
        super()._sock_close()

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: paho.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if self._thread is None or threading.current_thread() is not self._thread:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        # Only packets paho does nothing with once written are joined: a QoS 0 PUBLISH calls
        # `on_publish`, and DISCONNECT closes the socket. Only this thread takes from the left.
        waiting = self._out_packet
        if len(waiting) < 2:
            return super()._packet_write()
        joined: list[Any] = []
        size = 0
        while waiting:
            first = waiting[0]
            kind = first["command"] & 0xF0
            if (
                first["pos"]
                or (kind == paho.PUBLISH and first["qos"] == 0)
                or kind == paho.DISCONNECT
                or (joined and size + first["to_process"] > self.WRITE_SIZE)
            ):
                break
            joined.append(waiting.popleft())
            size += first["to_process"]
        if len(joined) > 1:
            packet = b"".join(queued["packet"] for queued in joined)
            joined = [{**joined[0], "to_process": len(packet), "packet": packet, "info": None}]
        waiting.extendleft(joined)
        return super()._packet_write()


# It overrides paho's own socket hooks: a paho without them gets paho's client as it is.
_CLIENT: type[paho.Client] = (
    _Client
    if all(
        hasattr(paho.Client, name)
        for name in ("_sock_recv", "_sock_close", "loop_read", "_packet_queue", "_packet_write")
    )
    else paho.Client
)


def make_client(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: TLSSettings | None = None,
    will_topic: str | None = None,
    will_payload: bytes | None = None,
    will_retain: bool = True,
    clean_session: bool = False,
    min_reconnect_delay: float = 1.0,
    max_reconnect_delay: float = 60.0,
    max_inflight: int | None = None,
    manual_ack: bool = False,
    userdata: Any = None,
) -> paho.Client:
    """A configured (not yet connected) paho client: MQTT 3.1.1, VERSION2 callbacks, LWT, backoff.

    `max_inflight=0` lifts paho's limit of 20 unacknowledged QoS 1 messages, which stalls a
    server publishing a burst of commands; devices can leave it at the default. With
    `manual_ack=True` paho sends a PUBACK only on `client.ack(mid, qos)`, so a kiosk can
    acknowledge a command after persisting it.
    """
    if not client_id and not clean_session:
        # A broker rejects a persistent session without an id (amqtt: IDENTIFIER_REJECTED).
        raise ClientSetupError("a persistent session (clean_session=False) needs a client id")
    if password is not None and username is None:
        raise ClientSetupError("a password needs a username")
    if (will_topic is None) != (will_payload is None):
        raise ClientSetupError("a will needs both will_topic and will_payload")
    if not 0 < min_reconnect_delay <= max_reconnect_delay:
        raise ClientSetupError("reconnect delays must satisfy 0 < min <= max")
    if max_inflight is not None and max_inflight < 0:
        raise ClientSetupError("max_inflight must be 0 (unlimited) or more")

    client = _CLIENT(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        userdata=userdata,
        protocol=paho.MQTTv311,
        manual_ack=manual_ack,
    )
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls.context())
    if will_topic is not None and will_payload is not None:
        client.will_set(will_topic, will_payload, qos=QOS, retain=will_retain)
    # Jitter, so a classroom of kiosks does not reconnect in the same instant after a broker
    # restart. paho annotates the delays as int but sleeps with them as floats.
    jitter = random.uniform(1.0, 1.5)
    low = min(min_reconnect_delay * jitter, max_reconnect_delay)
    client.reconnect_delay_set(min_delay=cast(int, low), max_delay=cast(int, max_reconnect_delay))
    if max_inflight is not None:
        client.max_inflight_messages_set(max_inflight)
    return client


def make_client_for_url(
    url: BrokerURL | str,
    client_id: str,
    *,
    tls: TLSSettings | None = None,
    **kwargs: Any,
) -> paho.Client:
    """`make_client` with the URL's credentials, and TLS (system CAs by default) for `mqtts`.

    Connect it with `client.connect(url.host, url.port, keepalive=DEFAULT_KEEPALIVE)` or
    `connect_async` before `loop_start()`.
    """
    parsed = BrokerURL.parse(url) if isinstance(url, str) else url
    if tls is not None and not parsed.tls:
        raise ClientSetupError("TLS settings were given for a plain mqtt:// URL")
    if parsed.tls and tls is None:
        tls = TLSSettings()
    return make_client(
        client_id, username=parsed.username, password=parsed.password, tls=tls, **kwargs
    )


def publish_and_wait(
    client: paho.Client,
    topic: str,
    payload: bytes,
    *,
    retain: bool = False,
    timeout: float = 5.0,
) -> None:
    """Publish at QoS 1 and wait (at most `timeout` seconds) for the broker's PUBACK.

    Never call this from a paho callback: the network thread would wait for itself.
    """
    info = client.publish(topic, payload, qos=QOS, retain=retain)
    if info.rc != paho.MQTT_ERR_SUCCESS:
        raise PublishError(f"publish to {topic} refused by paho: {paho.error_string(info.rc)}")
    try:
        info.wait_for_publish(timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise PublishError(f"publish to {topic} failed: {exc}") from exc
    if not info.is_published():
        raise PublishError(f"publish to {topic} not acknowledged within {timeout}s")
