"""Scheduled jobs: the registry domains add to with `@job`, and the scheduler that runs them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from server.config import Settings
from server.db import Database, utcnow
from server.domains import import_part

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What a job gets: a session it may commit, the (injectable) time and the settings."""

    session: Session
    now: datetime
    settings: Settings


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[JobContext], object]


JOBS: dict[str, Job] = {}


def job(
    name: str, *, every: timedelta
) -> Callable[[Callable[[JobContext], object]], Callable[[JobContext], object]]:
    """Register a scheduled job; it must be safe to run twice (several workers may run it)."""

    def register(fn: Callable[[JobContext], object]) -> Callable[[JobContext], object]:
        JOBS[name] = Job(name, every, fn)
        return fn

    return register


def discover_jobs() -> dict[str, Job]:
    """Import every domain's jobs.py so their @job registrations run."""
    import_part("jobs")
    return dict(JOBS)


@dataclass
class Scheduler:
    """Runs each job when it falls due; a failing job is logged and retried next time."""

    database: Database
    settings: Settings
    jobs: dict[str, Job] = field(default_factory=discover_jobs)
    last_run: dict[str, datetime] = field(default_factory=dict)

    def run_due(self, now: datetime | None = None) -> list[str]:
        now = now or utcnow()
        ran = []
        for name, scheduled in sorted(self.jobs.items()):
            last = self.last_run.get(name)
            if last is not None and now - last < scheduled.every:
                continue
            self.run_one(name, now)
            ran.append(name)
        return ran

    def run_one(self, name: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        scheduled = self.jobs[name]
        session = self.database.session(write=True)
        try:
            scheduled.run(JobContext(session, now, self.settings))
            session.commit()
        except Exception:
            session.rollback()
            log.exception("job %s failed; it will run again", name)
        finally:
            session.close()
            self.last_run[name] = now
