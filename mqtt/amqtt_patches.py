"""Every override of amqtt 0.12.1 internals the embedded broker needs; other amqtt is refused."""

# Why each patch exists (the tests in tests/mqtt/test_broker_contract.py and
# tests/mqtt/test_broker_fleet_faults.py fail if one stops working):
#
# * `TrolleyHandler`: MQTT 3.1.1 (4.4) requires an un-acknowledged QoS 1 message to be sent again,
#   marked DUP, when the session resumes; amqtt forgets it after 5 s without a PUBACK, or when
#   the connection drops, so a client that stopped reading never received it.
# * `TrolleyBroker._initialize_client_session`: authenticate a CONNECT before touching any
#   session; amqtt first drops or takes over the session named by the client id, so an
#   unauthenticated client could wipe a device's queued commands. It also refreshes
#   `will_retain` on a resumed session, and checks that a client certificate names the user.
# * `TrolleyBroker._publish_retained_messages_for_subscription`: on reconnect, re-send retained
#   messages only for the client's own subscriptions and only where the ACL allows; amqtt sends
#   those matching every subscription in the broker, leaking other devices' retained messages.
# * `TrolleyBroker._run_broadcast`: route over a snapshot of the subscription table; amqtt
#   iterates the live dict across awaits, so a client subscribing mid-broadcast raised
#   "dictionary changed size during iteration" and the remaining subscribers lost the message.
# * `TrolleyBroker.shutdown`: first route messages already acknowledged (amqtt drops them), and
#   close every client at once, each bounded, so a slow reader cannot stall a restart.
# * `TrolleyBroker.stream_connected`, `_initialize_client_session` and
#   `ClosingStreamWriterAdapter`: close every connection whose CONNECT never arrived or failed,
#   and close transports even when the peer hung up first; amqtt left those sockets open, in
#   CLOSE_WAIT or until garbage collection.
# * `TrolleyBroker._create_ssl_context`: amqtt's TLS listener only asks for a client
#   certificate; `require_certificate` must demand one.
# * `bound_port`: amqtt has no accessor for the port a listener bound (needed for port 0).
# * `GuardedStreamReaderAdapter`: amqtt reads whatever remaining length a client announces (a
#   100 MB PUBLISH is read whole into memory), and skips a packet it cannot decode and reads on,
#   so a QoS 3 PUBLISH, invalid UTF-8 or a bad remaining length left the connection open. Each
#   packet is now read whole, refused over the size limit, checked against MQTT 3.1.1
#   (`mqtt.wire_rules`) and only then decoded; a violation closes the connection (4.8).
# * `TrolleyHandler.handle_read_timeout`: amqtt never enforced the keep-alive, so a device whose
#   network vanished kept its `online` status for ever. Nothing for 1.5 x the keep-alive now
#   ends the connection as lost, which publishes the will (MQTT-3.1.2-24).
# * `TrolleyBroker._initialize_client_session`: a connection that sends no CONNECT within the
#   timeout is closed (amqtt waited for ever); a clean session is never resumed by a persistent
#   login (amqtt kept its clean flag, so the new session's queue was thrown away).
# * `TrolleyBroker._handle_message_delivery` and `_run_broadcast`: a message is delivered at the
#   lower of its QoS and the subscription's (amqtt raised it to the subscription's), and each
#   client's backlog (queued, being sent, awaiting PUBACK) is capped: past the cap new messages
#   for it are dropped and logged, so a client that stops reading cannot grow the broker.
# * `TrolleyBroker._publish_session_retained_messages`: messages queued while a client was away
#   are delivered with RETAIN 0 (MQTT-3.3.1-9); amqtt marked them retained.

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.metadata
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any

from mqtt.errors import BrokerError, OversizePacketError, ProtocolViolationError
from mqtt.limits import BrokerLimits
from mqtt.wire_rules import check_client_packet

__all__ = [
    "AMQTT_VERSION",
    "SESSION_CLOSE_TIMEOUT",
    "Backlog",
    "ClosingStreamWriterAdapter",
    "GuardedStreamReaderAdapter",
    "TrolleyBroker",
    "TrolleyHandler",
    "bound_port",
    "check_amqtt_version",
]

AMQTT_VERSION = "0.12.1"


