"""What an e-mail may say: the kind of event, which device or case, when, and a link (P-SEC-5).

School policy forbids sending staff or pupil personal data by e-mail, and e-mail leaves the
school (to an outside data protection officer, to a leaver's own address). So an e-mail is built
only from an `EmailNotice`: it has no field for a name or for anything staff typed, and the
in-app title and body never reach it. The details stay in Trolley, behind its log-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from server.devices.models import Device
from server.schools.models import School
from server.schools.services.clock import when

# An e-mail names at most this many devices; the rest are counted ("and 12 more").
MAX_TAGS = 20
# The subject names fewer, so it stays one readable line.
SUBJECT_TAGS = 3
# Where an e-mail links when its notice has no page of its own: the person's notifications.
DEFAULT_LINK = "/notifications"
STAYS_IN_TROLLEY = (
    "Names, notes and the other details are in Trolley, not in this e-mail: sign in to read them."
)


@dataclass(frozen=True)
class EmailKind:
    """How e-mail names one kind of event: a fixed phrase, what its case is called, a next step."""

    what: str
    case: str | None = None
    next_step: str = ""


LOSS_CLOCK = (
    "The school has 72 hours from becoming aware of a loss to decide whether it must be "
    "reported to the Information Commissioner's Office."
)

# Every kind of notice that may be e-mailed; a kind missing here cannot be e-mailed at all.
EMAIL_KINDS: Mapping[str, EmailKind] = MappingProxyType(
    {
        # Accounts: who may approve destructive commands (P-SEC-1)
        "auth.approver_added": EmailKind(
            "An account that can approve destructive device commands was added or changed",
            next_step=(
                "If nobody at school expected it, turn the account off on the People page in "
                "Trolley and tell your headteacher."
            ),
        ),
        "auth.role_change_waiting": EmailKind(
            "A new role needs a second administrator",
            next_step="Confirm or decline it on the People page in Trolley.",
        ),
        # Audits, photo checks and spot checks
        "audit.before": EmailKind("Termly device audit due soon"),
        "audit.due": EmailKind("Termly device audit due today"),
        "audit.overdue": EmailKind("Termly device audit overdue"),
        "audit.photo_check": EmailKind("Half-termly photo check due"),
        "audit.photo_check_devices": EmailKind(
            "Devices to check by hand for photos",
            next_step="They have not confirmed that their photos are gone; "
            "please check them and tell the computing lead what you find.",
        ),
        "audit.signed_off": EmailKind(
            "Termly device audit signed off", "Audit", "The SBM may countersign it."
        ),
        "audit.repairs": EmailKind("Devices to repair after the termly audit", "Audit"),
        "audit.spot_check": EmailKind(
            "Spot check found personal content on a device",
            next_step="School policy is that pupils' photos are deleted at the end of the lesson.",
        ),
        # Commands that take devices out of use (the fleet-disruption budget and the freeze)
        "commands.budget": EmailKind(
            "Destructive device commands asked for beyond the school's limits",
            next_step=(
                "Nothing was sent without a second person. If you did not expect this, freeze "
                "destructive commands in Trolley at once and have that account's password changed."
            ),
        ),
        "commands.freeze": EmailKind("The freeze on destructive device commands changed"),
        "commands.approval_waiting": EmailKind(
            "A device command is waiting for your approval",
            next_step="Approve or turn it down on the Commands page in Trolley.",
        ),
        # Moves in the register
        "location_change": EmailKind("Device move needs your approval", "Move request"),
        "location_change.decided": EmailKind("Device move decided", "Move request"),
        "location.moved": EmailKind("A place in the school was moved"),
        # Lesson and home loans
        "damage_report": EmailKind("Device returned with a problem"),
        "device_found": EmailKind(
            "Device reported lost or stolen was scanned", next_step="It was not let out again."
        ),
        "loan_due": EmailKind("Devices due back in their trolley", "Loan"),
        "loans_not_back": EmailKind("Devices not back in a trolley at the end of the day"),
        "loans.wipe_not_confirmed": EmailKind(
            "Photo wipe not confirmed by the device",
            "Loan",
            "Check the device's photos by hand and record it in Trolley.",
        ),
        "home_loan_request": EmailKind("Home loan asked for", "Home loan"),
        "home_loan_decision": EmailKind("Home loan request decided", "Home loan"),
        "home_loan_overdue": EmailKind("Home loan overdue", "Home loan"),
        "loans.off_site": EmailKind(
            "Device seen on a network outside school, not on an approved home loan",
            next_step="Find out who has it; if it cannot be found, report it lost in Trolley.",
        ),
        # Losses
        "loss.reported": EmailKind("Device reported lost or stolen", "Loss report", LOSS_CLOCK),
        "loss.escalation": EmailKind(
            "Decision due on a lost or stolen device", "Loss report", LOSS_CLOCK
        ),
        "loss.seen_online": EmailKind("Lost or stolen device came online", "Loss report"),
        "loss.scanned": EmailKind("Lost or stolen device was scanned", "Loss report"),
        "loss.possible": EmailKind(
            "Device may be lost: it was not found",
            next_step="If it is lost, report it in Trolley in one action; if not, say where it is.",
        ),
        "loss.factory_reset": EmailKind(
            "Factory reset of a lost device needs approval",
            "Loss report",
            "It is sent once a second person approves it on the Commands page.",
        ),
        # Staff members' own devices: photo use (P-PHOTO-4) and losses (P-LOSS-4)
        "personal_device.photos_unconfirmed": EmailKind(
            "Please confirm what happened to a day's school photos on your own device",
            next_step="Say in Trolley that they were moved to school storage and deleted, "
            "or that none were taken.",
        ),
        "personal_device.photos_still_unconfirmed": EmailKind(
            "A day's school photos on a staff member's own device are still not confirmed"
        ),
        "personal_device.lost": EmailKind(
            "A staff member's own device was reported lost or stolen",
            "Personal device report",
            "If it held school photos, decide whether this is a personal data breach.",
        ),
        "personal_device.new_owner": EmailKind(
            "A staff member's own device was passed to a new owner", "Personal device report"
        ),
        # Staff leaving
        "leaver_case": EmailKind("Member of staff leaving: devices to sign off", "Leaver case"),
        "leaver_checklist": EmailKind("Your leaving checklist for school devices", "Leaver case"),
        "leaver_link": EmailKind(
            "Your leaving checklist for school devices",
            "Leaver case",
            "The link is personal to you: please do not forward it.",
        ),
        "leaver_meeting": EmailKind(
            "Device reset meeting", "Leaver case", "The time above is when the meeting starts."
        ),
        "leaver_sign_off": EmailKind("Leaver case ready for your sign-off", "Leaver case"),
        "leaver_escalation": EmailKind("Leaver case still has open items", "Leaver case"),
        # Web filter exceptions
        "filter_exception.requested": EmailKind("Request to unblock websites", "Request"),
        "filter_exception.approved": EmailKind("Websites unblocked as asked", "Request"),
        "filter_exception.declined": EmailKind("Request to unblock websites declined", "Request"),
        "filter_exception.revoked": EmailKind("Unblocked websites filtered again early", "Request"),
        "filter_exception.expired": EmailKind("Unblocking of websites ended", "Request"),
    }
)


@dataclass(frozen=True)
class EmailNotice:
    """All an e-mail may carry: a kind from `EMAIL_KINDS`, asset tags, a case number, a time,
    and a path in Trolley."""

    kind: str
    at: datetime
    link: str = DEFAULT_LINK
    asset_tags: tuple[str, ...] = ()
    case_id: int | None = None

    def __post_init__(self) -> None:
        # Each of these is a caller's bug, found by its tests: no staff member can cause one.
        words = EMAIL_KINDS.get(self.kind)
        if words is None:
            raise ValueError(f"notices of kind {self.kind!r} have no e-mail wording")
        if self.at.tzinfo is None:
            raise ValueError("an e-mail's time needs its time zone")
        if self.case_id is not None and words.case is None:
            raise ValueError(f"notices of kind {self.kind!r} name no case")


def asset_tags(devices: Iterable[Device]) -> tuple[str, ...]:
    """The devices' asset tags, each once, in order: the only way a device is named by e-mail."""
    return tuple(dict.fromkeys(device.asset_tag for device in devices))


def _tags(tags: tuple[str, ...], most: int) -> str:
    shown = ", ".join(tags[:most])
    return shown if len(tags) <= most else f"{shown} and {len(tags) - most} more"


def email_text(notice: EmailNotice, school: School) -> tuple[str, str]:
    """The subject and body of a notice's e-mail, its time on the school's clock."""
    words = EMAIL_KINDS[notice.kind]
    case = f"{words.case} {notice.case_id}" if words.case and notice.case_id else None
    about = _tags(notice.asset_tags, SUBJECT_TAGS) if notice.asset_tags else case
    subject = f"{words.what}: {about}" if about else words.what
    lines = [f"{words.what}."]
    if words.next_step:
        lines.append(words.next_step)
    lines.append("")
    if notice.asset_tags:
        label = "Device" if len(notice.asset_tags) == 1 else "Devices"
        lines.append(f"{label}: {_tags(notice.asset_tags, MAX_TAGS)}")
    if case:
        lines.append(f"{words.case}: {notice.case_id}")
    lines += [f"When: {when(notice.at, school)}", "", STAYS_IN_TROLLEY]
    return subject[:200], "\n".join(lines)
