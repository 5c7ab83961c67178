"""Lost and stolen devices: report, tell the headteacher at once, lock, assess, decide, close."""

# What the school must be able to show, and where each part lives:
# P-LOSS-1: a report tells the headteacher (and the data protection officer, if the school has
# one) in the app and by e-mail in the same transaction as the report itself (reporting, telling).
# P-LOSS-2: each loss gets a breach assessment prefilled from what Trolley knows, and the
# regulator's 72 hours run from awareness, with reminders at 24 and 48 hours and an overdue
# state; a case closes only with a decision and its written justification, and stays in the
# breach log whether or not it was reported, UK GDPR Art. 33(5) (assessment, breach_clock,
# closing).
# P-LOSS-3: lost mode with the school's return message is queued at once; a factory reset is
# available, under the command engine's two-person rule (remote).
# P-LOSS-1, P-TROLLEY-2: a device not back by next morning, or missing at an audit's close, is
# offered to the headteacher as a possible loss, reported in one action (possible).

from server.losses.pages import (
    CLOCK,
    LOST_MODE_LABELS,
    NOT_ENROLLED,
    Case,
    Clock,
    Facts,
    LogEntry,
    LostMode,
    Step,
    TermLog,
    duration,
)
from server.losses.services.alerts import ONLINE_ALERT_QUIET, device_scanned, device_seen_online
from server.losses.services.assessment import assess, change_awareness, decide, record_ico_report
from server.losses.services.breach_clock import ESCALATIONS, clock, clock_stopped_at, escalate
from server.losses.services.closing import close
from server.losses.services.governors import term_log
from server.losses.services.incident import incident_record
from server.losses.services.possible import (
    Offer,
    dismiss_possible_loss,
    offer_possible_losses,
    open_offer_count,
    possible_losses,
    report_possible_loss,
    settle_possible_losses,
)
from server.losses.services.reading import (
    case,
    deliveries,
    get_loss,
    known_facts,
    list_losses,
    notices,
    open_losses,
    suggested_personal_data,
)
from server.losses.services.remote import (
    lost_mode,
    request_factory_reset,
    retry_lost_mode,
    wipe_photos,
)
from server.losses.services.reporting import open_loss_for, report_loss
from server.losses.services.telling import (
    EMAIL_RE,
    Told,
    dpo_email,
    get_settings,
    tell_headteachers,
    update_settings,
)

__all__ = [
    "CLOCK",
    "EMAIL_RE",
    "ESCALATIONS",
    "LOST_MODE_LABELS",
    "NOT_ENROLLED",
    "ONLINE_ALERT_QUIET",
    "Case",
    "Clock",
    "Facts",
    "LogEntry",
    "LostMode",
    "Offer",
    "Step",
    "TermLog",
    "Told",
    "assess",
    "case",
    "change_awareness",
    "clock",
    "clock_stopped_at",
    "close",
    "decide",
    "deliveries",
    "device_scanned",
    "device_seen_online",
    "dismiss_possible_loss",
    "dpo_email",
    "duration",
    "escalate",
    "get_loss",
    "get_settings",
    "incident_record",
    "known_facts",
    "list_losses",
    "lost_mode",
    "notices",
    "offer_possible_losses",
    "open_loss_for",
    "open_losses",
    "open_offer_count",
    "possible_losses",
    "record_ico_report",
    "report_loss",
    "report_possible_loss",
    "request_factory_reset",
    "retry_lost_mode",
    "settle_possible_losses",
    "suggested_personal_data",
    "tell_headteachers",
    "term_log",
    "update_settings",
    "wipe_photos",
]