def check_amqtt_version() -> None:
    """Raise `BrokerError` unless the installed amqtt is the one these patches were written for."""
    try:
        version: str | None = importlib.metadata.version("amqtt")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != AMQTT_VERSION:
        found = f"amqtt {version}" if version else "no amqtt installed"
        raise BrokerError(
            f"Trolley's embedded broker patches amqtt {AMQTT_VERSION} internals; found {found}. "
            f"Pin amqtt=={AMQTT_VERSION} or review mqtt/amqtt_patches.py."
        )


# Checked before any amqtt module is imported: another amqtt may have moved the internals
# imported below, and must fail with this message rather than an ImportError.
check_amqtt_version()

from amqtt.adapters import (  # noqa: E402
    ReaderAdapter,
    StreamReaderAdapter,
    StreamWriterAdapter,
    WriterAdapter,
)
from amqtt.broker import Broker  # noqa: E402
from amqtt.contexts import Action  # noqa: E402
from amqtt.errors import AMQTTError, MQTTError, NoDataError  # noqa: E402
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket  # noqa: E402
from amqtt.mqtt.constants import QOS_1, QOS_2  # noqa: E402
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler  # noqa: E402
from amqtt.mqtt.puback import PubackPacket  # noqa: E402
from amqtt.session import (  # noqa: E402
    OUTGOING,
    ApplicationMessage,
    IncomingApplicationMessage,
    OutgoingApplicationMessage,
    Session,
)
from amqtt.utils import format_client_message, gen_client_id  # noqa: E402

# The patches are part of the embedded broker, so they log under its name.
logger = logging.getLogger("mqtt.broker")

# Marks a session whose CONNECT was authenticated before amqtt touched any session.
_AUTHENTICATED = "trolley.authenticated"
# A session's `Backlog`.
_BACKLOG = "trolley.backlog"
# MQTT-3.1.2-24: the server allows one and a half keep-alive periods before giving up.
KEEPALIVE_GRACE = 1.5
# The QoS of the PUBLISH a client's message loop is routing (amqtt does not pass it along).
_PUBLISH_QOS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "trolley_publish_qos", default=None
)
# How long closing a connection may wait for its unsent data before the socket is aborted.
_CLOSE_DRAIN_TIMEOUT = 2.0
SESSION_CLOSE_TIMEOUT = 3.0


class ClosingStreamWriterAdapter(StreamWriterAdapter):  # type: ignore[misc]
    """amqtt's TCP/TLS writer adapter, but `close()` always releases the socket."""

    # amqtt's `close()` drains, writes EOF and only then closes; when the peer has already hung
    # up, the drain or the EOF raises (`handler.stop()` swallows the error) and the transport
    # is never closed. Here the drain is bounded, a peer that is gone is not an error, and the
    # transport is closed (or aborted, when unsent data could not be flushed) in a `finally`.

    is_closed: bool

    async def close(self) -> None:
        """Flush what is pending (bounded), send EOF, and always close the transport."""
        if self.is_closed:
            return
        self.is_closed = True  # as amqtt: mark first, so writes racing the close are dropped
        flushed = False
        try:
            await asyncio.wait_for(self._writer.drain(), _CLOSE_DRAIN_TIMEOUT)
            if self._writer.can_write_eof():
                self._writer.write_eof()
            flushed = True
        except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            logger.debug("closing a connection the peer already dropped: %r", exc)
        finally:
            if flushed:
                self._writer.close()
            else:
                # close() would wait for the unsent buffer, which may never drain.
                self._writer.transport.abort()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), _CLOSE_DRAIN_TIMEOUT)


