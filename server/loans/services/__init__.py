"""Loans: take devices out of a trolley, scan them back in, wipe photos, chase what is not back."""

# The rules (P-TROLLEY-1, P-TROLLEY-2, P-PHOTO-1, P-AUDIT-2, P-REG-3):
# - taking a device out claims it with one conditional UPDATE (`holder_id IS NULL`), so when two
#   people scan the same device at the same instant exactly one wins and the other is told who;
# - every return queues `wipe_photos` for the device; the loan shows the device's answer;
# - so does the end of each lesson, for devices still out (unless the school turns it off);
# - a wipe stays outstanding until the device confirms it or a person records checking by hand;
#   one that fails or expires is chased (the teacher and the computing lead are told);
# - a device not back at the end of the day and still out next morning is offered to the
#   headteacher as a possible loss;
# - a scan carries an idempotency key: re-sending it (an offline queue flushing) replays the first
#   answer and records nothing new;
# - an unknown or malformed code is refused with a clear message and nothing is recorded.

from server.loans.pages import HomeCard, OutItem, TrolleyRow, WipeSummary
from server.loans.services.answers import REPORTED_LOST, BatchResult, Refusal, ScanResult, open_item
from server.loans.services.common import LOANABLE, MAX_ID, MISSING, _notify
from server.loans.services.damage import damage_reports, put_in_repair, resolve_damage
from server.loans.services.home_cards import home_card
from server.loans.services.home_loans import (
    APPROVERS,
    HOME_LOAN_MAX_DAYS,
    decide_home_loan,
    get_home_loan,
    home_loans,
    home_loans_waiting_for,
    is_on_home_loan,
    request_home_loan,
)
from server.loans.services.lesson_end import (
    set_lesson_end_wipe,
    wipe_at_lesson_ends,
    wipes_at_lesson_end,
)
from server.loans.services.photo_wipes import WIPE_BY_HAND, Wipe, wipe_state, wipe_text
from server.loans.services.places import (
    MAX_BATCH,
    Counts,
    Where,
    get_trolley,
    resolve_code,
    storage_places,
    trolley_counts,
    trolley_overview,
)
from server.loans.services.reading import (
    change_due,
    device_loans,
    devices_out,
    get_loan,
    list_loans,
    misplaced,
    recent_class_labels,
)
from server.loans.services.reconciliation import Reconciliation, run_reconciliation
from server.loans.services.retention import (
    DEFAULT_HISTORY_MONTHS,
    HISTORY_MONTHS_RANGE,
    LOAN_EVENT_KINDS,
    Purged,
    history_months,
    purge_loan_history,
    run_retention,
    set_history_months,
)
from server.loans.services.scanning import (
    DUE_AHEAD,
    KEY_RE,
    UNDO_WINDOW,
    Undone,
    due_today_at,
    quick_return,
    quick_take_out,
    return_devices,
    scan,
    take_out,
    undo_scan,
)
from server.loans.services.school_day import (
    DEFAULT_DAY_ENDS,
    DEFAULT_PERIODS,
    WEEKDAYS,
    Period,
    SchoolDay,
    save_school_day,
    school_day,
)
from server.loans.services.wipe_chasing import (
    chase_wipes,
    earlier_wipes,
    record_wiped_by_hand,
    wipe_summary,
    wipes_to_check,
)

__all__ = [
    "APPROVERS",
    "DEFAULT_DAY_ENDS",
    "DEFAULT_HISTORY_MONTHS",
    "DEFAULT_PERIODS",
    "DUE_AHEAD",
    "HISTORY_MONTHS_RANGE",
    "HOME_LOAN_MAX_DAYS",
    "KEY_RE",
    "LOANABLE",
    "LOAN_EVENT_KINDS",
    "MAX_BATCH",
    "MAX_ID",
    "MISSING",
    "REPORTED_LOST",
    "UNDO_WINDOW",
    "WEEKDAYS",
    "WIPE_BY_HAND",
    "BatchResult",
    "Counts",
    "HomeCard",
    "OutItem",
    "Period",
    "Purged",
    "Reconciliation",
    "Refusal",
    "ScanResult",
    "SchoolDay",
    "TrolleyRow",
    "Undone",
    "Where",
    "Wipe",
    "WipeSummary",
    "_notify",
    "change_due",
    "chase_wipes",
    "damage_reports",
    "decide_home_loan",
    "device_loans",
    "devices_out",
    "due_today_at",
    "earlier_wipes",
    "get_home_loan",
    "get_loan",
    "get_trolley",
    "history_months",
    "home_card",
    "home_loans",
    "home_loans_waiting_for",
    "is_on_home_loan",
    "list_loans",
    "misplaced",
    "open_item",
    "purge_loan_history",
    "put_in_repair",
    "quick_return",
    "quick_take_out",
    "recent_class_labels",
    "record_wiped_by_hand",
    "request_home_loan",
    "resolve_code",
    "resolve_damage",
    "return_devices",
    "run_reconciliation",
    "run_retention",
    "save_school_day",
    "scan",
    "school_day",
    "set_history_months",
    "set_lesson_end_wipe",
    "storage_places",
    "take_out",
    "trolley_counts",
    "trolley_overview",
    "undo_scan",
    "wipe_at_lesson_ends",
    "wipe_state",
    "wipe_summary",
    "wipe_text",
    "wipes_at_lesson_end",
    "wipes_to_check",
]
