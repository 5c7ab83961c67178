"""Uploaded files kept for a few hours between the preview and the import."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.imports.models import ImportUpload
from server.imports.pages import Options, Plan
from server.imports.services.checking import check_mapping, preview
from server.imports.services.columns import BY_KEY
from server.imports.services.reading import read_sheet
from server.imports.services.shared import Progress
from server.imports.services.writing import ImportResult, _write
from server.schools.models import ALLOWED_PARENTS, Location, LocationKind
from server.schools.services import plural

log = logging.getLogger(__name__)

UPLOAD_LIFETIME = timedelta(hours=6)


def _safe_filename(name: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    return (base or "upload.csv")[:255]


def start_upload(
    session: Session, actor: User, *, filename: str, data: bytes, now: datetime | None = None
) -> ImportUpload:
    """Keep an uploaded file (already checked to be CSV) for its preview and import."""
    read_sheet(data)
    now = now or utcnow()
    upload = ImportUpload(
        id=secrets.token_urlsafe(24),
        school_id=actor.school_id,
        user_id=actor.id,
        filename=_safe_filename(filename),
        content=data,
        mapping=None,
        header_row=None,
        retag=None,
        create_locations=False,
        location_parent_id=None,
        created_at=now,
        expires_at=now + UPLOAD_LIFETIME,
    )
    session.add(upload)
    session.commit()
    return upload


def get_upload(
    session: Session, actor: User, upload_id: str, *, now: datetime | None = None
) -> ImportUpload:
    """An upload of this person's, in their school, that has not expired."""
    upload = session.scalar(
        select(ImportUpload).where(
            ImportUpload.id == upload_id,
            ImportUpload.school_id == actor.school_id,
            ImportUpload.user_id == actor.id,
        )
    )
    if upload is None or upload.expires_at <= (now or utcnow()):
        raise NotFound(
            "That upload is not here: uploads are kept for "
            f"{plural(UPLOAD_LIFETIME.seconds // 3600, 'hour')}. Upload the file again."
        )
    return upload


def options_of(upload: ImportUpload) -> Options:
    return Options(
        mapping=list(upload.mapping) if upload.mapping is not None else None,
        create_locations=upload.create_locations,
        location_parent_id=upload.location_parent_id,
        header_row=upload.header_row,
        retag=[str(tag) for tag in upload.retag or []],
    )


def choose_options(
    session: Session,
    actor: User,
    upload: ImportUpload,
    *,
    mapping: Sequence[str | None] | None = None,
    create_locations: bool | None = None,
    location_parent_id: int | None = None,
    header_row: int | None = None,
    retag: Sequence[str] | None = None,
) -> ImportUpload:
    """Save the person's choice of columns, heading row, re-tags and whether to add places."""
    if upload.committed_at is not None:
        raise Conflict("This file has already been imported.")
    if header_row is not None:
        current = read_sheet(upload.content, upload.header_row).header_row
        if header_row != current:
            read_sheet(upload.content, header_row)  # a row the file has
            upload.header_row = header_row
            upload.mapping = None  # other headings: guess their columns afresh
            mapping = None  # chosen for the old headings
    if retag is not None:
        upload.retag = sorted({tag.strip() for tag in retag if tag.strip()})
    if mapping is not None:
        headings = read_sheet(upload.content, upload.header_row).headings
        cleaned = [m or None for m in mapping]
        if len(cleaned) != len(headings) or any(m is not None and m not in BY_KEY for m in cleaned):
            # Other mistakes (a field chosen twice, none for the serial) show on the preview.
            raise ValidationFailed(check_mapping(cleaned, headings)[0])
        upload.mapping = cleaned
    if create_locations is not None:
        if create_locations and not has_permission(actor.role, Permission.LOCATIONS_WRITE):
            raise Forbidden("Your role cannot add places; ask the school business manager.")
        upload.create_locations = create_locations
    if location_parent_id is not None:
        parent = session.scalar(
            select(Location).where(
                Location.id == location_parent_id, Location.school_id == actor.school_id
            )
        )
        if parent is None or parent.kind not in ALLOWED_PARENTS[LocationKind.ROOM]:
            raise ValidationFailed("New rooms can only go in a site or a building of your school.")
        upload.location_parent_id = parent.id
    session.commit()
    return upload


def preview_upload(
    session: Session, actor: User, upload: ImportUpload, progress: Progress | None = None
) -> Plan:
    """Check a kept upload against the register as it is now; changes nothing."""
    return preview(
        session,
        actor.school_id,
        upload.content,
        actor=actor,
        options=options_of(upload),
        filename=upload.filename,
        progress=progress,
    )


def commit_upload(
    session: Session, actor: User, upload: ImportUpload, progress: Progress | None = None
) -> tuple[Plan, ImportResult]:
    """Import a kept upload, all or nothing, re-checked at this moment; commits once."""
    if upload.committed_at is not None:
        raise Conflict("This file has already been imported.")
    plan = preview_upload(session, actor, upload, progress)
    if not plan.ok:
        raise ValidationFailed(
            f"Nothing was imported: {len(plan.bad_rows)} row(s) have problems. Correct them in "
            "your spreadsheet and upload it again.",
            details=[p.as_dict() for p in plan.problems],
        )

    def done() -> None:
        upload.committed_at = utcnow()
        upload.content = b""  # the register holds it now; nothing to keep

    return plan, _write(session, actor.school_id, plan, actor, progress, after=done)


def purge_expired_uploads(session: Session, now: datetime) -> int:
    """Delete uploads past their time; safe to run twice."""
    removed = session.execute(delete(ImportUpload).where(ImportUpload.expires_at <= now))
    session.commit()
    count = int(getattr(removed, "rowcount", 0) or 0)
    if count:
        log.info("removed %s expired import uploads", count)
    return count
