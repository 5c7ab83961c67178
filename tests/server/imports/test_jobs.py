"""Uploaded spreadsheets do not linger: the worker deletes them when their hours are up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.db import utcnow
from server.imports.jobs import purge_uploads
from server.imports.models import ImportUpload
from server.imports.services import UPLOAD_LIFETIME, start_upload
from server.jobs import JobContext, discover_jobs
from tests.server.imports.conftest import ipad, make_csv


def test_expired_uploads_are_deleted(session: Session, sbm: User, app: Any) -> None:
    data = make_csv([ipad("A-1", "DMPXK2Q1JF8J")])
    now = utcnow()
    old = start_upload(session, sbm, filename="old.csv", data=data, now=now - UPLOAD_LIFETIME)
    new = start_upload(session, sbm, filename="new.csv", data=data, now=now)
    assert "imports.purge_uploads" in discover_jobs()
    context = JobContext(session, now + timedelta(minutes=1), app.extensions["trolley.settings"])
    assert purge_uploads(context) == 1
    assert session.scalars(select(ImportUpload.id)).all() == [new.id]
    assert purge_uploads(context) == 0  # safe to run twice
    assert old.id != new.id and len(new.id) >= 32  # random, unguessable ids
