"""Termly audits, the half-termly photo check and random GDPR spot checks."""

# P-AUDIT-1: a termly audit starts every expected device as missing; scans move each to verified
# (in its home), misplaced (somewhere else, recorded where) or found (it was lost or stolen). The
# report compares with the register, with what devices report and with last term.
# P-AUDIT-2: a condition checklist per device; one action raises repairs for the damaged.
# P-PHOTO-2: a half-termly photo check takes in every device and asks each enrolled one for a
# fresh count; it closes only once every device has answered clear or a person has recorded
# checking it by hand (who, when, what they saw); class teachers are reminded of the rest.
# P-PHOTO-3: a random spot check draws its sample from a recorded seed, so the draw can be repeated.
# P-TROLLEY-2: a device found away from its trolley is flagged as misplaced.

from server.audits.pages import (
    STATUS_ORDER,
    CheckLine,
    HalfTerm,
    HalfTermCompliance,
    HoldingLine,
    HomeCard,
    Line,
    Listing,
    PhotoPicture,
    PlaceProgress,
    PlaceRow,
    Progress,
    RecentScan,
    RegisterPicture,
    Report,
    TermAudit,
    Totals,
    UnknownLine,
)
from server.audits.services.closing import close_audit, countersign
from server.audits.services.common import LIST_LIMIT, UNUSABLE, place_paths
from server.audits.services.follow_ups import FollowUps, raise_follow_ups, report_missing_as_lost
from server.audits.services.photo_checks import (
    WipeOutcome,
    complete_photo_check,
    get_photo_check,
    list_photo_checks,
    mark_wiped_by_hand,
    photo_check_lines,
    photo_compliance,
    photo_picture,
    remind_now,
    start_photo_check,
    wipe_count,
    wipe_photo_check,
)
from server.audits.services.photo_reminders import (
    ANSWER_WAIT,
    chase_open_checks,
    remind_class_teachers,
)
from server.audits.services.progress import progress
from server.audits.services.reading import device_history, home_card, register_picture
from server.audits.services.report import DEVICE_COLUMNS, ONLINE_WINDOW, SILENT_AFTER, report
from server.audits.services.scanning import ScanResult, record_condition, scan
from server.audits.services.spot_checks import (
    MAX_SAMPLE,
    SEED_LIMIT,
    class_teacher,
    draw_sample,
    draw_spot_check,
    get_spot_check,
    list_spot_checks,
    population_fingerprint,
    record_spot_result,
    spot_check_items,
    verify_draw,
)
from server.audits.services.spreadsheet import CSV_COLUMNS, csv_filename, report_csv
from server.audits.services.starting import (
    MAX_SCOPE_PLACES,
    get_audit,
    list_audits,
    open_audit,
    start_audit,
)
from server.audits.services.terms import (
    PHOTO_REMIND_BEFORE,
    REMIND_BEFORE,
    audit_due_on,
    half_term_on,
    half_terms,
    overdue_audit,
    send_reminders,
    term_audits,
    term_on,
)
from server.devices.models import SCAN_KINDS
from server.schools.services.clock import age_text, day_text, local_today, plural, school_zone, when

__all__ = [
    "ANSWER_WAIT",
    "CSV_COLUMNS",
    "DEVICE_COLUMNS",
    "LIST_LIMIT",
    "MAX_SAMPLE",
    "MAX_SCOPE_PLACES",
    "ONLINE_WINDOW",
    "PHOTO_REMIND_BEFORE",
    "REMIND_BEFORE",
    "SCAN_KINDS",
    "SEED_LIMIT",
    "SILENT_AFTER",
    "STATUS_ORDER",
    "UNUSABLE",
    "CheckLine",
    "FollowUps",
    "HalfTerm",
    "HalfTermCompliance",
    "HoldingLine",
    "HomeCard",
    "Line",
    "Listing",
    "PhotoPicture",
    "PlaceProgress",
    "PlaceRow",
    "Progress",
    "RecentScan",
    "RegisterPicture",
    "Report",
    "ScanResult",
    "TermAudit",
    "Totals",
    "UnknownLine",
    "WipeOutcome",
    "age_text",
    "audit_due_on",
    "chase_open_checks",
    "class_teacher",
    "close_audit",
    "complete_photo_check",
    "countersign",
    "csv_filename",
    "day_text",
    "device_history",
    "draw_sample",
    "draw_spot_check",
    "get_audit",
    "get_photo_check",
    "get_spot_check",
    "half_term_on",
    "half_terms",
    "home_card",
    "list_audits",
    "list_photo_checks",
    "list_spot_checks",
    "local_today",
    "mark_wiped_by_hand",
    "open_audit",
    "overdue_audit",
    "photo_check_lines",
    "photo_compliance",
    "photo_picture",
    "place_paths",
    "plural",
    "population_fingerprint",
    "progress",
    "raise_follow_ups",
    "record_condition",
    "record_spot_result",
    "register_picture",
    "remind_class_teachers",
    "remind_now",
    "report",
    "report_csv",
    "report_missing_as_lost",
    "scan",
    "school_zone",
    "send_reminders",
    "spot_check_items",
    "start_audit",
    "start_photo_check",
    "term_audits",
    "term_on",
    "verify_draw",
    "when",
    "wipe_count",
    "wipe_photo_check",
]
