"""The lock every write to an audit takes, so scans and the sign-off take turns."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.audits.models import Audit
from server.audits.services.common import _school_row
from server.auth.models import User
from server.errors import Conflict
from server.schools.models import School
from server.schools.services.clock import when

# Scans and the sign-off serialise on the audit's row (SELECT ... FOR UPDATE on PostgreSQL; SQLite
# writers already take the database's write lock up front), so a scan either lands before the
# sign-off and is in the report, or is refused with a clear message: never silently dropped.


def _locked(session: Session, school_id: int, audit_id: int) -> Audit:
    """The audit's row, locked until this transaction ends: scans and the close take turns."""
    return _school_row(
        session, Audit, audit_id, school_id, "No such audit in your school.", lock=True
    )


def _closed_message(session: Session, audit: Audit, what: str) -> str:
    closer = session.get(User, audit.closed_by_id) if audit.closed_by_id else None
    school = session.get(School, audit.school_id)
    assert school is not None
    by = f" by {closer.name}" if closer else ""
    at = when(audit.closed_at, school, missing="never")
    return (
        f"This audit was signed off{by} at {at} and is locked, "
        f"so {what} was not recorded. Start a new audit if the check must go on."
    )


def _locked_open(session: Session, school_id: int, audit_id: int, what: str) -> Audit:
    """The audit's locked row, or a refusal saying `what` was not recorded once it is signed off."""
    audit = _locked(session, school_id, audit_id)
    if not audit.is_open:
        raise Conflict(_closed_message(session, audit, what), code="audit_closed")
    return audit
