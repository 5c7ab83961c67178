"""Writing to and verifying the hash-chained activity trail."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, SessionTransaction

from server.activity.models import ActivityEntry
from server.auth.models import User
from server.db import utcnow

GENESIS = "0" * 64


def _canonical(entry: ActivityEntry) -> bytes:
    fields = {
        "seq": entry.seq,
        "school_id": entry.school_id,
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor_id": entry.actor_id,
        "actor_label": entry.actor_label,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(entry: ActivityEntry) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


# No autoflush: whatever is pending is written by the one flush below, with the entry.
_LAST = (
    select(ActivityEntry.seq, ActivityEntry.hash)
    .order_by(ActivityEntry.seq.desc())
    .limit(1)
    .execution_options(autoflush=False)
)


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    school_id: int | None,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, Any] | None = None,
    actor_label: str | None = None,
    at: datetime | None = None,
) -> ActivityEntry:
    """Append one entry (the caller commits, so it lands with the change it describes)."""
    if session.get_bind().dialect.name == "postgresql":
        # One chain per schema: serialise appenders so two entries never claim the same
        # predecessor, without blocking other Trolley databases that share the server.
        session.execute(text("SELECT pg_advisory_xact_lock(7301, hashtext(current_schema()))"))
    last = session.execute(_LAST).first()
    entry = ActivityEntry(
        seq=(last.seq + 1) if last else 1,
        school_id=school_id,
        at=at or utcnow(),
        actor_id=actor.id if actor else None,
        actor_label=actor_label or (actor.email if actor else "system"),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        prev_hash=last.hash if last else GENESIS,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


_AT_COMMIT = "activity.at_commit"


def record_at_commit(
    session: Session,
    *,
    actor: User | None,
    action: str,
    school_id: int | None,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one entry as the transaction commits (dropped if it, or its savepoint, rolls back)."""
    # For busy paths: the trail's chain lock is then held for the commit alone, not for the
    # rest of the transaction; the entry still lands with the change it describes.
    write = partial(
        record,
        actor=actor,
        action=action,
        school_id=school_id,
        target_type=target_type,
        target_id=target_id,
        details=details,
        at=at or utcnow(),
    )
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        write(session)
        return
    session.info.setdefault(_AT_COMMIT, []).append((transaction, write))


@event.listens_for(Session, "before_commit")
def _append_at_commit(session: Session) -> None:
    pending = session.info.pop(_AT_COMMIT, None)
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.flush()  # everything else first: the chain lock is taken last
    for _transaction, write in pending:
        write(session)


@event.listens_for(Session, "after_transaction_end")
def _drop_at_commit(session: Session, ended: SessionTransaction) -> None:
    # A commit has written them already; a rollback (or a savepoint's) takes its own with it.
    pending = session.info.get(_AT_COMMIT)
    if not pending:
        return

    def inside(transaction: SessionTransaction | None) -> bool:
        while transaction is not None:
            if transaction is ended:
                return True
            transaction = transaction.parent
        return False

    session.info[_AT_COMMIT] = [(t, f) for t, f in pending if not inside(t)]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    reason: str | None = None


def verify_chain(session: Session, batch: int = 2000) -> VerifyResult:
    """Walk the trail in order and report the first entry that was altered, removed or moved."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    result = session.execute(
        select(ActivityEntry).order_by(ActivityEntry.seq).execution_options(yield_per=batch)
    )
    try:  # close the server-side cursor even when we stop at the first bad entry
        for entry in result.scalars():
            reason = None
            if entry.seq != expected_seq:
                reason = f"entry {expected_seq} is missing (next is {entry.seq})"
            elif entry.prev_hash != prev_hash:
                reason = "its link to the previous entry is broken"
            elif entry_hash(entry) != entry.hash:
                reason = "its contents were changed after it was written"
            if reason:
                return VerifyResult(False, checked, entry.seq, entry.id, reason)
            prev_hash, expected_seq, checked = entry.hash, entry.seq + 1, checked + 1
    finally:
        result.close()
    return VerifyResult(True, checked)


# Filtering changes are readable only by roles with the filtering right (P-PROFILE-4).
FILTERING_ACTIONS = ("profile.", "device_group.", "filter_exception.")


def recent(
    session: Session,
    school_id: int,
    *,
    limit: int = 50,
    before_seq: int | None = None,
    include_filtering: bool = False,
) -> Sequence[ActivityEntry]:
    query = select(ActivityEntry).where(ActivityEntry.school_id == school_id)
    if not include_filtering:
        for prefix in FILTERING_ACTIONS:
            query = query.where(~ActivityEntry.action.startswith(prefix))
    if before_seq is not None:
        query = query.where(ActivityEntry.seq < before_seq)
    return session.scalars(query.order_by(ActivityEntry.seq.desc()).limit(limit)).all()


def count(session: Session, school_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ActivityEntry)
            .where(ActivityEntry.school_id == school_id)
        )
        or 0
    )


def actor_names(session: Session, entries: Sequence[ActivityEntry]) -> dict[int, str]:
    """Who did each thing, and whom it was done to, by name (the trail itself keeps the
    address they signed in with)."""
    ids = {e.actor_id for e in entries if e.actor_id is not None} | {
        int(e.target_id)
        for e in entries
        if e.target_type == "user" and e.target_id and e.target_id.isdigit()
    }
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()
    return {user_id: name for user_id, name in rows}


def action_label(action: str) -> str:
    """'filter_exception.approved' as staff read it: 'Filter exception approved'."""
    return action.replace(".", " ").replace("_", " ").capitalize()
