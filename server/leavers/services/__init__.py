"""Leaver cases: everything a leaver holds comes back, every device is reset, three people sign.

The rules (P-LEAVE-1): per device the leaver either hands over the PIN and account details (kept
in escrow, P-LEAVE-2) or a reset meeting is booked on their last day; the device is scanned back
in; the technician resets it (the device's own acknowledgement, or evidence for a device without
the kiosk client); the leaver, the line manager and the technician sign off; the case closes only
when nothing is left open. Open items on and after the last day go to the headteacher daily.
"""

from server.leavers.pages import CaseState, HomeCard, ItemState
from server.leavers.services.account import end_leaver_accounts, keep_account
from server.leavers.services.cases import (
    case_for_link,
    get_case,
    home_card,
    list_cases,
    my_case,
    roles_on,
    sign_offs_waiting_for,
)
from server.leavers.services.checklist import (
    book_meeting,
    cancel_meeting,
    choose_meeting,
    hand_over_credentials,
)
from server.leavers.services.closing import close_case, sign
from server.leavers.services.common import (
    DUE_SOON,
    EMAIL_RE,
    LINK_GRACE,
    MAX_TAGS,
    MEETING_MINUTES,
    MIN_EVIDENCE,
    RESET,
    LinkAccess,
    Who,
    is_manager,
)
from server.leavers.services.escalation import escalate
from server.leavers.services.holdings import Held, held_by
from server.leavers.services.invitation import meeting_ics, meeting_invitation
from server.leavers.services.items import add_device, refresh
from server.leavers.services.links import issue_link
from server.leavers.services.opening import Opened, open_case
from server.leavers.services.returns import (
    confirm_reset,
    remove_personal_device,
    require_receiver,
    return_device,
    send_reset,
)
from server.leavers.services.state import case_state, note_acknowledged_resets

# The school's clock, under the names this module has always offered.
from server.schools.services.clock import local, when
from server.schools.services.clock import local_today as school_today
from server.schools.services.clock import school_zone as zone

__all__ = [
    "DUE_SOON",
    "EMAIL_RE",
    "LINK_GRACE",
    "MAX_TAGS",
    "MEETING_MINUTES",
    "MIN_EVIDENCE",
    "RESET",
    "CaseState",
    "Held",
    "HomeCard",
    "ItemState",
    "LinkAccess",
    "Opened",
    "Who",
    "add_device",
    "book_meeting",
    "cancel_meeting",
    "case_for_link",
    "case_state",
    "choose_meeting",
    "close_case",
    "confirm_reset",
    "end_leaver_accounts",
    "escalate",
    "get_case",
    "hand_over_credentials",
    "held_by",
    "home_card",
    "is_manager",
    "issue_link",
    "keep_account",
    "list_cases",
    "local",
    "meeting_ics",
    "meeting_invitation",
    "my_case",
    "note_acknowledged_resets",
    "open_case",
    "refresh",
    "remove_personal_device",
    "require_receiver",
    "return_device",
    "roles_on",
    "school_today",
    "send_reset",
    "sign",
    "sign_offs_waiting_for",
    "when",
    "zone",
]
