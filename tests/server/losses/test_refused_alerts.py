"""A lost mode or reset the fleet budget refuses still tells the headteacher, though the work
around it is rolled back (P-SEC-1, P-LOSS-3)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.commands import services as commands
from server.commands.models import Command
from server.devices.models import Device
from server.losses.models import LossReport
from server.notifications.models import Notification
from tests.server.conftest import csrf_token, log_in_as, post_confirmed
from tests.server.losses.conftest import NOW


def _refusals(session: Session, head: User) -> list[str]:
    session.expire_all()
    return [
        n.title
        for n in session.scalars(
            select(Notification).where(
                Notification.user_id == head.id, Notification.kind == "commands.budget"
            )
        )
        if n.title.startswith("Refused")
    ]


def _small_school(
    make_device: Callable[..., Device], enrolled: Callable[[Device], Device]
) -> list[Device]:
    return [enrolled(make_device()), enrolled(make_device())]


def test_a_refused_lost_mode_still_tells_the_head(
    session: Session,
    head: User,
    technician: User,
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
    report: Callable[..., LossReport],
) -> None:
    """The school's two devices were locked today: a third lock-out (a loss report's lost mode)
    is refused. The report stands, and the headteacher hears of the refusal; before, the alert
    was rolled back with the lost mode."""
    devices = _small_school(make_device, enrolled)
    commands.issue(session, technician, devices, "lock", reason="Term end", now=NOW)
    loss = report(devices[0])
    assert loss.id is not None and loss.lost_mode_note
    assert "Lost mode not possible" in loss.lost_mode_note
    assert len(_refusals(session, head)) == 1


def test_a_refused_factory_reset_asked_on_the_case_page_still_tells_the_head(
    client: FlaskClient,
    session: Session,
    head: User,
    technician: User,
    make_device: Callable[..., Device],
    enrolled: Callable[[Device], Device],
    report: Callable[..., LossReport],
) -> None:
    """The head, having asked for ten factory resets this hour, asks for one more on a lost
    device's case page: the page says no, nothing is kept of the request, and the refusal is
    still in the head's alerts."""
    devices = [enrolled(make_device()) for _ in range(12)]
    loss = report(devices[0])
    commands.issue(session, head, devices[1:11], "factory_reset", reason="Recycling")
    before = session.query(Command).count()
    log_in_as(client, head)
    token = csrf_token(client, f"/losses/{loss.id}")
    answer = post_confirmed(
        client, f"/losses/{loss.id}/factory-reset", {"csrf_token": token, "reason": "Stolen"}
    )
    assert answer.status_code == 429, answer.get_data(as_text=True)[:500]
    assert session.query(Command).count() == before
    assert len(_refusals(session, head)) == 1