class GuardedStreamReaderAdapter(StreamReaderAdapter):  # type: ignore[misc]
    """amqtt's TCP/TLS reader adapter, but amqtt's decoders only ever see whole, checked packets."""

    # Every byte amqtt decodes passes through `read()`: the first read of a packet pulls the
    # whole packet off the stream (refused before its body is read if it is over the limit),
    # checks it, then serves it. A decoder that would read past the packet's end is stopped.

    def __init__(self, reader: asyncio.StreamReader, *, max_packet_bytes: int, peer: str) -> None:
        """`peer` names the connection in log lines."""
        super().__init__(reader)
        self._max_packet_bytes = max_packet_bytes
        self._peer = peer
        self._packet = b""
        self._at = 0
        self._first = True

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes of the current packet; the next packet once this one is used up."""
        if self._at >= len(self._packet):
            self._packet, self._at = await self._next_packet(), 0
        if n < 0:
            n = len(self._packet) - self._at
        if self._at + n > len(self._packet):
            raise self._refused(ProtocolViolationError("a field runs past the end of its packet"))
        chunk = self._packet[self._at : self._at + n]
        self._at += n
        return chunk

    async def _next_packet(self) -> bytes:
        """Read one whole packet (header and body) and check it."""
        header = bytearray(await self._reader.readexactly(1))
        length = 0
        for shift in range(0, 28, 7):
            (byte,) = await self._reader.readexactly(1)
            header.append(byte)
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        else:
            raise self._refused(
                ProtocolViolationError("remaining length longer than four bytes (2.2.3)")
            )
        if len(header) + length > self._max_packet_bytes:
            raise self._refused(
                OversizePacketError(
                    f"a {len(header) + length}-byte packet; the limit is {self._max_packet_bytes}"
                )
            )
        body = await self._reader.readexactly(length)
        try:
            check_client_packet(header[0], body, first=self._first)
        except ProtocolViolationError as exc:
            raise self._refused(exc) from None
        self._first = False
        return bytes(header) + bytes(body)

    def _refused(self, exc: ProtocolViolationError) -> ProtocolViolationError:
        """Log why the connection is being closed."""
        logger.warning("closing the connection from %s: %s", self._peer, exc)
        return exc


@dataclass
class Backlog:
    """What a session holds for its client: queued while away, being sent, or awaiting PUBACK."""

    max_messages: int
    max_bytes: int
    messages: int = 0
    size: int = 0
    dropped: int = 0  # since the cap last bit

    def admit(self, client_id: str | None, size: int) -> bool:
        """Count one more message, or refuse it (logged once until the client catches up)."""
        if self.messages < self.max_messages and self.size + size <= self.max_bytes:
            self.messages += 1
            self.size += size
            return True
        if not self.dropped:
            logger.warning(
                "client %s is not taking its messages (%d queued, %d bytes; caps %d and %d): "
                "dropping new messages for it until it catches up",
                client_id,
                self.messages,
                self.size,
                self.max_messages,
                self.max_bytes,
            )
        self.dropped += 1
        return False

    def release(self, client_id: str | None, size: int) -> None:
        """One message left the session (acknowledged, sent at QoS 0, or abandoned)."""
        self.messages = max(self.messages - 1, 0)
        self.size = max(self.size - size, 0)
        if self.dropped and self.messages <= self.max_messages // 2:
            if self.size <= self.max_bytes // 2:
                logger.warning(
                    "client %s caught up; %d message(s) for it were dropped",
                    client_id,
                    self.dropped,
                )
                self.dropped = 0

    def recount(self, session: Session) -> None:
        """Count afresh what the session holds (on resume, so no error can accumulate)."""
        held = [*session.inflight_out.values(), *_queued(session)]
        self.messages = len(held)
        self.size = sum(_weight(message) for message in held)


def _queued(session: Session) -> list[ApplicationMessage]:
    """The messages queued for a session while its client was away (without dequeuing them)."""
    return list(getattr(session.retained_messages, "_queue", ()))


def _weight(message: ApplicationMessage) -> int:
    """What a held message is counted as: its payload and topic."""
    return len(message.data or b"") + len(message.topic or "")


def backlog(session: Session) -> Backlog | None:
    """The session's backlog, if the broker gave it one."""
    found = session.attributes.get(_BACKLOG)
    return found if isinstance(found, Backlog) else None


