"""The hash-chained activity trail detects tampering (P-SEC-1)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.activity.services import record, verify_chain
from server.auth.models import User
from server.schools.models import School


def _fill(session: Session, school: School, actor: User, n: int) -> list[ActivityEntry]:
    entries = [
        record(
            session,
            actor=actor,
            action="test.action",
            school_id=school.id,
            details={"n": i, "£": "ünïcode"},
        )
        for i in range(n)
    ]
    session.commit()
    return entries


def test_untouched_chain_verifies(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: the audit trail of who did what is intact."""
    _fill(session, school, make_user(), 10)
    result = verify_chain(session)
    assert result.ok and result.checked >= 10


def test_changed_entry_is_named(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """P-SEC-1: tampering with an entry is detected and the first tampered entry reported."""
    entries = _fill(session, school, make_user(), 10)
    victim = entries[4]
    session.execute(
        update(ActivityEntry)
        .where(ActivityEntry.id == victim.id)
        .values(actor_label="someone-else")
    )
    session.commit()
    session.expire_all()
    result = verify_chain(session)
    assert not result.ok and result.first_bad_seq == victim.seq
    assert "changed" in (result.reason or "")


def test_deleted_entry_is_detected(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    entries = _fill(session, school, make_user(), 6)
    session.execute(text("DELETE FROM activity_entries WHERE id = :id"), {"id": entries[2].id})
    session.commit()
    session.expire_all()
    result = verify_chain(session)
    assert not result.ok and result.first_bad_seq == entries[3].seq
    assert "missing" in (result.reason or "")


def test_rewritten_tail_breaks_the_link(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    entries = _fill(session, school, make_user(), 5)
    # A forger recomputes the entry's own hash, but the next entry still points at the old one.
    session.execute(
        update(ActivityEntry)
        .where(ActivityEntry.id == entries[1].id)
        .values(action="forged", hash="f" * 64)
    )
    session.commit()
    session.expire_all()
    result = verify_chain(session)
    assert not result.ok and result.first_bad_seq == entries[1].seq


def test_filtering_history_is_hidden_from_roles_without_the_right(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """P-PROFILE-4: filtering changes are readable only by a role with the filtering right."""
    from server.activity.services import recent

    actor = make_user()
    record(session, actor=actor, action="profile.version_saved", school_id=school.id)
    record(session, actor=actor, action="device.created", school_id=school.id)
    session.commit()
    general = {e.action for e in recent(session, school.id)}
    filtering = {e.action for e in recent(session, school.id, include_filtering=True)}
    assert "profile.version_saved" not in general and "device.created" in general
    assert "profile.version_saved" in filtering
