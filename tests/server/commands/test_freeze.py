"""The freeze on SQLite and PostgreSQL: who may freeze and lift, what stops, what is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.commands import services
from server.commands.models import Command, CommandStatus, FleetFreeze, FreezeState
from server.db import utcnow
from server.devices.models import Device, DeviceEvent
from server.schools.models import School
from tests.server.commands.test_budget import add_fleet
from tests.server.conftest import csrf_token, log_in_as, post_confirmed, settle


@pytest.fixture
def fleet(session: Session, school: School) -> list[Device]:
    return add_fleet(session, school.id, 6)


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    return make_user(Role.HEADTEACHER)


@pytest.fixture
def tech(make_user: Callable[..., User]) -> User:
    return make_user(Role.TECHNICIAN)


def _post(
    client: FlaskClient, token_for: Callable[[User], dict[str, str]], user: User, path: str
) -> tuple[int, dict[str, object]]:
    answer = client.post(f"/api/v1{path}", json={}, headers=token_for(user))
    return answer.status_code, answer.get_json()


def _commands(session: Session, school_id: int, command_type: str) -> list[Command]:
    session.expire_all()
    return list(
        session.scalars(
            select(Command)
            .where(Command.school_id == school_id, Command.type == command_type)
            .order_by(Command.id)
        )
    )


def _actions(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(ActivityEntry.action)
            .where(
                ActivityEntry.action.like("command.freeze%")
                | (ActivityEntry.action == "command.frozen")
            )
            .order_by(ActivityEntry.seq)
        )
    )


def test_the_head_freezes_at_once_and_what_was_waiting_stops(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    tech: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: a freeze cancels queued, waiting and sent destructive commands (each device's
    timeline says why), leaves routine ones alone, tells every device, refuses new ones."""
    (queued,) = services.issue(session, tech, fleet[:1], "lock")
    waiting = services.issue(session, tech, fleet, "factory_reset")
    (sent,) = services.issue(session, tech, fleet[1:2], "lost_mode", {"enabled": True})
    sent.status = CommandStatus.SENT
    (ping,) = services.issue(session, tech, fleet[2:3], "ping")
    session.commit()

    status, body = _post(client, token_for, head, "/commands/freeze")
    assert status == 200 and body["state"] == "frozen"
    for command in [queued, sent, *waiting]:
        session.refresh(command)
        assert command.status is CommandStatus.CANCELLED
        assert command.detail == "Stopped: the school froze destructive commands"
    session.refresh(ping)
    assert ping.status is CommandStatus.QUEUED
    timeline = session.scalars(
        select(DeviceEvent.summary).where(DeviceEvent.device_id == fleet[0].id)
    ).all()
    assert "Lock stopped: the school froze destructive commands" in timeline
    freezes = _commands(session, school.id, "freeze")
    assert {c.device_id for c in freezes} == {d.id for d in fleet}
    assert {(c.status, c.args["enabled"]) for c in freezes} == {(CommandStatus.QUEUED, True)}

    refused = client.post(
        f"/api/v1/devices/{fleet[3].asset_tag}/commands",
        json={"type": "wipe_photos"},
        headers=token_for(tech),
    )
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "fleet_frozen"
    # Routine work goes on; a return's wipe is held back, and the return itself is not refused.
    assert services.issue(session, tech, fleet[3:4], "ping")[0].status is CommandStatus.QUEUED
    (held,) = services.issue(
        session, make_user(Role.TEACHER), fleet[4:5], "wipe_photos", on_return=True
    )
    assert held.status is CommandStatus.CANCELLED and held.detail.startswith("Held back")
    assert _actions(session) == ["command.frozen"]