class TrolleyHandler(BrokerProtocolHandler):  # type: ignore[misc]
    """amqtt's broker-side handler, keeping QoS 1 in flight until PUBACKed and the keep-alive."""

    # amqtt 0.12.1 forgets an outgoing QoS 1 message 5 s after sending it without a PUBACK, or
    # when the connection drops, so a client that was slow to read, or whose connection had
    # stopped, never received it. MQTT 3.1.1 (4.4) keeps it and sends it again, marked DUP, when
    # the session resumes; amqtt's own reconnect path does that for what is left in flight.

    async def _handle_qos1_message_flow(
        self, app_message: OutgoingApplicationMessage | IncomingApplicationMessage
    ) -> None:
        """As amqtt, but an outgoing message not acknowledged in time stays in flight."""
        try:
            await super()._handle_qos1_message_flow(app_message)
        except (TimeoutError, asyncio.CancelledError):
            if app_message.direction == OUTGOING and self.session is not None:
                self.session.inflight_out[app_message.packet_id] = app_message
            raise

    async def handle_puback(self, puback: PubackPacket) -> None:
        """A PUBACK after amqtt stopped waiting still completes the message it acknowledges."""
        header = puback.variable_header
        packet_id = header.packet_id if header is not None else None
        if packet_id not in self._puback_waiters and self.session is not None:
            message = self.session.inflight_out.pop(packet_id, None)
            if message is not None:
                self._release(message)
                return
        await super().handle_puback(puback)

    async def _handle_message_flow(
        self, app_message: IncomingApplicationMessage | OutgoingApplicationMessage
    ) -> None:
        """As amqtt; an outgoing message the session no longer holds leaves its backlog."""
        try:
            await super()._handle_message_flow(app_message)
        finally:
            session = self.session
            if (
                app_message.direction == OUTGOING
                and session is not None
                and session.inflight_out.get(app_message.packet_id) is not app_message
            ):
                self._release(app_message)

    def _release(self, message: ApplicationMessage) -> None:
        """Take a finished outgoing message off the session's backlog."""
        if self.session is not None and (held := backlog(self.session)) is not None:
            held.release(self.session.client_id, _weight(message))

    def handle_read_timeout(self) -> None:
        """Nothing for 1.5 x the keep-alive: end the connection as lost, so the will goes out."""
        # amqtt's reader loop calls this and reads on; an end of stream makes it stop the
        # connection the way a vanished peer does (MQTT-3.1.2-24, MQTT-3.1.2-8).
        session = self.session
        logger.info(
            "client %s sent nothing for %.0f s (1.5 x its keep-alive); closing its connection",
            session.client_id if session is not None else "?",
            session.keep_alive if session is not None else 0,
        )
        if self.reader is not None:
            self.reader.feed_eof()


def _certificate_names(writer: Any, username: str | None) -> bool:
    """Whether a client certificate, if presented, names the user logging in."""
    # Its CN must be the username, as Mosquitto's `use_identity_as_username`: one device's
    # certificate never carries another device's password.
    stream = getattr(writer, "_writer", None)
    certificate = stream.get_extra_info("peercert") if stream is not None else None
    if not certificate:
        return True
    names = [v for rdn in certificate.get("subject", ()) for k, v in rdn if k == "commonName"]
    return names == [username]


