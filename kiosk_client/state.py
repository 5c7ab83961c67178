"""The kiosk's local state: a command ledger that survives restarts, and the desired state.

Every verified command is written here (atomically) before the broker's PUBACK and before any
effect, and its stage is written again before and after the handler runs:

    received ──▶ executing ──▶ done | failed        (rejected: refused after verification)

On start, `received` commands are run (they never started), while `executing` ones are
reported `failed` and not repeated: the process died mid-way, and running a command twice is
worse than asking the server to send it again. The ledger is also the seen-set: a cmd_id in it
is a duplicate, answered by re-sending its last ack instead of running it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kiosk_client.errors import ConfigError
from kiosk_client.files import atomic_write_json, read_json, remove_quietly

__all__ = [
    "FINAL_STAGES",
    "AgentState",
    "CommandRecord",
    "Stage",
    "StateStore",
]

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# Finished commands are kept this long after their expiry: a late duplicate is then still
# recognised and re-acked with its real outcome instead of a misleading `expired` rejection.
KEEP_AFTER_EXPIRY = 7 * 24 * 3600
MAX_RECORDS = 1024


class Stage(StrEnum):
    """How far the kiosk got with a command."""

    RECEIVED = "received"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


FINAL_STAGES = frozenset({Stage.DONE, Stage.FAILED, Stage.REJECTED})


@dataclass
class CommandRecord:
    """One command as the kiosk persisted it."""

    cmd_id: str
    seq: int
    type: str
    args: dict[str, Any]
    exp: int
    stage: Stage
    detail: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    # A factory reset the server confirmed over HTTPS: a restart finishes it instead of failing.
    confirmed: bool = False

    @property
    def final(self) -> bool:
        """Whether the command reached an outcome."""
        return self.stage in FINAL_STAGES

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["stage"] = self.stage.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommandRecord:
        """Rebuild from `to_json` output; `ValueError`/`KeyError`/`TypeError` if it is not one."""
        record = cls(
            cmd_id=str(data["cmd_id"]),
            seq=int(data["seq"]),
            type=str(data["type"]),
            args=dict(data["args"]),
            exp=int(data["exp"]),
            stage=Stage(data["stage"]),
            detail=str(data.get("detail", "")),
            result=dict(data.get("result", {})),
            confirmed=bool(data.get("confirmed", False)),
        )
        return record


@dataclass
class AgentState:
    """The ledger plus what the kiosk applied."""

    last_seq: int = 0
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    applied_version: int | None = None
    applied_sha256: str | None = None
    profile_error: str | None = None
    # The school's freeze: while set, destructive commands are refused. `freeze_seq` is the
    # sequence number of the freeze command that set it, so an older one cannot undo a newer.
    frozen: bool = False
    freeze_seq: int = 0

    def prune(self, now: int, *, max_records: int = MAX_RECORDS) -> None:
        """Forget finished commands long expired, then the oldest finished ones beyond the cap."""
        for cmd_id in [
            cmd_id
            for cmd_id, record in self.commands.items()
            if record.final and record.exp + KEEP_AFTER_EXPIRY < now
        ]:
            del self.commands[cmd_id]
        excess = len(self.commands) - max_records
        if excess > 0:
            finished = sorted(
                (r for r in self.commands.values() if r.final), key=lambda r: (r.seq, r.exp)
            )
            for record in finished[:excess]:
                del self.commands[record.cmd_id]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "version": STATE_VERSION,
            "last_seq": self.last_seq,
            "commands": [record.to_json() for record in self.commands.values()],
            "applied_version": self.applied_version,
            "applied_sha256": self.applied_sha256,
            "profile_error": self.profile_error,
            "frozen": self.frozen,
            "freeze_seq": self.freeze_seq,
        }

    @classmethod
    def from_json(cls, data: Any) -> AgentState:
        """Rebuild from `to_json` output."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} kiosk state")
        records = [CommandRecord.from_json(item) for item in data["commands"]]
        return cls(
            last_seq=int(data["last_seq"]),
            commands={record.cmd_id: record for record in records},
            applied_version=data.get("applied_version"),
            applied_sha256=data.get("applied_sha256"),
            profile_error=data.get("profile_error"),
            frozen=bool(data.get("frozen", False)),
            freeze_seq=int(data.get("freeze_seq", 0)),
        )


class StateStore:
    """Loads and saves `AgentState` and the desired state, each in one atomic write."""

    def __init__(self, path: Path, desired_path: Path, *, fsync: bool = True) -> None:
        """Keep the paths; nothing is read until `load()`."""
        self.path = path
        self.desired_path = desired_path
        self.fsync = fsync

    def load(self) -> AgentState:
        """The saved state, or a fresh one; `ConfigError` if the file is corrupt."""
        if not self.path.exists():
            return AgentState()
        try:
            return AgentState.from_json(read_json(self.path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Refuse to guess: a lost ledger could run a command twice.
            raise ConfigError(
                f"kiosk state {self.path} is unreadable ({exc}); move it aside to start afresh, "
                "knowing that commands already run may then be run again"
            ) from exc

    def save(self, state: AgentState) -> None:
        """Write the state atomically."""
        atomic_write_json(self.path, state.to_json(), fsync=self.fsync)

    def load_desired(self) -> dict[str, Any] | None:
        """The last verified desired-state body, or None (also when it cannot be read)."""
        if not self.desired_path.exists():
            return None
        try:
            data = read_json(self.desired_path)
        except (OSError, ValueError) as exc:
            # The retained desired state comes again on the next connect; nothing is lost.
            logger.warning("ignoring unreadable desired state %s: %s", self.desired_path, exc)
            return None
        return data if isinstance(data, dict) else None

    def save_desired(self, body: Mapping[str, Any]) -> None:
        """Write the desired-state body atomically."""
        atomic_write_json(self.desired_path, dict(body), fsync=self.fsync)

    def clear(self) -> None:
        """Delete both files (factory reset)."""
        remove_quietly(self.path)
        remove_quietly(self.desired_path)
