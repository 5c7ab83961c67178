"""The MQTT device channel: publishes commands and desired state, records acks and reports."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from paho.mqtt import client as paho
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session, selectinload

from mqtt.client import BrokerURL, make_client_for_url
from mqtt.envelope import Sealed, decode_public_key, raw_public_key, read_envelope
from mqtt.envelope import sign as sign_envelope
from mqtt.errors import MqttError
from mqtt.limits import max_payload_bytes
from mqtt.messages import Ack, AckState, Report, build_command, build_desired
from mqtt.topics import (
    QOS,
    STATUS_ONLINE,
    TopicKind,
    cmd_topic,
    desired_topic,
    parse_device_topic,
    server_subscriptions,
    status_topic,
    worker_heartbeat_topic,
)
from server.channel_roles import Role
from server.commands import services as commands
from server.commands.services import Outgoing
from server.config import Settings
from server.crypto import SecretBox
from server.db import Database, Listener, is_contention, one_of, utcnow
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import (
    SigningKey,
    mark_retained_cleared,
    revoked_with_retained,
    server_key,
    trusted_server_keys,
)
from server.events import connect_handlers
from server.profiles import services as profiles
from server.profiles.models import UNPUBLISHED, DeviceDesiredState

log = logging.getLogger(__name__)

# How often the publishing side looks for revoked identities whose retained messages are still
# on the broker, and the topics it clears for each.
CLEAR_RETAINED_EVERY = 60.0
CLEARED_TOPICS = (status_topic, desired_topic)
# How long a sender found unknown or revoked is not looked up again.
UNKNOWN_FOR = timedelta(seconds=30)
# FD_SETSIZE on Linux: select() cannot watch a descriptor at or above it.
SELECT_LIMIT = 1024
# A worker sends itself a heartbeat through the broker this often, and reconnects when one has
# not come back within the deadline: a connection can stay up while nothing is delivered on it
# (a stalled network thread, or a broker whose in-flight window for this client is stuck), and
# with shared subscriptions the broker would keep handing that worker its share of the acks.
HEARTBEAT_EVERY = 5.0
HEARTBEAT_DEADLINE = 30.0
# Commands claimed, signed and published per transaction. The claimed rows stay locked (on
# SQLite, the whole database) until the broker has taken every one, and devices answer at once:
# their acks wait for that commit. 100 lets recording start while the rest is still being
# published; 500 held a fleet-wide command's first acks back by most of a second.
PUBLISH_BATCH = 100
# A batch of device messages waits up to BATCH_LINGER for more while they keep coming (each
# within BATCH_GAP): a fleet-wide command's acks go in fewer, larger transactions, and more of
# its devices' `received` acks share a batch with the answer that makes them moot (`_open_acks`).
BATCH_LINGER = 0.01
BATCH_GAP = 0.002
# How long the publishing side rests after a failure (the database or broker being away).
RETRY_PAUSE = 1.0


# Desired states to publish, with the live identity of each device: asked up to twenty times a
# second, so built once and read through `ix_device_desired_states_unpublished` (its condition spelt
# the same way: SQLite uses a partial index only for a WHERE term that matches its own).
_UNPUBLISHED_STATES = (
    select(DeviceDesiredState, DeviceIdentity)
    .join(
        DeviceIdentity,
        (DeviceIdentity.device_id == DeviceDesiredState.device_id)
        & DeviceIdentity.revoked_at.is_(None),
    )
    .where(text(UNPUBLISHED))
    .order_by(DeviceDesiredState.id)
    .limit(bindparam("limit"))
    .with_hint(DeviceDesiredState, "INDEXED BY ix_device_desired_states_unpublished", "sqlite")
)
# Whether there is any: the id alone, not the rows' objects (half the cost of an idle poll).
_ANY_UNPUBLISHED = _UNPUBLISHED_STATES.with_only_columns(DeviceDesiredState.id).limit(1)

# A batch's senders: the live identities behind them, with their keys.
_SENDERS = select(
    DeviceIdentity.id,
    DeviceIdentity.mqtt_id,
    DeviceIdentity.device_id,
    DeviceIdentity.kid,
    DeviceIdentity.public_key,
).where(one_of(DeviceIdentity.mqtt_id, "mqtt_ids"), DeviceIdentity.revoked_at.is_(None))


@dataclass(frozen=True)
class Sender:
    """A device's live identity as the ack path needs it: who, which device, and its key."""

    id: int
    mqtt_id: str
    device_id: int
    kid: str
    public_key: bytes  # raw: opening an ack asks no key object for its bytes


