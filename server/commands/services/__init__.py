"""Commands: asked for by staff, budgeted and approved where destructive, stopped by a freeze,
published by the worker, acked by devices.

Callers use this package's names; the modules behind it are catalogue (what commands exist),
issuing, approving, budget (the fleet-disruption budget), freezing, outbox (the worker's side)
and acks (what devices answer).
"""

from __future__ import annotations

from server.commands.services.acks import (
    is_finished,
    record_ack,
    record_acks,
    record_answer,
    record_presence,
    record_report,
    record_reports,
)
from server.commands.services.approving import approve
from server.commands.services.budget import (
    BUDGETS,
    Budget,
    Decision,
    Escalation,
    Limit,
    Verdict,
)
from server.commands.services.catalogue import (
    DESTRUCTIVE_TYPES,
    LABELS,
    OUTBOX_CHANNEL,
    STAFF_SENDABLE,
    TTL,
    check_args,
    label,
)
from server.commands.services.freezing import (
    current_freeze,
    freeze,
    freeze_history,
    is_frozen,
    lift_freeze,
)
from server.commands.services.issuing import (
    Approval,
    can_reach,
    cancel,
    commands_by_id,
    get_command,
    issue,
    list_commands,
    pending_approvals,
)
from server.commands.services.outbox import (
    RESEND_AFTER,
    Outgoing,
    claim_outgoing,
    expire,
    has_outgoing,
    mark_published,
    mark_sent,
    resend_unfinished,
    unacknowledged,
)
from server.commands.services.waiting import approvals_for, waiting_for

__all__ = [
    "BUDGETS",
    "DESTRUCTIVE_TYPES",
    "LABELS",
    "OUTBOX_CHANNEL",
    "RESEND_AFTER",
    "STAFF_SENDABLE",
    "TTL",
    "Approval",
    "Budget",
    "Decision",
    "Escalation",
    "Limit",
    "Outgoing",
    "Verdict",
    "approvals_for",
    "approve",
    "can_reach",
    "cancel",
    "check_args",
    "claim_outgoing",
    "commands_by_id",
    "current_freeze",
    "expire",
    "freeze",
    "freeze_history",
    "get_command",
    "has_outgoing",
    "is_finished",
    "is_frozen",
    "issue",
    "label",
    "lift_freeze",
    "list_commands",
    "mark_published",
    "mark_sent",
    "pending_approvals",
    "record_ack",
    "record_acks",
    "record_answer",
    "record_presence",
    "record_report",
    "record_reports",
    "resend_unfinished",
    "unacknowledged",
    "waiting_for",
]