def test_two_administrators_freeze_together_and_one_alone_cannot(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    tech: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: the first administrator asks (nothing stops yet); a second confirms."""
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)
    (lock,) = services.issue(session, tech, fleet[:1], "lock")
    status, body = _post(client, token_for, first, "/commands/freeze")
    assert status == 200 and body["state"] == "asked"
    session.refresh(lock)
    assert lock.status is CommandStatus.QUEUED
    assert _post(client, token_for, first, "/commands/freeze")[0] == 409
    status, body = _post(client, token_for, second, "/commands/freeze")
    assert status == 200 and body["state"] == "frozen"
    session.refresh(lock)
    assert lock.status is CommandStatus.CANCELLED
    assert _actions(session) == ["command.freeze_asked", "command.frozen"]


def test_no_one_lifts_the_freeze_with_an_account_they_have_just_made(
    session: Session,
    client: FlaskClient,
    school: School,
    head: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: lifting needs the head and one more person, each independent as any approver
    of a reset: a (stolen) administrator account cannot lift the freeze with a headteacher
    account it has just made, nor a head with an administrator it made; a settled, independent
    administrator can."""
    admin = settle(make_user(Role.ADMIN))
    settle(head)
    session.commit()
    assert _post(client, token_for, head, "/commands/freeze")[1]["state"] == "frozen"
    made = client.post(
        "/api/v1/users",
        json={
            "email": "new-head@oakfield.example",
            "name": "New Head",
            "role": "headteacher",
            "password": "a-long-enough-password-9",
        },
        headers=token_for(admin),
    )
    assert made.status_code == 201, made.get_json()
    puppet = session.get_one(User, made.get_json()["id"])
    assert _post(client, token_for, admin, "/commands/freeze/lift")[1]["state"] == "frozen"
    assert _post(client, token_for, puppet, "/commands/freeze/lift")[0] == 403
    settle(puppet)  # even once it has waited out the cooling-off, it is the asker's own
    session.commit()
    status, body = _post(client, token_for, puppet, "/commands/freeze/lift")
    assert status == 403 and "Someone independent must approve" in str(body)
    session.expire_all()
    assert session.scalars(select(FleetFreeze.state)).all() == [FreezeState.FROZEN]
    assert _post(client, token_for, head, "/commands/freeze/lift")[1]["state"] == "lifted"


def test_lifting_needs_the_head_and_one_more_person(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    tech: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: the head alone cannot lift, nor can two administrators; the head and one more
    (different) person can, and every device is told."""
    first, second = settle(make_user(Role.ADMIN)), settle(make_user(Role.ADMIN))
    settle(head)
    session.commit()
    assert _post(client, token_for, head, "/commands/freeze")[1]["state"] == "frozen"

    assert _post(client, token_for, first, "/commands/freeze/lift")[1]["state"] == "frozen"
    assert _post(client, token_for, second, "/commands/freeze/lift")[0] == 403
    assert _post(client, token_for, head, "/commands/freeze/lift")[1]["state"] == "lifted"
    assert services.issue(session, tech, fleet[:1], "lock")[0].status is CommandStatus.QUEUED

    assert _post(client, token_for, head, "/commands/freeze")[1]["state"] == "frozen"
    assert _post(client, token_for, head, "/commands/freeze/lift")[1]["state"] == "frozen"
    assert _post(client, token_for, head, "/commands/freeze/lift")[0] == 409
    assert _post(client, token_for, tech, "/commands/freeze/lift")[0] == 403  # not their role
    unfreeze = client.post(  # nor can anyone send a device its own lifting
        f"/api/v1/devices/{fleet[0].asset_tag}/commands",
        json={"type": "freeze", "args": {"enabled": False}},
        headers=token_for(tech),
    )
    assert unfreeze.status_code == 400
    assert _post(client, token_for, second, "/commands/freeze/lift")[1]["state"] == "lifted"
    lifts = [c for c in _commands(session, school.id, "freeze") if not c.args["enabled"]]
    assert len(lifts) == 2 * len(fleet)
    assert _actions(session) == [
        "command.frozen",
        "command.freeze_lift_asked",
        "command.freeze_lifted",
        "command.frozen",
        "command.freeze_lift_asked",
        "command.freeze_lifted",
    ]


def test_an_unconfirmed_request_lapses_after_a_day(
    session: Session, school: School, make_user: Callable[..., User]
) -> None:
    """A request nobody confirmed does not wait for ever for a second (perhaps stolen) account."""
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)
    asked = services.freeze(session, first, now=utcnow() - timedelta(hours=25))
    again = services.freeze(session, second)
    assert again.id != asked.id and again.state.value == "asked"
    session.refresh(asked)
    assert asked.state.value == "lapsed"


def test_the_freeze_page_and_the_banner_on_every_page(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
) -> None:
    """The commands page leads to the freeze; once frozen, every page says so to everyone."""
    log_in_as(client, head)
    assert "/commands/freeze" in client.get("/commands").get_data(as_text=True)
    page = client.get("/commands/freeze").get_data(as_text=True)
    assert "Nothing is frozen." in page and "Freeze now" in page
    token = csrf_token(client, "/commands/freeze")
    answer = post_confirmed(client, "/commands/freeze", {"csrf_token": token, "reason": "Phished"})
    assert answer.status_code == 302
    frozen = client.get("/commands/freeze").get_data(as_text=True)
    assert "Destructive commands are frozen" in frozen
    # The time is on the school's clock already: calling it "UTC" would be wrong half the year.
    assert "UTC" not in frozen and "Frozen</strong> since " in frozen
    teacher = make_user(Role.TEACHER)
    other = client.application.test_client()
    log_in_as(other, teacher)
    home = other.get("/").get_data(as_text=True)
    assert "Destructive commands are frozen." in home and "UTC" not in home
    assert other.post("/commands/freeze", data={"csrf_token": "x"}).status_code in (400, 403)