@dataclass
class ChannelStats:
    published: int = 0
    desired_published: int = 0
    acks: int = 0
    reports: int = 0
    presence: int = 0
    rejected: int = 0
    superseded: int = 0  # `received` acks a later answer in the same batch made moot
    dropped: int = 0
    restarts: int = 0


class DeviceChannel:
    """Publishes the command outbox and desired state; consumes acks, reports and presence.

    The database stays the source of truth: a crash anywhere loses nothing, because queued rows
    are published again and devices ignore a command id they have already seen.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        box: SecretBox,
        *,
        broker_url: str,
        client_id: str = "trolley-worker-1",
        shared: bool = False,
        role: Role = Role.BOTH,
        batch: int = 500,
        publish_batch: int = PUBLISH_BATCH,
        publish_timeout: float = 10.0,
        heartbeat_every: float = HEARTBEAT_EVERY,
        heartbeat_deadline: float = HEARTBEAT_DEADLINE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        import server.models_registry  # noqa: F401  (every mapper, or the first ack fails to load)

        connect_handlers()  # a domain that would not hear what devices report fails here

        self.database = database
        self.settings = settings
        self.box = box
        self.broker_url = broker_url
        self.client_id = client_id
        self.shared = shared
        self.role = role
        self.batch = batch
        self.publish_batch = publish_batch
        self.publish_timeout = publish_timeout
        self.heartbeat_every = heartbeat_every
        self.heartbeat_deadline = heartbeat_deadline
        self.heartbeat_topic = worker_heartbeat_topic(client_id)
        self.clock = clock
        self.stats = ChannelStats()
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._keys: dict[int, tuple[str, bytes]] = {}  # identity id → its key id and raw key
        self._unknown: dict[str, datetime] = {}  # mqtt id → when to look it up again
        self._consumer: threading.Thread | None = None
        self._beat_sent: float | None = None  # monotonic time of the unanswered heartbeat
        self._beat_seen = time.monotonic()
        self._last_batch = time.monotonic()  # when the consumer last finished a batch
        self._next_clearing = 0.0  # monotonic time to look for revoked identities' retained
        # SQLite has one writer: the publishing and recording sides queue for it here.
        self._one_writer = database.one_writer()
        self.client = self._new_client()
        # PostgreSQL: a request that queues commands wakes the publishing side as it commits.
        self._outbox = Listener(database, commands.OUTBOX_CHANNEL, self.wake)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A writing transaction, committed on success (see `_one_writer`)."""
        with self._one_writer, self.database.begin() as session:
            yield session

    def _new_client(self) -> Any:
        client = make_client_for_url(
            self.broker_url, self.client_id, clean_session=False, max_inflight=0
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        return client

    # paho callbacks run on the network thread: hand off, never block
    def _on_connect(
        self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the worker: %s", reason)
            return
        if self.role.records:
            for topic in server_subscriptions(shared=self.shared):
                client.subscribe(topic, qos=QOS)
        client.subscribe(self.heartbeat_topic, qos=QOS)
        self._beat_sent = None
        self._beat_seen = time.monotonic()
        self.connected.set()
        self._wake.set()
        log.info("worker connected to the broker as %s", self.client_id)

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected.clear()
        log.warning("worker lost the broker; paho reconnects with backoff")

    def _on_socket_open(self, _client: Any, _userdata: Any, sock: Any) -> None:
        # paho's network thread uses select(): a socket numbered past its limit never connects
        # and paho retries silently, so say why (a process already holding ~1,000 sockets).
        if sock.fileno() >= SELECT_LIMIT:
            log.error(
                "the broker socket is file descriptor %d, beyond what select() can watch (%d); "
                "the worker cannot connect: run it in a process with fewer open sockets",
                sock.fileno(),
                SELECT_LIMIT,
            )

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic == self.heartbeat_topic:
            self._beat_sent = None
            self._beat_seen = time.monotonic()
            return
        try:
            _mqtt_id, kind = parse_device_topic(message.topic)
        except MqttError:
            return  # nothing the consumer would record
        size = len(message.payload)
        if size > max_payload_bytes(kind):
            # Refused before it is queued or parsed: it could only be a fault or an attack.
            log.warning(
                "refused a %d-byte message on %s (the limit for %s is %d bytes)",
                size,
                message.topic,
                kind.value,
                max_payload_bytes(kind),
            )
            self.stats.rejected += 1  # counted after the log line, which watchers wait for
            return
        self.inbox.put((message.topic, bytes(message.payload)))

    def start(self) -> None:
        self._connect()
        if self.role.publishes:
            self._outbox.start()
        if not self.role.records:
            return
        self._consumer = threading.Thread(
            target=self._consume_forever, name="trolley-acks", daemon=True
        )
        self._consumer.start()

    def _connect(self) -> None:
        url = BrokerURL.parse(self.broker_url)
        self.client.connect_async(url.host, url.port, keepalive=30)
        self.client.loop_start()

    def check_health(self) -> None:
        """Send the next heartbeat, or reconnect if the last one never came back."""
        if not self.connected.is_set():
            return  # paho is reconnecting with its own backoff
        now = time.monotonic()
        if self._beat_sent is not None:
            if now - self._beat_sent > self.heartbeat_deadline:
                self.restart(
                    f"the broker delivered nothing to {self.client_id} for "
                    f"{now - self._beat_sent:.0f} s, not even its own heartbeat"
                )
            return
        if now - self._beat_seen >= self.heartbeat_every:
            self._beat_sent = now
            self.client.publish(self.heartbeat_topic, b"", qos=QOS)
        if not self.inbox.empty() and now - self._last_batch > self.heartbeat_deadline:
            # Nothing to restart safely: say so, so an operator sees it.
            log.error(
                "%d device message(s) waiting and none recorded for %.0f s: "
                "is the database holding a lock?",
                self.inbox.qsize(),
                now - self._last_batch,
            )
            self._last_batch = now

    def restart(self, why: str) -> None:
        """Drop the connection and make a new one; the broker keeps the session and its queue."""
        log.error("reconnecting to the broker: %s", why)
        self.stats.restarts += 1
        self.connected.clear()
        self._beat_sent = None
        old = self.client
        old.disconnect()
        # paho's loop_stop() joins its thread without a limit; a thread that is stuck must not
        # take the worker with it, so the join happens aside and is waited for a while only.
        stopping = threading.Thread(target=old.loop_stop, name="trolley-old-mqtt", daemon=True)
        stopping.start()
        stopping.join(timeout=5)
        if stopping.is_alive():
            log.error("the old broker connection's thread did not stop; leaving it behind")
        self.client = self._new_client()
        self._connect()

    def pump(self) -> bool:
        """One round of the publishing side; False (logged, never raised) if it failed."""
        try:
            self.check_health()
            if self.role.publishes and self.connected.is_set():
                # Asked many times a second: both outboxes in one reading session (on SQLite an
                # empty outbox never takes the write lock from the web).
                with self.database.session(write=False) as session:
                    commands_waiting = commands.has_outgoing(session, now=self.clock())
                    states_waiting = session.scalar(_ANY_UNPUBLISHED) is not None
                if commands_waiting:
                    self._publish_pending()
                if states_waiting:
                    self._publish_desired()
                if time.monotonic() >= self._next_clearing:
                    self._next_clearing = time.monotonic() + CLEAR_RETAINED_EVERY
                    self.clear_revoked_retained()
        except Exception:
            log.exception("could not publish to devices; trying again shortly")
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._outbox.stop()
        if self._consumer is not None:
            self._consumer.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        """Publish now rather than at the next tick (e.g. a device just came online)."""
        self._wake.set()

    def poll_seconds(self) -> float:
        """How long the publishing side may wait for a wake-up before it looks at the outboxes.

        While PostgreSQL's notifications on the outbox are heard, whatever queues work wakes it
        as it commits, so it looks only now and then; otherwise (SQLite, or the listening
        connection lost) it looks often.
        """
        if self._outbox.listening.is_set():
            return self.settings.outbox_poll_listening_seconds
        return self.settings.outbox_poll_seconds

    def wait_for_work(self, timeout: float) -> bool:
        """Wait until woken or `timeout` has passed; whether it was woken."""
        woken = self._wake.wait(timeout)
        if woken:
            # Cleared only when seen: a wake-up just after a timeout is kept for the next wait.
            self._wake.clear()
        return woken

    # --- publishing -----------------------------------------------------------------
    def _publish_all(self, messages: list[tuple[str, bytes, bool]]) -> bool:
        """Publish a burst and wait for every PUBACK; False if the broker did not take them all."""
        infos = []
        for topic, payload, retain in messages:
            info = self.client.publish(topic, payload, qos=QOS, retain=retain)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                return False
            infos.append(info)
        deadline = time.monotonic() + self.publish_timeout
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                info.wait_for_publish(timeout=remaining)
            except (RuntimeError, ValueError):
                return False
            if not info.is_published():
                return False
        return True

    def _sign_commands(
        self, signing: SigningKey, outgoing: list[Outgoing]
    ) -> list[tuple[str, bytes, bool]]:
        return [
            (
                cmd_topic(item.mqtt_id),
                sign_envelope(
                    build_command(
                        item.type,
                        device_id=item.mqtt_id,
                        kid=signing.kid,
                        seq=item.seq,
                        now=item.iat,
                        args=item.args,
                        exp=item.exp,
                        cmd_id=item.cmd_id,
                    ).to_body(),
                    signing.private_key,
                ),
                False,
            )
            for item in outgoing
        ]

    def _publish_pending(self) -> int:
        """Publish queued commands in batches; what the broker does not acknowledge stays queued."""
        total = 0
        while True:
            with self._transaction() as session:
                now = self.clock()
                outgoing = commands.claim_outgoing(session, now=now, limit=self.publish_batch)
                if not outgoing:
                    return total
                signing = server_key(session, self.box)
                if not self._publish_all(self._sign_commands(signing, outgoing)):
                    session.rollback()
                    log.warning(
                        "broker did not take %d command(s); they stay queued", len(outgoing)
                    )
                    return total
                commands.mark_published(session, outgoing, now=now)
            total += len(outgoing)
            self.stats.published += len(outgoing)
            if len(outgoing) < self.publish_batch:
                return total

    def _publish_desired(self) -> int:
        """Publish changed desired states (retained); the profiles domain owns the outbox."""
        with self._transaction() as session:
            now = self.clock()
            rows = session.execute(_UNPUBLISHED_STATES, {"limit": self.batch}).all()
            if not rows:
                return 0
            signing = server_key(session, self.box)
            trusted = trusted_server_keys(session)
            messages = []
            for state, identity in rows:
                if state.document is None:
                    payload = b""  # an empty retained message clears the old profile
                else:
                    desired = build_desired(
                        state.document,
                        device_id=identity.mqtt_id,
                        kid=signing.kid,
                        version=int(state.document.get("version", 0) or 0),
                        now=int(now.timestamp()),
                        trusted_keys=trusted,
                    )
                    payload = sign_envelope(desired.to_body(), signing.private_key)
                messages.append((desired_topic(identity.mqtt_id), payload, True))
            if not self._publish_all(messages):
                session.rollback()
                return 0
            for state, _identity in rows:
                profiles.mark_published(session, state.device_id, state.sha256, now)
        self.stats.desired_published += len(rows)
        return len(rows)

    def clear_revoked_retained(self) -> int:
        """Clear what the broker retains on revoked identities' topics (their last status and
        profile): nobody can read it any more, yet the broker would keep it in memory for ever
        and replay each status to every worker that subscribes. How many were cleared."""
        # Read without the writer's lock (SQLite): nearly always there is nothing to clear.
        with self.database.session(write=False) as session:
            rows = revoked_with_retained(session, now=self.clock(), limit=self.batch)
        if not rows:
            return 0
        topics = [topic(mqtt_id) for _id, mqtt_id in rows for topic in CLEARED_TOPICS]
        if not self._publish_all([(topic, b"", True) for topic in topics]):
            return 0  # cleared again next time: clearing twice does no harm
        with self._transaction() as session:
            mark_retained_cleared(session, [id_ for id_, _mqtt_id in rows], now=self.clock())
        if len(rows) == self.batch:
            self._next_clearing = 0.0  # more are waiting: the next round goes on
        log.info("cleared the retained messages of %d revoked identities", len(rows))
        return len(rows)

    # --- consuming ------------------------------------------------------------------
    def _consume_forever(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            self._record(self._take_batch(first))
            self._last_batch = time.monotonic()

    def _take_batch(self, first: tuple[str, bytes]) -> list[tuple[str, bytes]]:
        """`first` and what follows it closely, up to `batch` messages."""
        batch = [first]
        until = time.monotonic() + BATCH_LINGER
        while len(batch) < self.batch:
            try:
                batch.append(self.inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            left = until - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=min(left, BATCH_GAP)))
            except queue.Empty:
                break
        return batch

    def _record(self, batch: list[tuple[str, bytes]]) -> None:
        """Process a batch; one bad message must not hold up the rest, and an outage loses none."""
        try:
            self.process(batch)
            return
        except Exception as exc:
            if is_contention(exc):
                log.warning("could not record %d device message(s) (%s); retrying", len(batch), exc)
                self._requeue(batch)
                return
            log.exception("could not record %d device message(s); trying each", len(batch))
        failed: list[tuple[str, BaseException]] = []
        for item in batch:
            try:
                self.process([item])
            except Exception as error:
                failed.append((item[0], error))
        if len(failed) == len(batch):
            self._requeue(batch)  # every one failed: the database is away, not the messages
            return
        for topic, problem in failed:
            # Recorded nothing: a command whose ack this was is asked again by the resend job.
            self.stats.dropped += 1
            log.error("dropped a message on %s that cannot be recorded: %r", topic, problem)

    def _requeue(self, batch: list[tuple[str, bytes]]) -> None:
        for item in batch:
            self.inbox.put(item)
        self._stop.wait(RETRY_PAUSE)

    def _senders(self, session: Session, mqtt_ids: set[str], now: datetime) -> dict[str, Sender]:
        """The live identities behind a batch's senders, as columns, in one query."""
        # An id found unknown or revoked is not looked up again for UNKNOWN_FOR: a broker can
        # hold many stale retained statuses, and each would otherwise cost a query.
        wanted = sorted(m for m in mqtt_ids if self._unknown.get(m, now) <= now)
        found: dict[str, Sender] = {}
        if not wanted:
            return found
        rows = session.execute(_SENDERS, {"mqtt_ids": wanted})
        for row in rows:
            # Decoding a key costs as much as a signature check: each is decoded once, and again
            # only when the identity's key changes.
            key = self._keys.get(row.id)
            if key is None or key[0] != row.kid:
                key = (row.kid, raw_public_key(decode_public_key(row.public_key)))
                self._keys[row.id] = key
            found[row.mqtt_id] = Sender(row.id, row.mqtt_id, row.device_id, row.kid, key[1])
        missing = [m for m in wanted if m not in found]
        if missing:
            if len(self._unknown) > 10_000:  # forget expired entries rather than grow forever
                self._unknown = {m: t for m, t in self._unknown.items() if t > now}
            for mqtt_id in missing:
                self._unknown[mqtt_id] = now + UNKNOWN_FOR
        return found

    def process(self, batch: list[tuple[str, bytes]]) -> None:
        """Verify and record a batch of device messages in one transaction."""
        # Acks go first, all together (one query for their commands), then reports and presence
        # in topic order: per device, the order sorting by topic always gave.
        messages = []
        for topic, payload in batch:
            try:
                mqtt_id, kind = parse_device_topic(topic)
            except MqttError:
                continue
            if kind is TopicKind.STATUS and not payload:
                continue  # a retained status being cleared: it says nothing of the device
            if kind in (TopicKind.ACK, TopicKind.REPORTED, TopicKind.STATUS):
                messages.append((topic, mqtt_id, kind, payload))
        if not messages:
            return
        # The same order in every worker; stable, so a device's messages keep their order.
        messages.sort(key=lambda item: item[0])
        came_online: list[str] = []
        # Senders are read and signatures checked before the write transaction: on SQLite it
        # holds the one writer lock, which the publishing thread needs too, and on PostgreSQL
        # the command rows stay locked only while they are written.
        now = self.clock()
        with self.database.session(write=False) as session:
            known = self._senders(session, {item[1] for item in messages}, now)
        sealed: list[tuple[str, Sender, Sealed]] = []  # acks, read but not yet opened
        later: list[tuple[Sender, Report | bool]] = []  # a verified report, or online or not
        for topic, mqtt_id, kind, payload in messages:
            sender = known.get(mqtt_id)
            if sender is None:
                self.stats.rejected += 1
                log.warning("message on %s from an unknown or revoked device", topic)
                continue
            if kind is TopicKind.STATUS:
                # Only this device may publish here (broker ACL); the LWT cannot be signed.
                later.append((sender, payload == STATUS_ONLINE))
                continue
            try:
                envelope = read_envelope(payload, max_bytes=max_payload_bytes(kind))
                if kind is TopicKind.ACK:
                    sealed.append((topic, sender, envelope))
                else:
                    later.append((sender, Report.from_body(self._opened(envelope, sender, now))))
            except MqttError as exc:
                self._reject(topic, exc)
        acks = self._open_acks(sealed, now)
        with self._transaction() as session:
            now = self.clock()
            commands.record_acks(session, acks, now=now)
            self.stats.acks += len(acks)
            # Reports and presence change the device's own row and raise events: mapped rows.
            identities = self._identities(session, [sender.id for sender, _news in later])
            reports: list[tuple[DeviceIdentity, Report]] = []
            for sender, news in later:
                identity = identities.get(sender.id)
                if identity is None or identity.revoked_at is not None:
                    # Removed or revoked since it was read (a factory reset this batch confirmed;
                    # acks go first): refused, as any later batch from it is.
                    continue
                if isinstance(news, Report):
                    reports.append((identity, news))
                    continue
                commands.record_presence(session, identity, online=news, now=now)
                self.stats.presence += 1
                if news:
                    came_online.append(identity.mqtt_id)
            # Together, so the networks they name are judged against one load of each list.
            commands.record_reports(session, reports, now=now)
            self.stats.reports += len(reports)
        if came_online:
            self._ask_again(came_online)
            self.wake()

    def _reject(self, topic: str, problem: MqttError) -> None:
        self.stats.rejected += 1
        log.warning("rejected a message on %s: %s", topic, problem)

    def _open_acks(
        self, sealed: list[tuple[str, Sender, Sealed]], now: datetime
    ) -> list[tuple[Sender, Ack]]:
        """The batch's acks verified, in arrival order.

        A `received` followed in the batch by its command's verified answer from the same device
        is left unopened: recording both writes just what the answer alone does (the received
        time is the answer's), and a fleet-wide command's devices send the two together.
        """
        finished: set[tuple[int, object]] = set()  # (sender, cmd_id) answered later in the batch
        opened: list[tuple[Sender, Ack]] = []
        for topic, sender, envelope in reversed(sealed):
            claim = envelope.body
            if (
                claim.get("state") == AckState.RECEIVED
                and (sender.id, claim.get("cmd_id")) in finished
            ):
                self.stats.superseded += 1
                self.stats.acks += 1  # taken: its command's answer records all it would
                continue
            try:
                ack = Ack.from_body(self._opened(envelope, sender, now))
            except MqttError as exc:
                self._reject(topic, exc)
                continue
            # A refusal of a message the device could not verify answers nothing of ours.
            if ack.state is not AckState.RECEIVED and ack.result.get("verified") is not False:
                finished.add((sender.id, ack.cmd_id))
            opened.append((sender, ack))
        opened.reverse()
        return opened

    @staticmethod
    def _identities(session: Session, ids: list[int]) -> dict[int, DeviceIdentity]:
        """These identities with their devices, in one query."""
        if not ids:
            return {}
        rows = session.scalars(
            select(DeviceIdentity)
            .where(DeviceIdentity.id.in_(sorted(set(ids))))
            .options(selectinload(DeviceIdentity.device))
        )
        return {identity.id: identity for identity in rows}

    def _ask_again(self, mqtt_ids: list[str]) -> None:
        """Send again what devices that just came online have not finished.

        Outside the batch's transaction, so no device row stays locked while the broker answers.
        """
        with self._transaction() as session:
            now = self.clock()
            again = commands.unacknowledged(session, mqtt_ids, now=now)
            if again and not self._publish_all(
                self._sign_commands(server_key(session, self.box), again)
            ):
                session.rollback()  # the resend job asks again later

    @staticmethod
    def _opened(envelope: Sealed, sender: Sender, now: datetime) -> dict[str, Any]:
        """A device message's body, verified against that device's registered key."""
        return envelope.open(
            {sender.kid: sender.public_key}, device_id=sender.mqtt_id, now=int(now.timestamp())
        )


def broker_url_for_worker(settings: Settings) -> str:
    """The server's own broker login: the embedded broker's, or the configured external one."""
    if settings.mqtt_url:
        return settings.mqtt_url
    from server.enrolment.services import server_broker_password

    return (
        f"mqtt://{settings.mqtt_server_user}:{server_broker_password(settings)}"
        f"@127.0.0.1:{settings.mqtt_port}"
    )
