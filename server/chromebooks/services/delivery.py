"""Commands through Google: queued commands for linked Chromebooks sent, polled and recorded.

The same `Command` rows and states as the kiosk channel. Each command gets one `GoogleDelivery`
row before anything is sent, so a command is issued to Google at most once; a failure to reach
Google leaves the command queued with the reason, and it is tried again with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from mqtt.messages import AckState
from server.chromebooks.models import GoogleDelivery, GoogleDevice, GoogleLink, Phase
from server.chromebooks.services.google import Clients, GoogleApi, GoogleError, call
from server.chromebooks.services.link import clients_for
from server.chromebooks.services.policies import set_disabled_message
from server.chromebooks.services.sync import apply_facts
from server.commands import services as commands
from server.commands.models import Command, CommandStatus
from server.crypto import SecretBox
from server.enrolment.models import DeviceIdentity
from server.schools.models import School
from server.schools.services.clock import plural, when

log = logging.getLogger(__name__)

BATCH = 50
LEASE = timedelta(minutes=2)  # longer than any one call to Google can take
POLL_FIRST = timedelta(seconds=5)  # a Chromebook that is on answers within seconds
POLL_EVERY = timedelta(seconds=15)
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MOST = timedelta(minutes=30)
LINK_PROBLEM_WAIT = timedelta(minutes=10)

DISABLE = "CHANGE_CHROME_OS_DEVICE_STATUS_ACTION_DISABLE"
REENABLE = "CHANGE_CHROME_OS_DEVICE_STATUS_ACTION_REENABLE"
# Google's commands that must never be sent twice, even when a lost answer leaves it unclear.
NEVER_TWICE = frozenset({"REMOTE_POWERWASH"})
GOOGLE_STATES = {
    "PENDING": "waiting for the Chromebook to check in",
    "SENT_TO_CLIENT": "sent to the Chromebook",
    "ACKED_BY_CLIENT": "the Chromebook received it",
    "EXECUTED_BY_CLIENT": "the Chromebook carried it out",
    "EXPIRED": "the Chromebook did not carry it out in time",
    "CANCELLED": "cancelled in the Google Admin console",
}


@dataclass(frozen=True)
class Plan:
    """What a Trolley command becomes in Google's API."""

    kind: str  # issue | status | get | unsupported
    google: str = ""


def plan(command: Command) -> Plan:
    if command.type == "wipe_photos":
        # Removes every user's local data: pupils' photos go with it (P-PHOTO-1).
        return Plan("issue", "WIPE_USERS")
    if command.type == "factory_reset":
        return Plan("issue", "REMOTE_POWERWASH")
    if command.type == "lost_mode":
        # A disabled Chromebook shows only the school's return message (P-LOSS-3).
        return Plan("status", DISABLE if command.args.get("enabled") else REENABLE)
    if command.type in ("report_inventory", "ping"):
        return Plan("get")
    return Plan("unsupported")


def backoff(attempts: int, hint: timedelta | None = None) -> timedelta:
    """30 s, 1 min, 2 min … up to 30 min; never sooner than Google asked."""
    wait: timedelta = min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MOST)
    return max(wait, hint or timedelta(0))


def _words(state: str, result: dict[str, Any]) -> str:
    text = f"Google: {GOOGLE_STATES.get(state, state)}"
    outcome = result.get("result")
    if outcome:
        text += f" ({outcome})"
    if result.get("errorMessage"):
        text += f": {result['errorMessage']}"
    return text


@dataclass
class Run:
    """One pass of the delivery job: the clients made for each school, and what happened."""

    session: Session
    box: SecretBox
    google: GoogleApi
    now: datetime
    sent: int = 0
    finished: int = 0
    waiting: int = 0

    def __post_init__(self) -> None:
        self._clients: dict[int, Clients] = {}

    def close(self) -> None:
        for clients in self._clients.values():
            clients.close()

    def clients(self, link: GoogleLink) -> Clients:
        if link.school_id not in self._clients:
            self._clients[link.school_id] = clients_for(self.box, self.google, link)
        return self._clients[link.school_id]

    def answer(
        self, delivery: GoogleDelivery, state: AckState, detail: str, result: dict[str, Any]
    ) -> None:
        """Record the device's answer on the command, as a kiosk's ack would be."""
        commands.record_answer(self.session, delivery.command, state, detail, result, now=self.now)
        if state is not AckState.RECEIVED:
            delivery.phase = Phase.FINISHED
            self.finished += 1

    def wait(self, delivery: GoogleDelivery, exc: GoogleError) -> None:
        """Google could not be reached or refused for now: keep the command, say why, try later."""
        delay = backoff(delivery.attempts, exc.retry_after)
        if not exc.retryable:
            delay = max(delay, LINK_PROBLEM_WAIT)  # a link problem a person must fix
        delivery.next_at = self.now + delay
        delivery.last_error = exc.message[:500]
        school = self.session.get_one(School, delivery.command.school_id)
        retry = when(delivery.next_at, school)
        delivery.command.detail = f"Waiting for Google: {exc.message} Trying again at {retry}."[
            :500
        ]
        self.waiting += 1


