"""A profile assigned in Trolley reaches Google without a button: the worker pushes what changed.

Chromebooks run no program of ours, so the profiles domain's desired-state outbox is published
for them here (through Google) rather than over MQTT; `published_sha256` says what went out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.activity.services import record
from server.chromebooks.models import GoogleLink, PolicyState
from server.chromebooks.services.google import GoogleApi, GoogleError
from server.chromebooks.services.link import clients_for, get_link
from server.chromebooks.services.policies import (
    Desired,
    mark_sent,
    plan_units,
    push_unit,
    upsert,
    waiting,
)
from server.crypto import SecretBox
from server.errors import TrolleyError
from server.schools.models import School


def _refused(
    session: Session, link: GoogleLink, plan: Desired, now: datetime, state: PolicyState, why: str
) -> None:
    """Show on the page, setting by setting, why Google does not have the profile."""
    for row in upsert(session, link.school_id, plan, now):
        if row.schema:
            row.state, row.evidence = state, why[:500]


def push_changed(
    session: Session, box: SecretBox, google: GoogleApi, school_id: int, now: datetime
) -> int:
    """P-PROFILE-1: push each org unit whose Chromebooks' profile changed, read it back, commit.

    Google being down leaves them to the next run; a refusal is shown in Google's words and not
    sent again until the profile changes. Returns how many org units were pushed.
    """
    link = get_link(session, school_id)
    if link is None or not link.known_schemas:
        return 0  # an untested link cannot check policy names, so nothing may be sent
    sent = waiting(session, school_id)
    if not sent:
        return 0
    units = {unit for _d, _s, unit in sent}
    school = session.get(School, school_id)
    plans, problems = plan_units(session, school_id, school.return_message if school else "")
    plans = [plan for plan in plans if plan.org_unit_id in units]
    retry: set[str] = set()
    pushed = []
    try:
        with clients_for(box, google, link) as clients:
            for plan in plans:
                try:
                    push_unit(session, clients, link, plan, now)
                    pushed.append(plan)
                except GoogleError as exc:
                    if not exc.retryable:
                        _refused(session, link, plan, now, PolicyState.FAILED, exc.message)
                        continue
                    retry.add(plan.org_unit_id)
                    why = f"Google did not answer, so Trolley will try again: {exc.message}"
                    _refused(session, link, plan, now, PolicyState.PENDING, why)
                except TrolleyError as exc:
                    _refused(session, link, plan, now, PolicyState.FAILED, exc.message)
    except GoogleError as exc:
        if not exc.retryable:
            raise
        session.rollback()  # Google is down: everything waits for the next run
        return 0
    mark_sent(session, sent, units - retry, now)
    link.policy_problems = problems
    if pushed:
        record(
            session,
            actor=None,
            actor_label="Trolley (profile assigned)",
            action="google.profiles_pushed",
            school_id=school_id,
            target_type="google_link",
            target_id=link.client_email,
            details={
                "org_units": [p.org_unit_path for p in pushed],
                "versions": [p.version.id for p in pushed],
                "problems": problems,
            },
        )
    session.commit()
    return len(pushed)
