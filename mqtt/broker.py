"""The embedded broker: amqtt 0.12.1 in a background thread, never anonymous, per-device ACLs.

`EmbeddedBroker` is the single-machine default (`trolley demo`/`serve`) and the broker the tests
use. It speaks MQTT 3.1.1 only. Three plugins (amqtt's 0.12 dataclass-configured plugin API) and
a `Broker` subclass make it behave like the generated Mosquitto configuration:

* `TrolleyAuthPlugin`: users come from the password file the server writes (`mqtt.passwords`,
  Mosquitto's `$7$` PBKDF2-SHA512 lines), re-read whenever the file changes. There is no
  anonymous access: amqtt queues messages for offline sessions only when they are not anonymous.
  A device must use its device id as both username and client id (so it cannot take over
  another device's session), and may only set its own topics as will.
* `TrolleyACLPlugin`: a device may subscribe to and receive only its own `cmd`/`desired`, and
  publish only its own `ack`/`reported`/`status`; a server user may do anything under
  `trolley/v1/`. `$share/...` filters are refused: amqtt does not implement shared
  subscriptions, so refusing them makes a misconfigured worker fail loudly instead of hearing
  nothing.
* `TrolleyPersistencePlugin`: retained messages, persistent sessions (username, subscriptions)
  and the QoS 1 messages queued for offline persistent sessions are written to SQLite
  (`broker.sqlite3` in the data directory, WAL) and restored before the listener opens, so a
  restart keeps them. Queued rows are deleted when the session reconnects, because amqtt hands
  its in-memory queue to the client then; should that delivery be cut short, the server's outbox
  re-publishes un-acked commands. We do not use `amqtt.contrib.persistence.SessionDBPlugin`
  (it imports here, via SQLAlchemy and aiosqlite): in 0.12.1 it never deletes delivered queued
  messages, so every restart would re-deliver every message ever queued; it appends a duplicate
  subscription row on every re-subscribe, ignores unsubscribes and by default wipes its
  database on a clean shutdown.
* `TrolleyBroker` and `TrolleyHandler` (`mqtt.amqtt_patches`, the one module that overrides
  amqtt 0.12.1 internals, and refuses to import with any other amqtt) authenticate a CONNECT
  before touching any session, re-send retained messages only where the ACL allows, keep QoS 1
  messages in flight until PUBACKed, and close every connection and transport cleanly; they
  enforce the keep-alive (publishing the will), the limits in `mqtt.limits` (packet size,
  CONNECT timeout, each client's backlog) and MQTT 3.1.1's packet rules (`mqtt.wire_rules`);
  that module says why each patch exists. With `BrokerTLS.require_certificate` the TLS listener
  demands a client certificate; a certificate presented must name the user it logs in as.

pyproject pins `amqtt==0.12.1` for those patches; the tests in
`tests/mqtt/test_broker_contract.py` and `tests/mqtt/test_broker_fleet_faults.py` fail if any of
these fixes stops working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.broker import BrokerContext, RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session

from mqtt.amqtt_patches import SESSION_CLOSE_TIMEOUT, TrolleyBroker, bound_port
from mqtt.errors import BrokerConfigError, BrokerError, MqttError, PasswordFileError
from mqtt.limits import BrokerLimits
from mqtt.passwords import read_password_file, verify_password
from mqtt.topics import DEVICE_KINDS, PREFIX, SERVER_KINDS, device_topic, is_device_id

__all__ = [
    "DEFAULT_SERVER_USERNAME",
    "DEFAULT_SESSION_EXPIRY",
    "BrokerTLS",
    "EmbeddedBroker",
    "TrolleyACLPlugin",
    "TrolleyAuthPlugin",
    "TrolleyPersistencePlugin",
    "topic_allowed",
]

logger = logging.getLogger(__name__)

# An underscore cannot occur in a device id, so no device can ever be enrolled under this name.
DEFAULT_SERVER_USERNAME = "trolley_server"
# Like Mosquitto's persistent_client_expiration: long enough for a half-term holiday.
DEFAULT_SESSION_EXPIRY = 21 * 24 * 3600
DATABASE_NAME = "broker.sqlite3"

_PREFIX_LEVELS = PREFIX.split("/")
# A verification against this keeps an unknown username as slow as a wrong password.
_DUMMY_HASH = "$7$1000$AAAAAAAAAAAAAAAA$" + "A" * 86 + "=="
_SHUTDOWN_TIMEOUT = 8.0


# --- access rules -------------------------------------------------------------------------------


def _under_prefix(levels: list[str]) -> bool:
    """Whether topic levels lie strictly below `trolley/v1`."""
    return len(levels) > len(_PREFIX_LEVELS) and levels[: len(_PREFIX_LEVELS)] == _PREFIX_LEVELS


def topic_allowed(
    username: str | None, topic: str, action: Action | str, server_users: Iterable[str]
) -> bool:
    """The broker ACL: may `username` subscribe to / receive / publish `topic`?"""
    if not username or not topic or topic.startswith("$"):
        return False
    action = Action(action)
    if username in set(server_users):
        return _under_prefix(topic.split("/"))
    if not is_device_id(username):
        return False
    kinds = DEVICE_KINDS if action in (Action.SUBSCRIBE, Action.RECEIVE) else SERVER_KINDS
    return topic in {device_topic(username, kind) for kind in kinds}


# --- plugins ------------------------------------------------------------------------------------


def _default_server_users() -> list[str]:
    """A fresh default list for a plugin Config."""
    return [DEFAULT_SERVER_USERNAME]


class TrolleyAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """Password-file authentication; devices must use their id as username and client id."""

    @dataclass
    class Config:
        """Plugin settings (filled by amqtt from the broker config)."""

        password_file: str = ""
        server_users: list[str] = field(default_factory=_default_server_users)

    def __init__(self, context: BrokerContext) -> None:
        """Load the password file now, so a missing or broken file stops the broker starting."""
        super().__init__(context)
        if not self.config.password_file:
            raise BrokerConfigError("TrolleyAuthPlugin needs a password_file")
        self._path = Path(self.config.password_file)
        self._server_users = frozenset(self.config.server_users)
        self._users: dict[str, str] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._reload(initial=True)

    def _reload(self, *, initial: bool = False) -> None:
        """Re-read the password file if it changed since the last read."""
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            self._users = read_password_file(self._path)
            self._stamp = stamp
            logger.info("loaded %d broker user(s) from %s", len(self._users), self._path)
        except (OSError, PasswordFileError) as exc:
            if initial:
                raise BrokerConfigError(f"cannot load broker password file: {exc}") from exc
            # Keep the last good table: a broken file must not lock every device out.
            logger.error("keeping previous broker users; password file unusable: %s", exc)

    async def authenticate(self, *, session: Session) -> bool:
        """Check username, password, client id and will topic."""
        username = session.username
        password: Any = session.password
        if isinstance(password, bytes | bytearray):
            password = bytes(password).decode("utf-8", "replace")
        if not username or not password:
            logger.info("refused connection without credentials (client id %r)", session.client_id)
            return False
        self._reload()
        encoded = self._users.get(username)
        if not verify_password(password, encoded or _DUMMY_HASH) or encoded is None:
            logger.info("refused connection for %r: bad username or password", username)
            return False
        if username not in self._server_users:
            if not is_device_id(username):
                logger.warning("refused %r: not a device id and not a server user", username)
                return False
            if session.client_id != username:
                logger.warning(
                    "refused device %r: client id %r must equal the username",
                    username,
                    session.client_id,
                )
                return False
        if session.will_flag and not topic_allowed(
            username, session.will_topic or "", Action.PUBLISH, self._server_users
        ):
            logger.warning("refused %r: will topic %r not allowed", username, session.will_topic)
            return False
        return True


class TrolleyACLPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Per-device topic permissions (see `topic_allowed`)."""

    @dataclass
    class Config:
        """Plugin settings (filled by amqtt from the broker config)."""

        server_users: list[str] = field(default_factory=_default_server_users)

    def __init__(self, context: BrokerContext) -> None:
        """Remember the server users."""
        super().__init__(context)
        self._server_users = frozenset(self.config.server_users)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        """Allow or refuse one subscribe, publish or delivery."""
        if session is None or topic is None or action is None:
            return False
        allowed = topic_allowed(session.username, topic, action, self._server_users)
        if not allowed and action != Action.RECEIVE:
            logger.info("refused %s on %r for %r", action.value, topic, session.username)
        return allowed