def _claim(session: Session, now: datetime) -> list[int]:
    """Queued commands for linked Chromebooks, each marked in flight before anything is sent."""
    due = or_(
        GoogleDelivery.id.is_(None),
        and_(
            GoogleDelivery.phase.in_([Phase.WAITING, Phase.IN_FLIGHT]),
            GoogleDelivery.next_at <= now,
        ),
    )
    # A device with the kiosk client is the kiosk channel's: never sent the same command twice.
    kiosk = exists().where(
        DeviceIdentity.device_id == Command.device_id, DeviceIdentity.revoked_at.is_(None)
    )
    query = (
        select(Command, GoogleDelivery)
        .join(GoogleDevice, GoogleDevice.device_id == Command.device_id)
        .join(GoogleLink, GoogleLink.school_id == Command.school_id)
        .outerjoin(GoogleDelivery, GoogleDelivery.command_id == Command.id)
        .where(Command.status == CommandStatus.QUEUED, Command.expires_at > now, due, ~kiosk)
        .order_by(Command.id)
        .limit(BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Command)
    claimed = []
    for command, delivery in session.execute(query).all():
        if delivery is None:
            delivery = GoogleDelivery(
                command_id=command.id,
                school_id=command.school_id,
                phase=Phase.WAITING,
                attempts=0,
                next_at=now,
                last_error="",
            )
            session.add(delivery)
        elif delivery.phase is Phase.IN_FLIGHT and plan(command).google in NEVER_TWICE:
            # A worker stopped mid-call: Google may have the reset already. Never send it again.
            commands.record_answer(
                session,
                command,
                AckState.FAILED,
                "Trolley lost track of this factory reset while sending it to Google. Check the "
                "Chromebook in the Google Admin console before asking again.",
                {"google": {"state": "UNKNOWN"}},
                now=now,
            )
            delivery.phase = Phase.FINISHED
            continue
        delivery.phase = Phase.IN_FLIGHT
        delivery.attempts += 1
        delivery.next_at = now + LEASE
        delivery.updated_at = now
        session.flush()
        claimed.append(delivery.id)
    session.commit()
    return claimed


def _device_and_link(session: Session, command: Command) -> tuple[GoogleDevice, GoogleLink]:
    row = session.scalar(select(GoogleDevice).where(GoogleDevice.device_id == command.device_id))
    link = session.scalar(select(GoogleLink).where(GoogleLink.school_id == command.school_id))
    assert row is not None and link is not None
    return row, link


def _issue(run: Run, delivery: GoogleDelivery, row: GoogleDevice, link: GoogleLink) -> None:
    google_type = plan(delivery.command).google
    try:
        answer = call(
            run.clients(link)
            .directory.customer()
            .devices()
            .chromeos()
            .issueCommand(
                customerId=link.customer_id,
                deviceId=row.google_id,
                body={"commandType": google_type},
            )
        )
    except GoogleError as exc:
        if exc.retryable and exc.maybe_delivered and google_type in NEVER_TWICE:
            run.answer(
                delivery,
                AckState.FAILED,
                "Google did not answer, so Trolley cannot tell whether it received the reset. "
                "Check the Chromebook in the Google Admin console before asking again.",
                {"google": {"error": exc.google_words}},
            )
            return
        raise
    delivery.google_command_id = str(answer.get("commandId") or "")[:32] or None
    delivery.phase = Phase.POLLING
    delivery.next_at = run.now + POLL_FIRST
    commands.mark_sent(run.session, [delivery.command_id], now=run.now)
    delivery.command.detail = f"Sent through Google ({google_type}); waiting for the Chromebook."
    run.sent += 1


def _change_status(run: Run, delivery: GoogleDelivery, row: GoogleDevice, link: GoogleLink) -> None:
    command = delivery.command
    action = plan(command).google
    clients = run.clients(link)
    notes = []
    if action == DISABLE:
        notes.append(
            set_disabled_message(
                run.session, clients, link, row, str(command.args.get("message") or "")
            )
        )
    answer = call(
        clients.directory.customer()
        .devices()
        .chromeos()
        .batchChangeStatus(
            customerId=link.customer_id,
            body={"changeChromeOsDeviceStatusAction": action, "deviceIds": [row.google_id]},
        )
    )
    results = answer.get("changeChromeOsDeviceStatusResults") or []
    mine: dict[str, Any] = next((r for r in results if r.get("deviceId") == row.google_id), {})
    wanted = "DISABLED" if action == DISABLE else "ACTIVE"
    commands.mark_sent(run.session, [command.id], now=run.now)
    error = mine.get("error") if mine else {"message": "Google did not report on this device."}
    if error:
        # Already in the wanted state (a repeat after a lost answer) is what was asked for.
        current = _read_device(run, row, link)
        if current.get("status") != wanted:
            run.answer(
                delivery,
                AckState.FAILED,
                f"Google refused: {error.get('message', 'no reason given')}",
                {"google": {"error": error}},
            )
            return
    row.status = wanted
    words = "disabled in Google" if wanted == "DISABLED" else "enabled again in Google"
    detail = "; ".join([f"Chromebook {words}", *[n for n in notes if n]])
    run.answer(delivery, AckState.DONE, detail, {"google": {"status": wanted}})


def _read_device(run: Run, row: GoogleDevice, link: GoogleLink) -> dict[str, Any]:
    resource = call(
        run.clients(link)
        .directory.chromeosdevices()
        .get(customerId=link.customer_id, deviceId=row.google_id, projection="FULL")
    )
    apply_facts(run.session, row, resource, link, run.now)
    return resource


def _inventory(run: Run, delivery: GoogleDelivery, row: GoogleDevice, link: GoogleLink) -> None:
    resource = _read_device(run, row, link)
    commands.mark_sent(run.session, [delivery.command_id], now=run.now)
    facts = {
        "os_version": row.os_version,
        "model": row.model,
        "status": row.status,
        "org_unit": row.org_unit_path,
        "last_sync": resource.get("lastSync"),
        "recent_users": row.recent_users,
    }
    run.answer(
        delivery, AckState.DONE, f"Google: last synced {resource.get('lastSync', 'never')}", facts
    )


def _unsupported(run: Run, delivery: GoogleDelivery, row: GoogleDevice, link: GoogleLink) -> None:
    run.answer(
        delivery,
        AckState.FAILED,
        "Google cannot lock a Chromebook on its own; use lost mode, which disables it.",
        {},
    )


SENDERS: dict[str, Callable[[Run, GoogleDelivery, GoogleDevice, GoogleLink], None]] = {
    "issue": _issue,
    "status": _change_status,
    "get": _inventory,
    "unsupported": _unsupported,
}


def _send(run: Run, delivery_id: int) -> None:
    delivery = run.session.get(GoogleDelivery, delivery_id)
    assert delivery is not None
    row, link = _device_and_link(run.session, delivery.command)
    try:
        SENDERS[plan(delivery.command).kind](run, delivery, row, link)
    except GoogleError as exc:
        if exc.retryable or exc.http_status is None:
            delivery.phase = Phase.WAITING
            run.wait(delivery, exc)
        else:
            run.answer(
                delivery, AckState.FAILED, exc.message, {"google": {"error": exc.google_words}}
            )
    delivery.updated_at = run.now
    run.session.commit()


def _poll(run: Run, delivery: GoogleDelivery) -> None:
    row, link = _device_and_link(run.session, delivery.command)
    try:
        answer = call(
            run.clients(link)
            .directory.customer()
            .devices()
            .chromeos()
            .commands()
            .get(
                customerId=link.customer_id,
                deviceId=row.google_id,
                commandId=delivery.google_command_id,
            )
        )
    except GoogleError as exc:
        if exc.retryable or exc.http_status is None:
            run.wait(delivery, exc)
        else:
            run.answer(
                delivery, AckState.FAILED, exc.message, {"google": {"error": exc.google_words}}
            )
        return
    state = str(answer.get("state") or "")
    result = answer.get("commandResult") or {}
    delivery.google_state = state[:32]
    delivery.last_error = ""
    delivery.next_at = run.now + POLL_EVERY
    words = _words(state, result)
    evidence: dict[str, Any] = {"google": {k: v for k, v in answer.items() if k != "payload"}}
    if state == "ACKED_BY_CLIENT":
        run.answer(delivery, AckState.RECEIVED, words, evidence)
    elif state == "EXECUTED_BY_CLIENT" and result.get("result") == "SUCCESS":
        if delivery.command.type == "wipe_photos":
            # Every user's local data is gone, photos with it; Google does not count them.
            evidence.update({"remaining": 0, "users_removed": True})
        run.answer(delivery, AckState.DONE, words, evidence)
    elif state in ("EXECUTED_BY_CLIENT", "EXPIRED", "CANCELLED"):
        run.answer(delivery, AckState.FAILED, words, evidence)
    else:
        delivery.command.detail = words[:500]


def _due_polls(session: Session, now: datetime) -> list[GoogleDelivery]:
    return list(
        session.scalars(
            select(GoogleDelivery)
            .where(GoogleDelivery.phase == Phase.POLLING, GoogleDelivery.next_at <= now)
            .order_by(GoogleDelivery.next_at)
            .limit(BATCH)
        )
    )


@dataclass(frozen=True)
class Delivered:
    sent: int
    finished: int
    waiting: int

    @property
    def words(self) -> str:
        return (
            f"{plural(self.sent, 'command')} sent, {self.finished} finished, "
            f"{self.waiting} waiting for Google"
        )


def deliver(session: Session, box: SecretBox, google: GoogleApi, *, now: datetime) -> Delivered:
    """Send queued commands for linked Chromebooks through Google and read back their progress."""
    run = Run(session, box, google, now)
    try:
        for delivery_id in _claim(session, now):
            _send(run, delivery_id)
        for delivery in _due_polls(session, now):
            if delivery.command.status not in (CommandStatus.SENT, CommandStatus.RECEIVED):
                delivery.phase = Phase.FINISHED  # expired or cancelled meanwhile
            else:
                _poll(run, delivery)
            delivery.updated_at = now
            session.commit()
    finally:
        run.close()
    return Delivered(run.sent, run.finished, run.waiting)