class TrolleyBroker(Broker):  # type: ignore[misc]
    """amqtt's Broker with authentication first and ACL-checked retained re-delivery."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        require_certificate: bool = False,
        limits: BrokerLimits | None = None,
    ) -> None:
        """`require_certificate`: TLS listeners refuse clients without a valid certificate."""
        super().__init__(config)
        self._require_certificate = require_certificate
        self.limits = limits or BrokerLimits()

    def _create_ssl_context(self, listener: Any) -> ssl.SSLContext:
        """amqtt's context (`CERT_OPTIONAL` against `cafile`), `CERT_REQUIRED` if asked for."""
        context: ssl.SSLContext = Broker._create_ssl_context(listener)
        if self._require_certificate:
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        """As amqtt, with a guarded reader and a writer whose `close()` releases the socket."""
        peer = writer.get_extra_info("peername") or ("?", 0)
        guarded = GuardedStreamReaderAdapter(
            reader, max_packet_bytes=self.limits.max_packet_bytes, peer=f"{peer[0]}:{peer[1]}"
        )
        await self._client_connected(listener_name, guarded, ClosingStreamWriterAdapter(writer))

    async def _initialize_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        remote_address: str,
        remote_port: int,
    ) -> tuple[BrokerProtocolHandler, Session]:
        """Read CONNECT, authenticate, and only then resume, replace or create the session."""
        try:
            handler, session = await asyncio.wait_for(
                TrolleyHandler.init_from_connect(reader, writer, self.plugins_manager),
                self.limits.connect_timeout,
            )
        except BaseException as exc:
            # amqtt closes the connection only for a malformed CONNECT; a client that hung up
            # before (or while) sending it would keep its socket open in CLOSE_WAIT forever.
            await writer.close()
            if isinstance(exc, TimeoutError):
                logger.info(
                    "closed a connection from %s:%s that sent no CONNECT within %.0f s",
                    remote_address,
                    remote_port,
                    self.limits.connect_timeout,
                )
            if isinstance(exc, MQTTError | ProtocolViolationError):
                raise MQTTError(exc) from exc
            if isinstance(exc, AMQTTError | NoDataError | TimeoutError):
                raise AMQTTError(exc) from exc
            raise

        if not _certificate_names(writer, session.username) or not await super()._authenticate(
            session, None
        ):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"not authorised: {remote_address}:{remote_port}")

        existing, _ = self._sessions.get(session.client_id, (None, None))
        if session.clean_session or (existing is not None and existing.clean_session):
            # A clean session lasts as long as its connection (MQTT-3.1.2-6): never resumed.
            if session.client_id:
                await self._end_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif existing is not None:
            for name in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "will_retain",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(existing, name, getattr(session, name))
            session = existing
            session.parent = 1
        else:
            session.parent = 0

        # amqtt's reader gives up waiting after `keep_alive` seconds, and then calls
        # `handle_read_timeout`; 0 means the client asked for no keep-alive at all.
        session.keep_alive = session.keep_alive * KEEPALIVE_GRACE
        held = backlog(session)
        if held is None:
            held = Backlog(self.limits.max_queued_messages, self.limits.max_queued_bytes)
            session.attributes[_BACKLOG] = held
        held.recount(session)
        session.attributes[_AUTHENTICATED] = True
        return handler, session

    async def _end_session(self, client_id: str) -> None:
        """Disconnect whoever holds this client id (MQTT-3.1.4-2), then forget its session."""
        existing, handler = self._sessions.get(client_id, (None, None))
        if existing is not None and handler is not None and existing.transitions.is_connected():
            await handler.handle_connection_closed()
            await handler.stop()
        await self._delete_session(client_id)

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: Any
    ) -> bool:
        """As amqtt, remembering the PUBLISH's QoS while it is routed."""
        message = wait_deliver.result()
        token = _PUBLISH_QOS.set(message.qos if message is not None else None)
        try:
            return bool(
                await super()._handle_message_delivery(client_session, handler, wait_deliver)
            )
        finally:
            _PUBLISH_QOS.reset(token)

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        """As amqtt; a client's message carries its own QoS (the subscription's may be lower)."""
        if force_qos is None:
            force_qos = _PUBLISH_QOS.get()
        await super()._broadcast_message(session, topic, data, force_qos)

    async def _retain_broadcast_message(
        self, broadcast: dict[str, Any], qos: int, target_session: Session
    ) -> None:
        """Queue a message for an absent client unless its backlog is full."""
        if self._admit(target_session, broadcast):
            await super()._retain_broadcast_message(broadcast, qos, target_session)

    def _admit(self, session: Session, broadcast: dict[str, Any]) -> bool:
        """Whether the client's backlog can take this message (it is then counted)."""
        held = backlog(session)
        if held is None:  # a session restored from disk, not yet connected
            held = Backlog(self.limits.max_queued_messages, self.limits.max_queued_bytes)
            held.recount(session)
            session.attributes[_BACKLOG] = held
        size = len(broadcast.get("data") or b"") + len(broadcast.get("topic") or "")
        return held.admit(session.client_id, size)

    async def _publish_session_retained_messages(self, session: Session) -> None:
        """Send what was queued while the client was away, as live deliveries (RETAIN 0)."""
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            tasks.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
                )
            )
        if tasks:
            await asyncio.wait(tasks)

    async def shutdown(self) -> None:
        """Route what is already acknowledged, close every client at once, then as amqtt."""
        await self._drain_broadcasts()
        await self._close_sessions()
        await super().shutdown()

    async def _close_sessions(self, timeout: float = SESSION_CLOSE_TIMEOUT) -> None:
        """Stop every client's handler concurrently, each bounded, aborting the laggards."""
        # amqtt stops handlers one after another and each may wait on a peer that is slow to
        # read; on a loaded machine a restart could then take longer than anyone waits for it.
        # Persistent state is written through as it changes, so nothing is lost by aborting.
        entries = list(self._sessions.items())

        async def close(client_id: str, handler: Any) -> None:
            try:
                await asyncio.wait_for(self._cleanup_session(client_id), timeout)
            except TimeoutError:
                logger.warning("client %s did not close within %.0fs; aborted", client_id, timeout)
                transport = getattr(getattr(handler, "writer", None), "_writer", None)
                if transport is not None:
                    transport.transport.abort()

        await asyncio.gather(*(close(cid, handler) for cid, (_, handler) in entries))

    async def _drain_broadcasts(self, timeout: float = 3.0) -> None:
        """Wait (bounded) until the broadcast queue has stayed empty for a moment."""
        # amqtt PUBACKs a message before routing it, and its shutdown drops whatever is still
        # queued; a message acknowledged just before a stop would otherwise never be queued for
        # (or persisted for) its offline subscriber.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_rounds = 0
        while quiet_rounds < 3 and loop.time() < deadline:
            busy = not self._broadcast_queue.empty() or any(
                not task.done() for task in self._tasks_queue
            )
            quiet_rounds = 0 if busy else quiet_rounds + 1
            await asyncio.sleep(0.01)
        await self.plugins_manager.wait_fired_events()

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        """Reuse the decision taken before the session was touched."""
        if session.attributes.pop(_AUTHENTICATED, False):
            return True
        return bool(await super()._authenticate(session, listener))

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """Route one queued message, as amqtt does, over a snapshot of the subscriptions."""
        # amqtt 0.12.1 iterates the live `_subscriptions` dict while awaiting the topic plugins,
        # so a client subscribing meanwhile raised "dictionary changed size during iteration" and
        # the message never reached the remaining subscribers. A subscription added during the
        # broadcast does not receive this message, exactly as if it had arrived just after it.
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        snapshot = [
            (topic_filter, list(subscriptions))
            for topic_filter, subscriptions in self._subscriptions.items()
        ]
        for topic_filter, subscriptions in snapshot:
            if not self._matches(topic, topic_filter):
                continue
            for target_session, sub_qos in subscriptions:
                # MQTT-3.8.4-6: never more than the message was published with.
                qos = min(broadcast.get("qos", sub_qos), sub_qos)
                if not await self._topic_filtering(
                    target_session, topic=topic, action=Action.RECEIVE
                ):
                    continue
                connected = target_session.transitions.state == "connected"
                # Queue for a disconnected persistent (never anonymous) session at QoS 1/2.
                if (
                    not connected
                    and not target_session.clean_session
                    and qos in (QOS_1, QOS_2)
                    and not target_session.is_anonymous
                ):
                    await self._retain_broadcast_message(broadcast, qos, target_session)
                    continue
                if not connected:
                    continue
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "broadcasting %r from %s to %s",
                        topic,
                        format_client_message(session=broadcast["session"]),
                        format_client_message(session=target_session),
                    )
                handler = self._get_handler(target_session)
                if handler and self._admit(target_session, broadcast):
                    running_tasks.append(
                        asyncio.ensure_future(
                            handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                        )
                    )

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Send retained messages matching one of this client's own subscriptions, ACL-checked."""
        topic_filter, qos = subscription
        subscribers = self._subscriptions.get(topic_filter, [])
        if not any(sub.client_id == session.client_id for sub, _ in subscribers):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic, Action.RECEIVE):
                continue
            if not self._admit(session, {"topic": topic, "data": retained.data}):
                continue
            tasks.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(
                        retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
                    )
                )
            )
        if tasks:
            await asyncio.wait(tasks)


def bound_port(broker: Broker) -> int | None:
    """The port the default listener actually bound (useful when asked for port 0)."""
    # amqtt exposes no accessor for the bound address.
    server = broker._servers.get("default")
    sockets = getattr(getattr(server, "instance", None), "sockets", None) or []
    for sock in sockets:
        return int(sock.getsockname()[1])
    return None
