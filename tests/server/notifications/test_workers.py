"""Several workers share one outbox: each e-mail is sent exactly once."""

from __future__ import annotations

import smtplib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from server.config import Settings
from server.db import utcnow
from server.notifications.models import EmailMessage, EmailStatus
from server.notifications.services import SendReport, send_due_email
from server.schools.models import School
from tests.server.notifications.conftest import MailServer, settings_for

MESSAGES = 30


def _settings(url: str, port: int, tmp_path: Path) -> Settings:
    """Settings without the app: its test connection would hold SQLite's write lock."""
    base = Settings(
        database_url=url, secret_key="w" * 40, data_keys=(), instance_dir=tmp_path, testing=True
    )
    return settings_for(base, port)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def committed(request: pytest.FixtureRequest) -> Iterator[tuple[str, Engine, int]]:
    """A school with queued e-mails, really committed so separate connections see them."""
    url, engine = request.getfixturevalue(f"{request.param}_database")
    with Session(engine) as setup:
        school = School(slug=f"w-{uuid.uuid4().hex[:10]}", name="Worker Test Primary")
        setup.add(school)
        setup.flush()
        setup.add_all(
            EmailMessage(
                school_id=school.id,
                to_address=f"staff{n}@workers.example",
                subject=f"Message {n}",
                body_text="Hello",
            )
            for n in range(MESSAGES)
        )
        setup.commit()
        school_id = school.id
    yield url, engine, school_id
    with Session(engine) as cleanup:  # the e-mails and their attempts go with the school
        cleanup.delete(cleanup.get(School, school_id))
        cleanup.commit()


def _slow(factory: Callable[..., smtplib.SMTP]) -> Callable[..., smtplib.SMTP]:
    """An SMTP connection whose sends take a little time, so two workers overlap."""

    def make(*args: Any, **kwargs: Any) -> smtplib.SMTP:
        smtp = factory(*args, **kwargs)
        send = smtp.send_message

        def slow_send(*a: Any, **k: Any) -> Any:
            time.sleep(0.01)
            return send(*a, **k)

        smtp.send_message = slow_send  # type: ignore[method-assign]
        return smtp

    return make


def test_two_workers_never_send_one_message_twice(
    committed: tuple[str, Engine, int], mail_server: MailServer, tmp_path: Path
) -> None:
    """P-LOSS-1: concurrent senders split the queue between them; nothing is sent twice."""
    url, engine, school_id = committed
    settings = _settings(url, mail_server.port, tmp_path)
    start = threading.Barrier(2)
    reports: dict[str, list[SendReport]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with Session(engine) as session:
                start.wait()
                while True:
                    report = send_due_email(
                        session, settings, utcnow(), smtp_factory=_slow(smtplib.SMTP), limit=3
                    )
                    if report == SendReport():
                        return
                    reports[name].append(report)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors

    subjects = [r.message["Subject"] for r in mail_server.messages]
    assert len(subjects) == MESSAGES and len(set(subjects)) == MESSAGES
    sent = {name: sum(r.sent for r in runs) for name, runs in reports.items()}
    assert sum(sent.values()) == MESSAGES
    assert all(sent.values()), f"the workers did not overlap: {sent}"
    with Session(engine) as check:
        rows = check.scalars(select(EmailMessage).where(EmailMessage.school_id == school_id))
        assert {(m.status, m.attempts) for m in rows} == {(EmailStatus.SENT, 1)}


@pytest.mark.postgres
def test_a_worker_skips_email_another_worker_has_locked(
    postgres_database: tuple[str, Engine], mail_server: MailServer, tmp_path: Path
) -> None:
    """On PostgreSQL a row another worker holds is skipped (SKIP LOCKED), never waited on."""
    url, engine = postgres_database
    with Session(engine) as setup:
        school = School(slug=f"l-{uuid.uuid4().hex[:10]}", name="Lock Test Primary")
        setup.add(school)
        setup.flush()
        setup.add_all(
            EmailMessage(
                school_id=school.id,
                to_address=f"s{n}@locks.example",
                subject=f"L{n}",
                body_text="Hi",
            )
            for n in range(4)
        )
        setup.commit()
        school_id = school.id
    mail = _settings(url, mail_server.port, tmp_path)
    holder = Session(engine)
    try:
        held = holder.scalars(
            select(EmailMessage)
            .where(EmailMessage.school_id == school_id)
            .order_by(EmailMessage.id)
            .limit(2)
            .with_for_update()
        ).all()
        with Session(engine) as other:
            # Waiting on the lock instead of skipping it would fail here rather than hang.
            other.execute(text("SET lock_timeout = '5s'"))
            report = send_due_email(other, mail, utcnow())
        assert report == SendReport(sent=2)
        assert sorted(r.message["Subject"] for r in mail_server.messages) == ["L2", "L3"]
        assert {m.subject for m in held} == {"L0", "L1"}
    finally:
        holder.rollback()
        holder.close()
        with Session(engine) as cleanup:
            cleanup.delete(cleanup.get(School, school_id))
            cleanup.commit()
