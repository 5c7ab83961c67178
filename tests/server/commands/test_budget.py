"""The fleet-disruption budget on SQLite and PostgreSQL: one stolen account cannot take the
demo school's 89 devices out of use, alone or in small pieces, and the head hears of it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.auth.services import create_user
from server.commands import services
from server.commands.models import Command, CommandStatus
from server.config import Settings
from server.db import Database, utcnow
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity
from server.errors import Forbidden, RateLimited
from server.notifications.models import EmailMessage, Notification
from server.notifications.services import send_due_email
from server.schools.models import School
from server.schools.services import create_school
from tests.server.conftest import new_device

# The real SMTP server of the notifications suite (its fixtures, whatever they grow to need).
from tests.server.notifications.conftest import *  # noqa: F403
from tests.server.notifications.conftest import MailServer

FLEET = 89  # the demo school the attacks were tried on


def add_fleet(session: Session, school_id: int, count: int) -> list[Device]:
    """`count` devices, each with a live device identity so commands can reach it."""
    devices = [
        new_device(school_id, f"OAK-{n:03d}", f"SN{uuid.uuid4().hex[:10].upper()}")
        for n in range(count)
    ]
    session.add_all(devices)
    session.flush()
    session.add_all(
        DeviceIdentity(
            school_id=school_id,
            device_id=device.id,
            mqtt_id=f"dev-{uuid.uuid4().hex[:12]}",
            public_key="test-key",
            kid="test-kid",
            broker_secret_hash="h",
            platform="simulated",
        )
        for device in devices
    )
    session.commit()
    return devices


@pytest.fixture
def fleet(session: Session, school: School) -> list[Device]:
    return add_fleet(session, school.id, FLEET)


@pytest.fixture
def head(make_user: Callable[..., User]) -> User:
    return make_user(Role.HEADTEACHER, email="head@oakfield.example")


def _statuses(session: Session, school_id: int) -> Counter[CommandStatus]:
    session.expire_all()
    return Counter(session.scalars(select(Command.status).where(Command.school_id == school_id)))


def _alerts(session: Session, user: User) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.user_id == user.id, Notification.kind == "commands.budget")
            .order_by(Notification.id)
        )
    )


# --- the attacks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "body"),
    [
        (Role.TECHNICIAN, {"type": "lock", "args": {"message": "Locked. Pay 2 BTC to unlock."}}),
        (
            Role.COMPUTING_LEAD,
            {"type": "lost_mode", "args": {"enabled": True, "message": "Send 2 BTC to unlock."}},
        ),
    ],
)
def test_one_stolen_token_cannot_take_the_whole_fleet_out_of_use(
    role: Role,
    body: dict[str, object],
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: locking, or lost mode with the attacker's message, on all 89 devices in one
    request is refused outright; nothing is sent, and the head is told and it is in the trail."""
    thief = make_user(role)
    answer = client.post(
        "/api/v1/commands/fleet",
        json={**body, "asset_tags": [d.asset_tag for d in fleet], "reason": "maintenance"},
        headers=token_for(thief),
    )
    assert answer.status_code == 429, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["error"]["code"] == "fleet_budget"
    assert _statuses(session, school.id) == Counter()
    (alert,) = _alerts(session, head)
    assert alert.title.startswith("Refused:") and f"{FLEET} device(s)" in alert.title
    assert thief.name in alert.title
    trail = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "command.budget_reached")
    ).one()
    assert trail.actor_id == thief.id
    assert trail.details["count"] == FLEET and trail.details["verdict"] == "refused"


