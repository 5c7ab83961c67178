"""The device logic, independent of how messages travel: verify, persist, execute, ack.

`DeviceCore` is driven by exactly one thread at a time (the agent's worker, or the simulator's
worker that owns the device). Its transport is a `Publisher`; each incoming message comes with a
`settle` callback that sends the broker's PUBACK, which the core calls only once the message is
persisted (or refused), so a crash before that makes the broker deliver it again.

Order of checks for a command (`mqtt.envelope.open_envelope` does the first five):
size → JSON shape → known kid → signature → device id → time window → duplicate (ledger) →
message schema → sequence window → freeze → persist → PUBACK → ack `received` → execute →
persist → ack `done`/`failed`. Nothing is ever executed from a message that failed a check.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kiosk_client.adapters.base import PlatformAdapter
from kiosk_client.config import (
    TLS_DIR,
    DeviceIdentity,
    KioskConfig,
    enrolment_files,
    parse_server_keys,
    save_server_keys,
)
from kiosk_client.errors import (
    CommandFailedError,
    ConfigError,
    KioskError,
    ResetNotConfirmedError,
    ServerUnreachableError,
)
from kiosk_client.outcomes import Outcome, Publisher, Settle, _ackable, _short, _shown
from kiosk_client.reporting import build_report
from kiosk_client.server_api import ServerClient
from kiosk_client.state import CommandRecord, Stage, StateStore
from kiosk_client.version import AGENT_VERSION
from mqtt.envelope import (
    DEFAULT_REPLAY_WINDOW,
    check_fresh,
    open_envelope,
    sign,
    unverified_body,
)
from mqtt.errors import (
    EnvelopeError,
    ExpiredError,
    MessageError,
    NotYetValidError,
    ReplayedError,
    TopicError,
    UnknownCommandError,
    WrongDeviceError,
)
from mqtt.limits import MAX_COMMAND_BYTES, MAX_DESIRED_BYTES, MAX_REPORT_BYTES
from mqtt.messages import (
    AckState,
    Command,
    CommandType,
    Desired,
    build_ack,
    is_destructive,
)
from mqtt.topics import TopicKind, ack_topic, parse_device_topic, reported_topic

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_DESIRED_BYTES",
    "DeviceCore",
    "Outcome",
    "Publisher",
    "Settle",
]

logger = logging.getLogger(__name__)

RESET_REQUEST_TTL = 120
ACK_DELIVERY_TIMEOUT = 5.0
FROZEN = "refused: the school has frozen destructive commands on its devices"


class DeviceCore:
    """One enrolled device: its keys, ledger, adapter and handlers."""

    def __init__(
        self,
        config: KioskConfig,
        *,
        identity: DeviceIdentity,
        server_keys: Mapping[str, Ed25519PublicKey],
        adapter: PlatformAdapter,
        store: StateStore,
        publisher: Publisher,
        server: ServerClient | None = None,
        clock: Callable[[], float] = time.time,
        on_forgotten: Callable[[], None] | None = None,
        on_network: Callable[[Mapping[str, str]], None] | None = None,
    ) -> None:
        """Load the ledger; nothing is sent until `resume()` or a message arrives."""
        self.config = config
        self.identity = identity
        self.server_keys: dict[str, Ed25519PublicKey] = dict(server_keys)
        self.adapter = adapter
        self.store = store
        self.publisher = publisher
        self.server = server
        self.clock = clock
        self.on_forgotten = on_forgotten
        self.on_network = on_network
        self.state = store.load()
        self._desired: dict[str, Any] | None = store.load_desired()
        self._started = time.monotonic()
        self.forgotten = False

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self.config.device_id

    def _now(self) -> int:
        """Integer epoch seconds."""
        return int(self.clock())

    def _save(self) -> None:
        """Persist the ledger (pruned) atomically."""
        self.state.prune(self._now())
        self.store.save(self.state)

    # --- outgoing -----------------------------------------------------------------------------

    def _signed_ack(
        self,
        cmd_id: str,
        state: AckState,
        detail: str = "",
        result: Mapping[str, Any] | None = None,
    ) -> bytes:
        """An ack envelope signed with the device key."""
        ack = build_ack(
            cmd_id,
            state,
            device_id=self.device_id,
            kid=self.identity.kid,
            now=self._now(),
            detail=_short(detail),
            result=result,
        )
        return sign(ack.to_body(), self.identity.private_key)

    def _send_ack(
        self,
        cmd_id: str,
        state: AckState,
        detail: str = "",
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """Sign and publish an ack (nothing once the enrolment is forgotten)."""
        if self.forgotten:
            return
        payload = self._signed_ack(cmd_id, state, detail, result)
        self.publisher.publish(ack_topic(self.device_id), payload)
        logger.info("%s: ack %s %s %s", self.device_id, cmd_id, state.value, detail)

    def build_report(self) -> bytes:
        """The signed inventory report."""
        report = build_report(
            self.adapter,
            self.state,
            self._desired,
            kid=self.identity.kid,
            device_id=self.device_id,
            asset_tag=self.config.asset_tag,
            uptime=int(time.monotonic() - self._started),
            now=self._now(),
        )
        if self.on_network is not None:
            # The public address is seen only over HTTPS: hand the facts to the check-in.
            self.on_network(report.network or {})
        return sign(report.to_body(), self.identity.private_key)

    def publish_report(self) -> None:
        """Sign and publish an inventory report (logged, never raised, if the adapter fails)."""
        if self.forgotten:
            return
        try:
            payload = self.build_report()
        except (KioskError, OSError, MessageError) as exc:
            logger.error("%s: cannot build a report: %s", self.device_id, exc)
            return
        self._send_report(payload)

    def _send_report(self, payload: bytes) -> bool:
        """Publish a signed report, unless it is over the limit (then logged, and False)."""
        if len(payload) > MAX_REPORT_BYTES:
            # The server would refuse it, and a packet over the broker's limit would cost the
            # connection on every attempt: better no report than a reconnect loop.
            logger.error(
                "%s: not sending a %d-byte report (the limit is %d bytes)",
                self.device_id,
                len(payload),
                MAX_REPORT_BYTES,
            )
            return False
        self.publisher.publish(reported_topic(self.device_id), payload)
        return True

    # --- entry points -------------------------------------------------------------------------

    def resume(self) -> None:
        """Settle commands a previous run left unfinished (call once, before messages)."""
        now = self._now()
        for record in list(self.state.commands.values()):
            if self.forgotten:
                return
            if record.stage is Stage.RECEIVED:
                if record.exp <= now:
                    self._finish(record, Outcome(Stage.FAILED, "expired before it could run"))
                else:
                    logger.info(
                        "%s: running %s %s received before a restart",
                        self.device_id,
                        record.type,
                        record.cmd_id,
                    )
                    self._execute(record)
            elif record.stage is Stage.EXECUTING:
                if record.type == CommandType.FACTORY_RESET.value and record.confirmed:
                    # The server confirmed it: finish erasing rather than leave half a device.
                    self._erase_and_forget(record)
                else:
                    logger.warning(
                        "%s: %s %s was interrupted by a restart; not repeating it",
                        self.device_id,
                        record.type,
                        record.cmd_id,
                    )
                    self._finish(
                        record,
                        Outcome(
                            Stage.FAILED,
                            "interrupted: the kiosk restarted while running this command, "
                            "so it was not run again; send it again if it is still needed",
                            {"interrupted": True},
                        ),
                    )

    def handle_message(self, topic: str, payload: bytes, settle: Settle) -> None:
        """Route one incoming message; `settle()` is called exactly once."""
        try:
            device_id, kind = parse_device_topic(topic)
        except TopicError:
            logger.warning("%s: ignoring a message on unexpected topic %r", self.device_id, topic)
            settle()
            return
        if self.forgotten or device_id != self.device_id:
            settle()
            return
        if kind is TopicKind.CMD:
            self._on_command(payload, settle)
        elif kind is TopicKind.DESIRED:
            self._on_desired(payload, settle)
        else:
            settle()

    # --- commands -----------------------------------------------------------------------------

    def _on_command(self, raw: bytes, settle: Settle) -> None:
        """Verify, de-duplicate, persist, PUBACK, ack and run one command."""
        try:
            body = open_envelope(
                raw,
                self.server_keys,
                device_id=self.device_id,
                now=self._now(),
                max_bytes=MAX_COMMAND_BYTES,
            )
        except (ExpiredError, NotYetValidError) as exc:
            # The signature verified (open_envelope checks time last): a known command is a
            # late duplicate and gets its real outcome again; anything else is refused.
            cmd_id = unverified_body(raw, max_bytes=MAX_COMMAND_BYTES).get("cmd_id")
            known = self.state.commands.get(cmd_id) if isinstance(cmd_id, str) else None
            if known is not None:
                self._reack(known)
            else:
                logger.warning("%s: rejected command %s: %s", self.device_id, _shown(cmd_id), exc)
                self._reject(cmd_id, exc, verified=True)
            settle()
            return
        except WrongDeviceError as exc:
            # Signed, but for another device: acking it under our id would mean nothing.
            logger.warning("%s: ignored a command for another device: %s", self.device_id, exc)
            settle()
            return
        except EnvelopeError as exc:
            self._refuse_unverified(raw, exc)
            settle()
            return

        cmd_id = body.get("cmd_id")
        known = self.state.commands.get(cmd_id) if isinstance(cmd_id, str) else None
        if known is not None:
            logger.info(
                "%s: duplicate delivery of %s; re-acking, not running it again",
                self.device_id,
                cmd_id,
            )
            self._reack(known)
            settle()
            return
        try:
            command = Command.from_body(body)
        except MessageError as exc:
            reason = "unknown_command" if isinstance(exc, UnknownCommandError) else "malformed"
            logger.warning("%s: rejected command %s: %s", self.device_id, _shown(cmd_id), exc)
            if _ackable(cmd_id):
                self._record_rejection(cmd_id, body, reason, str(exc))
            settle()
            return
        try:
            check_fresh(
                command.cmd_id,
                command.seq,
                self.state.commands.keys(),
                self.state.last_seq,
                window=DEFAULT_REPLAY_WINDOW,
            )
        except ReplayedError as exc:
            logger.warning(
                "%s: rejected replayed command %s: %s", self.device_id, command.cmd_id, exc
            )
            self._reject(command.cmd_id, exc, verified=True)
            settle()
            return
        if self.state.frozen and is_destructive(command.type, command.args):
            logger.warning("%s: refused %s: the school froze it", self.device_id, command.cmd_id)
            self._record_rejection(command.cmd_id, body, "frozen", FROZEN)
            settle()
            return

        record = CommandRecord(
            cmd_id=command.cmd_id,
            seq=command.seq,
            type=command.type.value,
            args=dict(command.args),
            exp=command.exp,
            stage=Stage.RECEIVED,
        )
        self.state.commands[record.cmd_id] = record
        self.state.last_seq = max(self.state.last_seq, record.seq)
        self._save()
        # Only now may the broker forget the message: it is on disk.
        settle()
        self._send_ack(record.cmd_id, AckState.RECEIVED)
        self._execute(record)

    def _refuse_unverified(self, raw: bytes, exc: EnvelopeError) -> None:
        """Log a message that failed verification; ack `rejected` if it names us and a cmd_id."""
        try:
            body = unverified_body(raw, max_bytes=MAX_COMMAND_BYTES)
        except EnvelopeError:
            logger.warning(
                "%s: refused an unreadable command (%d bytes): %s", self.device_id, len(raw), exc
            )
            return
        cmd_id = body.get("cmd_id")
        logger.warning(
            "%s: refused unverifiable command %s: %s", self.device_id, _shown(cmd_id), exc
        )
        if isinstance(cmd_id, str) and cmd_id in self.state.commands:
            # A forged copy of a real command must not turn its recorded outcome into a refusal.
            return
        if body.get("device_id") == self.device_id:
            self._reject(cmd_id, exc, verified=False)

    def _reject(self, cmd_id: object, exc: EnvelopeError, *, verified: bool) -> None:
        """Ack `rejected` (nothing recorded: the message may not even be the server's)."""
        if _ackable(cmd_id):
            self._send_ack(
                cmd_id,
                AckState.REJECTED,
                str(exc),
                {"reason": exc.reason, "verified": verified},
            )

    def _record_rejection(
        self, cmd_id: str, body: Mapping[str, Any], reason: str, detail: str
    ) -> None:
        """A verified command we cannot run: remember the refusal so duplicates get the same."""
        seq = body.get("seq")
        exp = body.get("exp")
        record = CommandRecord(
            cmd_id=cmd_id,
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else 0,
            type=str(body.get("type"))[:64],
            args={},
            exp=exp if isinstance(exp, int) else self._now(),
            stage=Stage.REJECTED,
            detail=_short(detail),
            result={"reason": reason, "verified": True},
        )
        self.state.commands[cmd_id] = record
        self._save()
        self._send_ack(cmd_id, AckState.REJECTED, record.detail, record.result)

    def _reack(self, record: CommandRecord) -> None:
        """Send a known command's current state again."""
        state = {
            Stage.RECEIVED: AckState.RECEIVED,
            Stage.EXECUTING: AckState.RECEIVED,
            Stage.DONE: AckState.DONE,
            Stage.FAILED: AckState.FAILED,
            Stage.REJECTED: AckState.REJECTED,
        }[record.stage]
        self._send_ack(record.cmd_id, state, record.detail, record.result)

    def _execute(self, record: CommandRecord) -> None:
        """Mark the command running, run it, persist and ack the outcome."""
        record.stage = Stage.EXECUTING
        self._save()
        if record.type == CommandType.FACTORY_RESET.value:
            self._factory_reset(record)
            return
        try:
            outcome = self._run(record)
        except CommandFailedError as exc:
            outcome = Outcome(Stage.FAILED, exc.detail, exc.result)
        except (KioskError, OSError, MessageError) as exc:
            outcome = Outcome(Stage.FAILED, str(exc))
        except Exception as exc:  # a handler bug must still end in an ack, not a silent hang
            logger.exception("%s: %s %s crashed", self.device_id, record.type, record.cmd_id)
            outcome = Outcome(Stage.FAILED, f"internal error in the kiosk: {type(exc).__name__}")
        self._finish(record, outcome)

    def _finish(self, record: CommandRecord, outcome: Outcome) -> None:
        """Persist a command's outcome, then ack it."""
        record.stage = outcome.stage
        record.detail = _short(outcome.detail)
        record.result = dict(outcome.result)
        self._save()
        state = AckState.DONE if outcome.stage is Stage.DONE else AckState.FAILED
        self._send_ack(record.cmd_id, state, record.detail, record.result)

    def _run(self, record: CommandRecord) -> Outcome:
        """Dispatch to the handler for the command's type."""
        handlers: dict[str, Callable[[CommandRecord], Outcome]] = {
            CommandType.PING.value: self._ping,
            CommandType.REPORT_INVENTORY.value: self._report_inventory,
            CommandType.WIPE_PHOTOS.value: self._wipe_photos,
            CommandType.APPLY_PROFILE.value: self._apply_profile,
            CommandType.LOST_MODE.value: self._lost_mode,
            CommandType.LOCK.value: self._lock,
            CommandType.FREEZE.value: self._freeze,
        }
        handler = handlers.get(record.type)
        if handler is None:
            raise CommandFailedError(f"this kiosk has no handler for {record.type!r}")
        return handler(record)

    # --- handlers -----------------------------------------------------------------------------

    def _ping(self, record: CommandRecord) -> Outcome:
        """Answer with the agent's uptime and version."""
        return Outcome(
            Stage.DONE,
            "pong",
            {
                "uptime_seconds": int(time.monotonic() - self._started),
                "agent_version": AGENT_VERSION,
            },
        )

    def _report_inventory(self, record: CommandRecord) -> Outcome:
        """Publish an inventory report now."""
        if not self._send_report(self.build_report()):
            raise CommandFailedError("the inventory is too large to send")
        return Outcome(Stage.DONE, "inventory reported")

    def _wipe_photos(self, record: CommandRecord) -> Outcome:
        """Delete the photos; anything left behind makes the wipe `failed` (P-PHOTO-1)."""
        result = self.adapter.wipe_photos()
        # No report here: `remaining` is the photo count now, and a fleet-wide wipe would
        # otherwise double the messages the broker has to route.
        data: dict[str, Any] = {"deleted": result.deleted, "remaining": result.remaining}
        if result.complete:
            return Outcome(Stage.DONE, f"deleted {result.deleted} photo(s); none remain", data)
        data["errors"] = list(result.errors)
        if result.remaining:
            detail = f"{result.remaining} photo(s) remain after deleting {result.deleted}"
        else:
            detail = f"deleted {result.deleted} photo(s) but could not check every folder"
        if result.errors:
            detail += ": " + "; ".join(result.errors[:3])
        return Outcome(Stage.FAILED, detail, data)

    def _lost_mode(self, record: CommandRecord) -> Outcome:
        """Show the school's return message and lock, or clear (P-LOSS-3)."""
        if record.args.get("enabled"):
            message = str(record.args.get("message") or "").strip() or (
                f"This device belongs to {self.config.school or 'a school'}. "
                "Please hand it in at the school office."
            )
            phone = str(record.args.get("phone") or "").strip()
            if phone:
                message += f"\nPhone: {phone}"
            self.adapter.set_lost_mode(True, message)
            self.publish_report()
            return Outcome(Stage.DONE, "lost mode on", {"lost_mode": True, "locked": True})
        self.adapter.set_lost_mode(False, "")
        self.publish_report()
        return Outcome(Stage.DONE, "lost mode off", {"lost_mode": False, "locked": False})

    def _lock(self, record: CommandRecord) -> Outcome:
        """Lock the screen with the command's message (or a default naming the school)."""
        message = str(record.args.get("message") or "").strip() or (
            f"This device has been locked by {self.config.school or 'the school'}."
        )
        self.adapter.lock(message)
        self.publish_report()
        return Outcome(Stage.DONE, "locked", {"locked": True})

    def _freeze(self, record: CommandRecord) -> Outcome:
        """Refuse destructive commands from now on, or again accept them (the newest decides)."""
        if record.seq >= self.state.freeze_seq:  # one delivered out of order changes nothing
            self.state.frozen = record.args.get("enabled") is True
            self.state.freeze_seq = record.seq
            self._save()
        detail = "destructive commands frozen" if self.state.frozen else "not frozen"
        return Outcome(Stage.DONE, detail, {"frozen": self.state.frozen})

    def _apply_profile(self, record: CommandRecord) -> Outcome:
        """Apply the latest verified desired state, which the command may pin by version/hash."""
        desired = self._desired
        if desired is None:
            raise CommandFailedError("no desired state has been received yet")
        have = int(desired["version"])
        wanted = record.args.get("version")
        if isinstance(wanted, int) and have < wanted:
            raise CommandFailedError(
                f"desired state version {wanted} has not arrived yet (have {have})",
                {"profile_version": have},
            )
        sha = record.args.get("sha256")
        profile = desired.get("profile")
        document_sha = profile.get("sha256") if isinstance(profile, dict) else None
        if isinstance(sha, str) and sha not in (desired.get("sha256"), document_sha):
            raise CommandFailedError("the desired state on this device has a different sha256")
        return self._apply_desired(desired)

    def _apply_desired(self, desired: Mapping[str, Any]) -> Outcome:
        """Enforce a desired state's kiosk document and check what the device then holds."""
        # Imported here: the profile library is large and needed only when a profile arrives.
        from device_profiles import KIOSK_FORMAT, kiosk_document_sha256

        document = desired["profile"]
        version = int(desired["version"])
        try:
            if not isinstance(document, Mapping) or document.get("format") != KIOSK_FORMAT:
                raise CommandFailedError(f"the profile is not a {KIOSK_FORMAT} document")
            expected = kiosk_document_sha256(document)
            if document.get("sha256") != expected:
                raise CommandFailedError("the profile document's sha256 does not match its content")
            applied = self.adapter.apply_profile(document, version)
            applied_sha = kiosk_document_sha256(applied)
            if applied_sha != expected or applied.get("sha256") != expected:
                raise CommandFailedError("the device holds a different document after applying it")
        except (CommandFailedError, KioskError, OSError) as exc:
            detail = exc.detail if isinstance(exc, CommandFailedError) else str(exc)
            logger.error("%s: profile version %d not applied: %s", self.device_id, version, detail)
            self.state.profile_error = detail
            self._save()
            self.publish_report()
            raise CommandFailedError(detail, {"profile_version": version}) from None
        self.state.applied_version = version
        self.state.applied_sha256 = expected
        self.state.profile_error = None
        self._save()
        logger.info(
            "%s: applied profile %s version %d (%s)",
            self.device_id,
            document.get("profile_id"),
            version,
            expected,
        )
        self.publish_report()
        return Outcome(
            Stage.DONE,
            f"profile {document.get('profile_id')} version {version} applied",
            {"profile_version": version, "profile_sha256": expected},
        )

    # --- desired state ------------------------------------------------------------------------

    def _on_desired(self, raw: bytes, settle: Settle) -> None:
        """Verify a desired state and apply it if it is newer than what the device holds."""
        if not raw:
            settle()  # a cleared retained message
            return
        try:
            body = open_envelope(
                raw,
                self.server_keys,
                device_id=self.device_id,
                now=self._now(),
                max_bytes=MAX_DESIRED_BYTES,
            )
            desired = Desired.from_body(body)
        except (EnvelopeError, MessageError) as exc:
            logger.warning("%s: refused desired state: %s", self.device_id, exc)
            settle()
            return
        current = self._desired
        if current is not None and desired.version < int(current["version"]):
            # An old retained or replayed document must not roll the device back.
            logger.info(
                "%s: ignoring desired version %d (have %s)",
                self.device_id,
                desired.version,
                current["version"],
            )
            settle()
            return
        if (
            desired.version == self.state.applied_version
            and current is not None
            and current.get("sha256") == desired.sha256
        ):
            settle()  # already applied: the retained copy comes with every reconnect
            return
        self._pin_keys(desired.trusted_keys)
        self._desired = desired.to_body()
        self.store.save_desired(self._desired)
        settle()
        try:
            self._apply_desired(self._desired)
        except CommandFailedError:
            pass  # logged and reported; an apply_profile command can retry

    def _pin_keys(self, trusted: Mapping[str, str]) -> None:
        """Add keys a verified desired state vouches for (server key rotation)."""
        new = {kid: text for kid, text in trusted.items() if kid not in self.server_keys}
        if not new:
            return
        try:
            keys = parse_server_keys(new, "desired.trusted_keys")
        except ConfigError as exc:
            logger.warning("%s: not pinning rotated keys: %s", self.device_id, exc)
            return
        self.server_keys.update(keys)
        save_server_keys(self.config, self.server_keys)
        logger.info("%s: pinned server key(s) %s", self.device_id, ", ".join(sorted(keys)))

    # --- factory reset (P-LEAVE-1) ------------------------------------------------------------

    def _factory_reset(self, record: CommandRecord) -> None:
        """Confirm with the server over HTTPS, then erase and forget; otherwise erase nothing."""
        try:
            self._confirm_reset(record.cmd_id)
        except CommandFailedError as exc:
            logger.warning(
                "%s: factory reset %s not confirmed: %s", self.device_id, record.cmd_id, exc.detail
            )
            self._finish(record, Outcome(Stage.FAILED, exc.detail, {"erased": False, **exc.result}))
            return
        record.confirmed = True
        self._save()
        self._erase_and_forget(record)

    def _confirm_reset(self, cmd_id: str) -> None:
        """Raise `ResetNotConfirmedError` unless the server's signed answer confirms `cmd_id`."""
        if self.server is None:
            raise ResetNotConfirmedError("no server to confirm the factory reset with")
        now = self._now()
        request = sign(
            {
                "v": 1,
                "kid": self.identity.kid,
                "device_id": self.device_id,
                "cmd_id": cmd_id,
                "iat": now,
                "exp": now + RESET_REQUEST_TTL,
            },
            self.identity.private_key,
        )
        try:
            raw = self.server.confirm_reset(request)
        except ServerUnreachableError as exc:
            raise ResetNotConfirmedError(f"the server could not confirm the reset: {exc}") from None
        try:
            answer = open_envelope(raw, self.server_keys, device_id=self.device_id, now=self._now())
        except EnvelopeError as exc:
            raise ResetNotConfirmedError(
                f"the server's confirmation does not verify ({exc.reason})"
            ) from None
        expected = {"v", "kid", "device_id", "cmd_id", "confirm", "iat", "exp"}
        if set(answer) != expected:
            raise ResetNotConfirmedError("the server's confirmation has unexpected fields")
        if answer["cmd_id"] != cmd_id:
            raise ResetNotConfirmedError("the server's confirmation is for another command")
        if answer["confirm"] is not True:
            raise ResetNotConfirmedError("the server declined the factory reset")

    def _erase_and_forget(self, record: CommandRecord) -> None:
        """Erase through the adapter, ack `done`, then delete the enrolment."""
        try:
            self.adapter.factory_reset()
        except (KioskError, OSError) as exc:
            logger.error("%s: factory reset failed while erasing: %s", self.device_id, exc)
            self._finish(record, Outcome(Stage.FAILED, f"erasing failed: {exc}", {"erased": False}))
            return
        record.stage = Stage.DONE
        record.detail = "device erased; enrolment forgotten"
        record.result = {"erased": True}
        self._save()
        payload = self._signed_ack(record.cmd_id, AckState.DONE, record.detail, record.result)
        if not self.publisher.publish_and_wait(
            ack_topic(self.device_id), payload, timeout=ACK_DELIVERY_TIMEOUT
        ):
            logger.warning(
                "%s: the factory reset ack was not confirmed by the broker", self.device_id
            )
        self.forget()

    def forget(self) -> None:
        """Delete the key, configuration, pinned keys and state: the device must enrol again."""
        base = self.config.data_dir
        for path in enrolment_files(base):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.error("%s: could not delete %s: %s", self.device_id, path, exc)
        tls_dir = base / TLS_DIR
        if tls_dir.is_dir() and not any(tls_dir.iterdir()):
            shutil.rmtree(tls_dir, ignore_errors=True)
        self.store.clear()
        self.forgotten = True
        logger.warning(
            "%s: factory reset complete; this device must be enrolled again", self.device_id
        )
        if self.on_forgotten is not None:
            self.on_forgotten()