_SCHEMA = """
CREATE TABLE IF NOT EXISTS retained (
    topic TEXT PRIMARY KEY, data BLOB NOT NULL, qos INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    client_id TEXT PRIMARY KEY, username TEXT, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, topic_filter TEXT NOT NULL, qos INTEGER NOT NULL,
    PRIMARY KEY (client_id, topic_filter));
CREATE TABLE IF NOT EXISTS queued (
    id INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL, topic TEXT NOT NULL,
    data BLOB NOT NULL, qos INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS queued_by_client ON queued (client_id, id);
"""


class TrolleyPersistencePlugin(BasePlugin[BrokerContext]):  # type: ignore[misc]
    """Retained messages, persistent sessions and their queued messages, kept in SQLite.

    Every handler runs its SQL without awaiting, so handlers (scheduled by amqtt in event order)
    apply in that order. WAL with `synchronous=NORMAL` keeps each write cheap and survives a
    broker crash; only a power cut can lose the last few writes, which the outbox covers.
    """

    @dataclass
    class Config:
        """Plugin settings (filled by amqtt from the broker config)."""

        database: str = ""
        session_expiry: int | None = None

    def __init__(self, context: BrokerContext) -> None:
        """Check the settings; the database opens when the broker starts."""
        super().__init__(context)
        if not self.config.database:
            raise BrokerConfigError("TrolleyPersistencePlugin needs a database path")
        self._db: sqlite3.Connection | None = None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction."""
        if self._db is None:
            raise BrokerError("persistence database is not open")
        self._db.execute("BEGIN")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def on_broker_pre_start(self) -> None:
        """Open the database and restore state before the listener accepts clients."""
        self._db = sqlite3.connect(self.config.database, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        await self._restore()

    async def _restore(self) -> None:
        """Load retained messages and persistent sessions into the (empty) broker."""
        expiry = self.config.session_expiry
        cutoff = int(time.time()) - expiry if expiry is not None else None
        with self._tx() as db:
            retained = db.execute("SELECT topic, data, qos FROM retained").fetchall()
            sessions = db.execute("SELECT client_id, username, last_seen FROM sessions").fetchall()
            if cutoff is not None:
                expired = [row[0] for row in sessions if row[2] < cutoff]
                for client_id in expired:
                    self._forget(db, client_id)
                sessions = [row for row in sessions if row[2] >= cutoff]
            subscriptions = db.execute(
                "SELECT client_id, topic_filter, qos FROM subscriptions"
            ).fetchall()
            queued = db.execute(
                "SELECT client_id, topic, data, qos FROM queued ORDER BY id"
            ).fetchall()
        for topic, data, qos in retained:
            self.context.retained_messages[topic] = RetainedApplicationMessage(
                None, topic, data, qos
            )
        restored: dict[str, Session] = {}
        for client_id, username, last_seen in sessions:
            await self.context.add_subscription(client_id, None, None)
            session = self.context.get_session(client_id)
            if session is None:
                continue
            session.username = username
            session.clean_session = False
            session.last_disconnect_time = last_seen
            restored[client_id] = session
        for client_id, topic_filter, qos in subscriptions:
            if client_id in restored:
                await self.context.add_subscription(client_id, topic_filter, qos)
        for client_id, topic, data, qos in queued:
            if client_id in restored:
                message = RetainedApplicationMessage(None, topic, data, qos)
                restored[client_id].retained_messages.put_nowait(message)
        logger.info(
            "restored %d retained message(s), %d session(s), %d queued message(s)",
            len(retained),
            len(restored),
            sum(1 for row in queued if row[0] in restored),
        )

    @staticmethod
    def _forget(db: sqlite3.Connection, client_id: str) -> None:
        """Delete everything stored for one session."""
        for table in ("sessions", "subscriptions", "queued"):
            db.execute(f"DELETE FROM {table} WHERE client_id = ?", (client_id,))  # noqa: S608

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        """Record a persistent session, or forget one that reconnected clean."""
        with self._tx() as db:
            if client_session.clean_session:
                self._forget(db, client_id)
                return
            db.execute(
                "INSERT INTO sessions (client_id, username, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id) DO UPDATE SET username = excluded.username, "
                "last_seen = excluded.last_seen",
                (client_id, client_session.username, int(time.time())),
            )
            # amqtt is handing its in-memory queue for this session to the client right now.
            db.execute("DELETE FROM queued WHERE client_id = ?", (client_id,))

    async def on_broker_client_disconnected(
        self, *, client_id: str, client_session: Session
    ) -> None:
        """Start the expiry clock of a persistent session."""
        if client_session.clean_session:
            return
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET last_seen = ? WHERE client_id = ?",
                (int(time.time()), client_id),
            )

    async def on_broker_client_subscribed(self, *, client_id: str, topic: str, qos: int) -> None:
        """Store a persistent session's subscription."""
        session = self.context.get_session(client_id)
        if session is None or session.clean_session:
            return
        with self._tx() as db:
            db.execute(
                "INSERT INTO subscriptions (client_id, topic_filter, qos) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id, topic_filter) DO UPDATE SET qos = excluded.qos",
                (client_id, topic, qos),
            )

    async def on_broker_client_unsubscribed(self, *, client_id: str, topic: str) -> None:
        """Drop a stored subscription."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
                (client_id, topic),
            )

    async def on_broker_retained_message(
        self, *, client_id: str | None, retained_message: RetainedApplicationMessage
    ) -> None:
        """Store a retained message (or its clearing), or one queued for an offline session."""
        data = bytes(retained_message.data or b"")
        qos = retained_message.qos or 0
        with self._tx() as db:
            if client_id is not None:
                db.execute(
                    "INSERT INTO queued (client_id, topic, data, qos) VALUES (?, ?, ?, ?)",
                    (client_id, retained_message.topic, data, qos),
                )
            elif data:
                db.execute(
                    "INSERT INTO retained (topic, data, qos) VALUES (?, ?, ?) "
                    "ON CONFLICT (topic) DO UPDATE SET data = excluded.data, qos = excluded.qos",
                    (retained_message.topic, data, qos),
                )
            else:
                db.execute("DELETE FROM retained WHERE topic = ?", (retained_message.topic,))

    async def on_broker_post_shutdown(self) -> None:
        """Close the database."""
        await self.close()

    async def close(self) -> None:
        """Close the database (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None


# --- broker -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerTLS:
    """A TLS listener's server certificate and key, and the CA its clients' certificates need.

    `ca_file` (PEM, normally the school CA) is what a client certificate is verified against;
    without it a client presenting a certificate is checked against the system CAs and a
    school-issued one fails the handshake. A client may still connect without a certificate
    (and log in with its password) unless `require_certificate` is set, which needs `ca_file`.
    The certificate does not replace the password login, and its CN must be the username.
    """

    cert_file: str | Path
    key_file: str | Path
    ca_file: str | Path | None = None
    require_certificate: bool = False

    def __post_init__(self) -> None:
        """A required certificate must be checked against something."""
        if self.require_certificate and self.ca_file is None:
            raise BrokerConfigError("require_certificate needs a ca_file to verify clients")


class EmbeddedBroker:
    """An amqtt broker on its own event loop in a daemon thread; also a context manager."""

    def __init__(
        self,
        *,
        password_file: str | os.PathLike[str],
        data_dir: str | os.PathLike[str],
        port: int = 1883,
        host: str = "127.0.0.1",
        server_users: Iterable[str] = (DEFAULT_SERVER_USERNAME,),
        session_expiry: int | None = DEFAULT_SESSION_EXPIRY,
        tls: BrokerTLS | None = None,
        limits: BrokerLimits | None = None,
    ) -> None:
        """Describe the broker; nothing starts until `start()`. Port 0 picks a free port."""
        if not 0 <= port <= 65535:
            raise BrokerConfigError(f"port {port} is out of range")
        users = list(server_users)
        if not users:
            raise BrokerConfigError("at least one server user is needed")
        for user in users:
            if is_device_id(user):
                raise BrokerConfigError(
                    f"server user {user!r} could also be a device id; use a name with '_'"
                )
        self.host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self.password_file = Path(password_file)
        self.data_dir = Path(data_dir)
        self.server_users = tuple(users)
        self.session_expiry = session_expiry
        self.tls = tls
        self.limits = limits or BrokerLimits()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The listening port (the real one once started, if 0 was asked for)."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    @property
    def running(self) -> bool:
        """Whether the broker thread is up."""
        return self._thread is not None and self._thread.is_alive() and self._bound_port is not None

    def _config(self) -> dict[str, Any]:
        """The amqtt configuration dictionary."""
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{self.host}:{self._requested_port}"}
        if self.tls is not None:
            listener.update(
                ssl=True, certfile=str(self.tls.cert_file), keyfile=str(self.tls.key_file)
            )
            if self.tls.ca_file is not None:
                listener["cafile"] = str(self.tls.ca_file)
        users = list(self.server_users)
        return {
            "listeners": {"default": listener},
            "session_expiry_interval": self.session_expiry,
            "plugins": {
                f"{__name__}.TrolleyAuthPlugin": {
                    "password_file": str(self.password_file),
                    "server_users": users,
                },
                f"{__name__}.TrolleyACLPlugin": {"server_users": users},
                f"{__name__}.TrolleyPersistencePlugin": {
                    "database": str(self.data_dir / DATABASE_NAME),
                    "session_expiry": self.session_expiry,
                },
            },
        }

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and block until it listens; raise `BrokerError` if it cannot."""
        if self._thread is not None:
            raise BrokerError("broker is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, name=f"trolley-broker-{self._requested_port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise BrokerError(f"broker did not start within {timeout}s")
        if self._error is not None:
            error = self._error
            self._thread.join(timeout)
            self._thread = None
            raise BrokerError(f"broker could not start: {error}") from error
        logger.info("embedded broker listening on %s:%d", self.host, self.port)

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the broker down cleanly and wait for its thread (no-op if not running)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may close between check and call
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise BrokerError(f"broker did not stop within {timeout}s")
        self._thread = None
        self._bound_port = None
        logger.info("embedded broker on %s:%d stopped", self.host, self._requested_port)

    def __enter__(self) -> EmbeddedBroker:
        """Start on entry."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop on exit."""
        self.stop()

    def _run(self) -> None:
        """Thread body: run the broker's event loop until `stop()`."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # the thread must end quietly; start() reports the error
            logger.exception("embedded broker failed")
            self._error = self._error or exc
        finally:
            with contextlib.suppress(Exception):
                _cancel_remaining(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None
            self._ready.set()

    async def _serve(self) -> None:
        """Start amqtt, report readiness, wait for the stop signal, shut down."""
        self._stop = asyncio.Event()
        try:
            broker = TrolleyBroker(
                self._config(),
                require_certificate=self.tls is not None and self.tls.require_certificate,
                limits=self.limits,
            )
        except Exception as exc:
            self._error = _root_cause(exc)
            self._ready.set()
            return
        try:
            await broker.start()
        except Exception as exc:
            self._error = _root_cause(exc)
            await broker.plugins_manager.close()
            self._ready.set()
            return
        self._bound_port = bound_port(broker) or self._requested_port
        self._ready.set()
        await self._stop.wait()
        shutdown = asyncio.ensure_future(broker.shutdown())
        done, _ = await asyncio.wait({shutdown}, timeout=_SHUTDOWN_TIMEOUT)
        if not done:  # the thread's clean-up cancels what is left; state is written through
            logger.warning("embedded broker shutdown took over %.0fs; cut short", _SHUTDOWN_TIMEOUT)
        else:
            shutdown.result()  # re-raise a failure


def _root_cause(exc: BaseException) -> BaseException:
    """The most useful error in amqtt's wrapping: ours if there is one, else the innermost."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        if isinstance(current, MqttError):
            return current
        seen.append(current)
        current = current.__cause__
    return seen[-1]


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks amqtt left behind, so closing the loop warns about nothing."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:  # bounded: a task that ignores its cancellation must not hold the thread
        loop.run_until_complete(asyncio.wait(pending, timeout=SESSION_CLOSE_TIMEOUT))
