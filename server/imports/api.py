"""JSON API: import a CSV file (preview, then commit) and export the register."""

from __future__ import annotations

import base64
import binascii

from server.auth.permissions import Permission
from server.errors import ValidationFailed
from server.extensions import db_session
from server.imports import services
from server.imports.models import ImportUpload
from server.imports.schemas import (
    ChangeOut,
    ColumnOut,
    ExportOut,
    ExportQuery,
    ImportIn,
    ImportOptionsIn,
    ImportPreviewOut,
    ImportResultOut,
    MissingPlaceOut,
    NoteOut,
    PlannedOut,
    ProblemOut,
    RetagOut,
)
from server.openapi import current_api_user, endpoint

PLANNED_SHOWN = 1_000


def _problem(problem: services.Problem) -> ProblemOut:
    return ProblemOut(
        row=problem.row,
        column=problem.column,
        heading=problem.heading,
        message=problem.message,
        value=problem.value,
    )


def preview_out(upload: ImportUpload, plan: services.Plan) -> ImportPreviewOut:
    summary = plan.summary
    return ImportPreviewOut(
        id=upload.id,
        filename=upload.filename,
        encoding=plan.encoding,
        encoding_note=plan.encoding_note,
        header_row=plan.header_row,
        conventions=plan.conventions,
        expires_at=upload.expires_at,
        rows=plan.rows_read,
        new=summary["new"],
        updated=summary["updated"],
        unchanged=summary["unchanged"],
        ok=plan.ok,
        problems=[_problem(p) for p in plan.problems],
        warnings=[_problem(p) for p in plan.warnings],
        notes=[
            NoteOut(
                message=g.message, column=g.column, heading=g.heading, count=g.count, rows=g.rows
            )
            for g in plan.warning_groups
        ],
        retag_offers=[
            RetagOut(row=o.row, asset_tag=o.asset_tag, current_tag=o.current_tag)
            for o in plan.retag_offers
        ],
        columns=[
            ColumnOut(
                column=services.column_letter(i),
                heading=heading,
                holds=plan.mapping[i] if i < len(plan.mapping) else None,  # type: ignore[arg-type]
                samples=[row[i] if i < len(row) else "" for row in plan.samples],
            )
            for i, heading in enumerate(plan.headings)
        ],
        missing_places=[
            MissingPlaceOut(name=name, rows=rows) for name, rows in plan.missing_places.items()
        ],
        places_parent=plan.places_parent,
        create_locations=plan.options.create_locations,
        planned=[
            PlannedOut(
                row=r.row,
                asset_tag=r.asset_tag,
                action=r.action,
                changes=sorted(r.changes),
                shown=[ChangeOut(what=w, before=b, after=a) for w, b, a in r.shown],
            )
            for r in plan.rows
            if r.action != "unchanged"
        ][:PLANNED_SHOWN],
    )


def _file_bytes(body: ImportIn) -> bytes:
    if body.csv is not None:
        return body.csv.encode("utf-8")
    try:
        return base64.b64decode(body.csv_base64 or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("csv_base64 is not valid base64.") from exc


def _choose_and_preview(upload: ImportUpload, body: ImportOptionsIn) -> ImportPreviewOut:
    """Save the request's choice of columns and places, then check the file again."""
    session = db_session()
    user = current_api_user()
    services.choose_options(
        session,
        user,
        upload,
        mapping=body.mapping,
        create_locations=body.create_locations,
        location_parent_id=body.location_parent_id,
        header_row=body.header_row,
        retag=body.retag,
    )
    return preview_out(upload, services.preview_upload(session, user, upload))


@endpoint(
    "/imports",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Upload a CSV register and preview every problem (nothing is imported yet)",
    tag="imports",
    body=ImportIn,
    response=ImportPreviewOut,
    status=201,
)
def start_import(body: ImportIn) -> ImportPreviewOut:
    session = db_session()
    user = current_api_user()
    upload = services.start_upload(session, user, filename=body.filename, data=_file_bytes(body))
    return _choose_and_preview(upload, body)


@endpoint(
    "/imports/<upload_id>",
    "GET",
    permission=Permission.DEVICES_WRITE,
    summary="Check an uploaded file again against the register as it is now",
    tag="imports",
    response=ImportPreviewOut,
)
def get_import(upload_id: str) -> ImportPreviewOut:
    session = db_session()
    user = current_api_user()
    upload = services.get_upload(session, user, upload_id)
    return preview_out(upload, services.preview_upload(session, user, upload))


@endpoint(
    "/imports/<upload_id>",
    "PATCH",
    permission=Permission.DEVICES_WRITE,
    summary="Change what the columns hold or whether missing places are added; preview again",
    tag="imports",
    body=ImportOptionsIn,
    response=ImportPreviewOut,
)
def change_import(upload_id: str, body: ImportOptionsIn) -> ImportPreviewOut:
    upload = services.get_upload(db_session(), current_api_user(), upload_id)
    return _choose_and_preview(upload, body)


@endpoint(
    "/imports/<upload_id>/commit",
    "POST",
    permission=Permission.DEVICES_WRITE,
    summary="Import the uploaded file: every row, or nothing if any row has a problem",
    tag="imports",
    response=ImportResultOut,
)
def commit_import(upload_id: str) -> ImportResultOut:
    session = db_session()
    user = current_api_user()
    upload = services.get_upload(session, user, upload_id)
    _plan, result = services.commit_upload(session, user, upload)
    return ImportResultOut(
        id=upload.id,
        new=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        places_created=result.places_created,
    )


@endpoint(
    "/devices/export",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="The register as a CSV or Excel file (base64), in the columns the import reads",
    tag="imports",
    query=ExportQuery,
    response=ExportOut,
)
def export_devices(query: ExportQuery) -> ExportOut:
    session = db_session()
    user = current_api_user()
    exported = services.export_register(session, user.school_id, query.format)
    return ExportOut(
        filename=services.export_filename(user.school.slug, query.format),
        media_type=exported.media_type,
        devices=exported.devices,
        content_base64=base64.b64encode(exported.content).decode("ascii"),
    )
