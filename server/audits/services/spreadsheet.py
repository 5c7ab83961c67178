"""The audit's report as a spreadsheet (CSV) with every device and unknown label."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audits.models import CONDITION_CHECKS, Audit, AuditUnknownTag
from server.audits.services.common import place_paths
from server.audits.services.report import _facts, _line, _lines_query
from server.audits.services.starting import get_audit
from server.auth.models import User
from server.db import utcnow
from server.schools.models import School
from server.schools.services.clock import school_zone

# Headings in the words staff see on the report page (labels, never code names).
CSV_COLUMNS = [
    "Asset tag",
    "Model",
    "Register status",
    "Audit result",
    "Expected in this audit",
    "Lives in",
    "Found in",
    "Scanned at",
    "Scanned by",
    *(label for label, _bad in CONDITION_CHECKS.values()),
    "Damaged",
    "Condition note",
    "Held by",
    "Last seen",
    "Online in the last 24 hours",
    "Photos on the device",
    "Photo count reported at",
    "Last scanned at",
    "Last scan",
    "Loss report",
    "Repair raised at",
]
UNKNOWN_LABEL = "Unknown label"
# Excel opens a CSV as UTF-8 only when it starts with a byte-order mark; without one the
# "›" in place paths and accented names come out garbled.
BOM = "\ufeff"


def report_csv(
    session: Session, school_id: int, audit_id: int, *, now: datetime | None = None
) -> str:
    """Every device in the audit, then every unknown label, as CSV that Excel opens as UTF-8."""
    now = now or utcnow()
    audit = get_audit(session, school_id, audit_id)
    school = session.get(School, school_id)
    assert school is not None
    zone = school_zone(school)
    facts = _facts(audit, now)
    paths = place_paths(session, school_id)

    def stamp(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    def yes_no(value: bool | None) -> str:
        return "" if value is None else ("Yes" if value else "No")

    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    result = session.execute(
        _lines_query(audit, facts, (), device=True).execution_options(yield_per=2000)
    )
    for row in result:
        line = _line(row, paths)
        checks = row[16 : 16 + len(CONDITION_CHECKS)]
        writer.writerow(
            [
                _safe_cell(line.asset_tag),
                _safe_cell(line.model),
                line.status.label,
                line.state.label,
                yes_no(line.expected),
                _safe_cell(line.lives_in or ""),
                _safe_cell(line.found_in or ""),
                stamp(line.scanned_at),
                _safe_cell(line.scanned_by or ""),
                *[yes_no(v) for v in checks],
                yes_no(bool(line.problems)),
                _safe_cell(line.condition_note or ""),
                _safe_cell(line.holder or ""),
                stamp(line.last_seen_at),
                yes_no(line.online),
                "" if line.photo_count is None else line.photo_count,
                stamp(line.photo_count_at),
                stamp(line.last_scan_at),
                _safe_cell(line.last_scan_note or ""),
                line.loss_report_id or "",
                stamp(line.repair_raised_at),
            ]
        )
    unknown = session.execute(
        select(AuditUnknownTag, User.name)
        .outerjoin(User, User.id == AuditUnknownTag.scanned_by_id)
        .where(AuditUnknownTag.audit_id == audit.id)
        .order_by(AuditUnknownTag.tag)
    ).all()
    for label, by in unknown:
        blank = [""] * len(CSV_COLUMNS)
        blank[0], blank[3] = _safe_cell(label.tag), UNKNOWN_LABEL
        blank[6] = _safe_cell(paths.get(label.location_id, "") if label.location_id else "")
        blank[7], blank[8] = stamp(label.scanned_at), _safe_cell(by or "")
        writer.writerow(blank)
    return out.getvalue()


def _safe_cell(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; a leading ' keeps them text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_filename(audit: Audit) -> str:
    name = "".join(ch if ch.isalnum() else "-" for ch in audit.term.name.lower()).strip("-")
    return f"audit-{audit.id}-{name}.csv"