def test_photo_wipes_ten_at_a_time_wait_for_a_second_person(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-SEC-1: split into requests of ten, wipes still count together (pending ones too): only
    the first ten go alone, every later request waits and alerts the head."""
    headers = token_for(make_user(Role.TECHNICIAN))
    answers = [
        client.post(
            "/api/v1/commands/fleet",
            json={"type": "wipe_photos", "asset_tags": [d.asset_tag for d in fleet[n : n + 10]]},
            headers=headers,
        )
        for n in range(0, FLEET, 10)
    ]
    assert {a.status_code for a in answers} == {202}
    statuses = _statuses(session, school.id)
    assert statuses == {CommandStatus.QUEUED: 10, CommandStatus.PENDING_APPROVAL: FLEET - 10}
    assert len(_alerts(session, head)) == len(answers) - 1


def test_a_whole_fleet_wipe_may_wait_but_a_second_one_is_refused(
    session: Session,
    school: School,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
) -> None:
    """An end-of-term wipe of every device waits for approval; asking again that day is refused."""
    lead = make_user(Role.COMPUTING_LEAD)
    first = services.issue(session, lead, fleet, "wipe_photos")
    assert {c.status for c in first} == {CommandStatus.PENDING_APPROVAL}
    with pytest.raises(RateLimited, match="more than 100 an hour for one person"):
        services.issue(session, lead, fleet[:20], "wipe_photos")
    assert _statuses(session, school.id) == {CommandStatus.PENDING_APPROVAL: FLEET}
    assert [a.title.split(":")[0] for a in _alerts(session, head)] == [
        "Waiting for a second person",
        "Refused",
    ]


def test_locks_past_the_school_figure_wait_even_from_different_people(
    session: Session, school: School, fleet: list[Device], make_user: Callable[..., User]
) -> None:
    """Five locks an hour for the whole school: four people locking three each cannot all go
    alone, although each stays within what one person may do."""
    people = [make_user(Role.TECHNICIAN) for _ in range(4)]
    for n, person in enumerate(people):
        services.issue(session, person, fleet[n * 3 : n * 3 + 3], "lock")
    assert _statuses(session, school.id) == {
        CommandStatus.QUEUED: 3,  # the second three would make six in the hour
        CommandStatus.PENDING_APPROVAL: 9,
    }


def test_yesterdays_commands_no_longer_count(
    session: Session, school: School, fleet: list[Device], make_user: Callable[..., User]
) -> None:
    """The windows slide: what one person asked for more than a day ago is forgotten."""
    tech = make_user(Role.TECHNICIAN)
    services.issue(session, tech, fleet[:3], "lock", now=utcnow() - timedelta(days=1, minutes=1))
    (today,) = services.issue(session, tech, fleet[3:4], "lock")
    assert today.status is CommandStatus.QUEUED


# --- what a school does every day needs nobody else ----------------------------------------


def test_daily_work_needs_nobody_else(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-PHOTO-1, P-LOSS-3: a teacher's wipes at return (a whole trolley, twice), and a technician
    locking one device, go at once with no second person and no alert."""
    teacher = make_user(Role.TEACHER)
    for _lesson in range(2):
        for device in fleet[:30]:
            (wipe,) = services.issue(
                session,
                teacher,
                [device],
                "wipe_photos",
                reason="Returned to Hall trolley",
                on_return=True,
            )
            assert wipe.status is CommandStatus.QUEUED
    answer = client.post(
        f"/api/v1/devices/{fleet[40].asset_tag}/commands",
        json={"type": "lock"},
        headers=token_for(make_user(Role.TECHNICIAN)),
    )
    assert answer.status_code == 202 and answer.get_json()["status"] == "queued"
    assert _alerts(session, head) == []


def test_one_loss_report_puts_its_device_into_lost_mode_at_once(
    session: Session, fleet: list[Device], head: User, make_user: Callable[..., User]
) -> None:
    """P-LOSS-3: the lost mode a loss report asks for goes at once, with nobody else."""
    from server.losses.models import LossKind
    from server.losses.services import report_loss

    sbm = make_user(Role.SBM)
    now = utcnow()
    loss = report_loss(
        session,
        sbm,
        asset_tag=fleet[0].asset_tag,
        kind=LossKind.LOST,
        last_seen_at=now - timedelta(hours=1),
        last_seen_where="Hall",
        circumstances="Not back in the trolley.",
        now=now,
    )
    (command,) = session.scalars(
        select(Command).where(Command.device_id == loss.device_id, Command.type == "lost_mode")
    ).all()
    assert command.status is CommandStatus.QUEUED


def test_a_teachers_fourth_loss_report_in_an_hour_waits_for_the_headteacher(
    session: Session, fleet: list[Device], head: User, make_user: Callable[..., User]
) -> None:
    """P-LOSS-3, P-SEC-1: a teacher's token filed 93 loss reports in two seconds and lost-moded
    72 devices. Three reports in an hour lock their devices at once; the fourth's lost mode
    waits for the headteacher, and nobody else (a technician) may let it go."""
    from server.losses.models import LossKind
    from server.losses.services import report_loss
    from tests.server.conftest import settle

    teacher = make_user(Role.TEACHER)
    technician = settle(make_user(Role.TECHNICIAN))
    settle(head)
    session.commit()
    now = utcnow()
    for device in fleet[:4]:
        report_loss(
            session,
            teacher,
            asset_tag=device.asset_tag,
            kind=LossKind.LOST,
            last_seen_at=now - timedelta(hours=1),
            last_seen_where="Hall",
            circumstances="Not back in the trolley.",
            now=now,
        )
    lost_modes = session.scalars(
        select(Command).where(Command.type == "lost_mode").order_by(Command.id)
    ).all()
    assert [c.status for c in lost_modes] == [CommandStatus.QUEUED] * 3 + [
        CommandStatus.PENDING_APPROVAL
    ]
    waiting = lost_modes[3]
    assert waiting.approver_role is Role.HEADTEACHER
    (alert,) = _alerts(session, head)
    assert alert.title.startswith("Waiting for a second person: Teacher Person")
    with pytest.raises(Forbidden, match="Only the headteacher"):
        services.approve(session, technician, command_id=waiting.id, stepped_up_at=utcnow())
    session.rollback()
    assert services.approve(session, head, command_id=waiting.id, stepped_up_at=utcnow()) == [
        waiting.id
    ]
    assert waiting.status is CommandStatus.QUEUED


def test_approving_a_batch_writes_every_row_and_what_was_loaded_reads_it(
    session: Session,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
) -> None:
    """P-SEC-1: a whole-fleet wipe approved by a second person: every row becomes queued with
    the approver and the time, which the commands the request had loaded then say too; an expiry
    that a long wait brought close is given the type's full life again, and a later one is left
    as it was."""
    from server.commands.services.catalogue import TTL
    from tests.server.conftest import settle

    technician = make_user(Role.TECHNICIAN)
    settle(head)
    session.commit()
    asked_at = utcnow() - timedelta(days=6)  # a wipe lives a week: this one has a day left
    issued = services.issue(session, technician, fleet, "wipe_photos", now=asked_at)
    assert {c.status for c in issued} == {CommandStatus.PENDING_APPROVAL}
    later = issued[0]
    later.expires_at = utcnow() + timedelta(days=30)  # already beyond a week from now
    session.commit()
    now = utcnow()
    approved = services.approve(
        session, head, batch_id=issued[0].batch_id, stepped_up_at=now, now=now
    )
    assert approved == sorted(c.id for c in issued)
    loaded = {c.id: (c.status, c.approved_by_id, c.approved_at, c.expires_at) for c in issued}
    session.expire_all()
    stored = {
        c.id: (c.status, c.approved_by_id, c.approved_at, c.expires_at)
        for c in session.scalars(select(Command).where(Command.batch_id == issued[0].batch_id))
    }
    assert stored == loaded and len(stored) == FLEET
    assert {row[:3] for row in stored.values()} == {(CommandStatus.QUEUED, head.id, now)}
    week = now + TTL["wipe_photos"]
    assert {row[3] for i, row in stored.items() if i != later.id} == {week}
    assert stored[later.id][3] > week


# --- many small requests at once ------------------------------------------------------------


@pytest.mark.parametrize(
    ("command_type", "per_request", "alone"), [("lock", 1, 3), ("wipe_photos", 2, 10)]
)
def test_parallel_small_batches_cannot_all_slip_under_the_figure(
    live_url: str, command_type: str, per_request: int, alone: int
) -> None:
    """P-SEC-1: many small requests by one person at the same instant are counted one after
    another (the school is locked while its budget is weighed), so only `alone` go unapproved."""
    threads_n = 12
    database = Database(live_url)
    try:
        with database.begin() as session:
            school = create_school(session, slug=f"s{uuid.uuid4().hex[:8]}", name="Busy Primary")
            tech = create_user(
                session,
                actor=None,
                school=school,
                email=f"t{uuid.uuid4().hex[:6]}@busy.example",
                name="Tech",
                role=Role.TECHNICIAN,
                password="long-password-1",
            )
            session.flush()
            school_id, tech_id = school.id, tech.id
        with database.begin() as session:
            ids = [d.id for d in add_fleet(session, school_id, threads_n * per_request)]
        start = threading.Barrier(threads_n)
        errors: list[BaseException] = []

        def send(chunk: list[int]) -> None:
            try:
                start.wait(timeout=30)
                with database.session() as session:
                    actor = session.get(User, tech_id)
                    devices = [session.get(Device, i) for i in chunk]
                    services.issue(session, actor, devices, command_type)  # type: ignore[arg-type]
            except BaseException as exc:  # the test reports it
                errors.append(exc)

        chunks = [ids[n : n + per_request] for n in range(0, len(ids), per_request)]
        threads = [threading.Thread(target=send, args=(chunk,)) for chunk in chunks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        with database.begin() as session:
            counts = Counter(
                session.scalars(select(Command.status).where(Command.school_id == school_id))
            )
        assert counts == {
            CommandStatus.QUEUED: alone,
            CommandStatus.PENDING_APPROVAL: threads_n * per_request - alone,
        }
    finally:
        database.dispose()


# --- the head's e-mail ----------------------------------------------------------------------


def test_the_heads_email_says_who_what_and_how_many_and_nothing_typed(
    session: Session,
    client: FlaskClient,
    school: School,
    fleet: list[Device],
    head: User,
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-SEC-1, P-SEC-5: the alert reaches the head through a real mail server at once; the
    notice in Trolley names the account, the command and the count, and the e-mail carries no
    name and none of the request's own text."""
    thief = make_user(Role.TECHNICIAN)
    answer = client.post(
        "/api/v1/commands/fleet",
        json={
            "type": "lost_mode",
            "args": {"enabled": True, "message": "CANARY-MESSAGE call 07700 900123"},
            "asset_tags": [d.asset_tag for d in fleet],
            "reason": "CANARY-REASON Year 4 Oak, Amira's class",
        },
        headers=token_for(thief),
    )
    assert answer.status_code == 429
    assert send_due_email(session, mail_settings, utcnow()).sent == 1
    (received,) = mail_server.messages
    assert received.rcpt_tos == ["head@oakfield.example"]
    text = received.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    whole = f"{received.message['Subject']}\n{text}"
    assert "beyond the school's limits" in whole and "/commands/freeze" in whole
    for typed in (thief.name, "CANARY", "07700", "Amira", "Year 4", fleet[0].asset_tag):
        assert typed not in whole
    (notice,) = session.scalars(select(Notification).where(Notification.user_id == head.id)).all()
    shown = f"{notice.title}\n{notice.body}"
    assert thief.name in shown and "technician" in shown
    assert "lost mode" in shown and f"{FLEET} device(s)" in shown
    stored = session.scalar(select(func.count()).select_from(EmailMessage))
    assert stored == 1
