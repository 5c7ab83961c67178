"""A device seen on a network outside school, not on an approved home loan, is flagged to the
SBM and the headteacher at once (P-TROLLEY-2, P-REG-3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from server.auth.models import User
from server.commands import services as commands
from server.devices import services as devices
from server.devices.models import Device, DeviceEvent
from server.enrolment.models import DeviceIdentity
from server.errors import ValidationFailed
from server.loans import services as loans
from server.notifications.models import EmailMessage, Notification
from server.schools import services as schools
from server.schools.models import Location, School, SchoolNetwork
from tests.server.conftest import csrf_token, log_in_as
from tests.server.loans.conftest import network_report, report_network

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def _told(session: Session, *users: User) -> list[tuple[int, str]]:
    session.expire_all()
    return [
        (n.user_id, n.title)
        for n in session.scalars(
            select(Notification)
            .where(Notification.kind == "loans.off_site")
            .order_by(Notification.id)
        )
        if n.user_id in {u.id for u in users}
    ]


@pytest.fixture
def school_wifi(session: Session, sbm: User, trolley: Location) -> None:
    site = trolley.parent.parent if trolley.parent else None
    schools.add_network(session, sbm, site_id=site.id if site else None, ssid="OAKFIELD-STAFF")


def test_a_device_on_another_network_tells_the_sbm_and_head_once(
    session: Session,
    fleet: list[Device],
    enrol: Callable[[Device], DeviceIdentity],
    sbm: User,
    head: User,
    teacher: User,
    school_wifi: None,
) -> None:
    """P-TROLLEY-2: seen off-site without a home loan; told once per trip, not per report."""
    identity = enrol(fleet[0])
    report_network(identity, NOW, ssid="OAKFIELD-STAFF", gateway="10.0.0.1")
    session.commit()
    assert _told(session, sbm, head, teacher) == []
    assert devices.network_of(session, fleet[0]).off_site is False  # type: ignore[union-attr]

    report_network(identity, NOW + timedelta(hours=1), ssid="Costa-Guest", gateway="192.168.4.1")
    report_network(identity, NOW + timedelta(hours=2), ssid="Costa-Guest", gateway="192.168.4.1")
    session.commit()
    title = f"{fleet[0].asset_tag} seen outside school"
    assert _told(session, sbm, head, teacher) == [(sbm.id, title), (head.id, title)]
    network = devices.network_of(session, fleet[0])
    assert network is not None and network.off_site is True
    assert network.off_site_since == NOW + timedelta(hours=1)
    event = session.scalars(
        select(DeviceEvent).where(
            DeviceEvent.device_id == fleet[0].id, DeviceEvent.kind == "off_site"
        )
    ).one()
    assert "Costa-Guest" in event.summary
    # P-SEC-5: the e-mail says the kind and the tag, never the network or a name.
    mails = session.scalars(select(EmailMessage)).all()
    assert len(mails) == 2 and all("Costa" not in m.body_text + m.subject for m in mails)

    # Back in school, then out again: a new trip is told again.
    report_network(identity, NOW + timedelta(hours=3), ssid="OAKFIELD-STAFF")
    report_network(identity, NOW + timedelta(hours=4), ssid="Home-Wifi")
    session.commit()
    assert len(_told(session, sbm, head)) == 4


def test_a_device_on_an_approved_home_loan_may_be_off_site(
    session: Session,
    fleet: list[Device],
    enrol: Callable[[Device], DeviceIdentity],
    teacher: User,
    sbm: User,
    head: User,
    school_wifi: None,
) -> None:
    """P-TROLLEY-2's exception: an approved home loan is expected outside school."""
    identity = enrol(fleet[0])
    loan = loans.request_home_loan(
        session,
        teacher,
        asset_tags=[fleet[0].asset_tag],
        return_by=(NOW + timedelta(days=3)).date(),
        reason="Learning at home",
        base_url="http://127.0.0.1:5000",
        now=NOW,
    )
    loans.decide_home_loan(session, sbm, loan.id, approve=True, now=NOW)
    report_network(identity, NOW + timedelta(hours=1), ssid="Home-Wifi")
    session.commit()
    assert _told(session, sbm, head) == []
    network = devices.network_of(session, fleet[0])
    assert network is not None and network.off_site is True and network.ssid == "Home-Wifi"


def test_without_a_list_of_school_networks_nothing_is_called_off_site(
    session: Session,
    fleet: list[Device],
    enrol: Callable[[Device], DeviceIdentity],
    sbm: User,
    head: User,
) -> None:
    """ "Not known" is a valid answer: no list, no verdict, no alert."""
    identity = enrol(fleet[0])
    report_network(identity, NOW, ssid="Costa-Guest")
    session.commit()
    network = devices.network_of(session, fleet[0])
    assert network is not None and network.off_site is None and network.ssid == "Costa-Guest"
    assert _told(session, sbm, head) == []


def test_a_late_older_report_does_not_move_the_device(
    session: Session,
    fleet: list[Device],
    enrol: Callable[[Device], DeviceIdentity],
    sbm: User,
    head: User,
    school_wifi: None,
) -> None:
    identity = enrol(fleet[0])
    report_network(identity, NOW, ssid="OAKFIELD-STAFF")
    report_network(identity, NOW - timedelta(hours=1), ssid="Costa-Guest")
    session.commit()
    network = devices.network_of(session, fleet[0])
    assert network is not None and network.ssid == "OAKFIELD-STAFF" and network.off_site is False
    assert _told(session, sbm, head) == []


def test_school_networks_are_checked_and_public_ranges_judge_an_address(
    session: Session, sbm: User
) -> None:
    with pytest.raises(ValidationFailed):
        schools.add_network(session, sbm, site_id=None)
    with pytest.raises(ValidationFailed):
        schools.add_network(session, sbm, site_id=None, public_range="the office")
    schools.add_network(session, sbm, site_id=None, public_range="81.2.69.0/24")
    on = schools.on_school_network
    assert on(session, sbm.school_id, public_address="81.2.69.160") is True
    assert on(session, sbm.school_id, public_address="203.0.113.9") is False
    assert on(session, sbm.school_id, ssid="Anything") is None  # no Wi-Fi names listed


def test_the_networks_page_lists_adds_and_removes(
    client: FlaskClient, session: Session, sbm: User, teacher: User
) -> None:
    log_in_as(client, sbm)
    page = client.get("/locations/networks")
    assert page.status_code == 200 and "No networks listed yet" in page.text
    token = csrf_token(client, "/locations/networks")
    added = client.post(
        "/locations/networks",
        data={"csrf_token": token, "site_id": "", "ssid": "OAKFIELD-STAFF", "public_range": ""},
    )
    assert added.status_code == 302
    (network,) = schools.networks(session, sbm.school_id)
    assert "OAKFIELD-STAFF" in client.get("/locations/networks").text
    bad = client.post(
        "/locations/networks",
        data={"csrf_token": token, "site_id": "", "ssid": "", "public_range": "nowhere"},
    )
    assert bad.status_code == 400 and "not an internet address" in bad.text
    removed = client.post(f"/locations/networks/{network.id}/remove", data={"csrf_token": token})
    assert removed.status_code == 302 and schools.networks(session, sbm.school_id) == []
    log_in_as(client, teacher)
    assert (
        client.post("/locations/networks", data={"csrf_token": token, "ssid": "X"}).status_code
        == 403
    )


def test_a_workers_batch_is_judged_with_one_read_of_the_schools_networks(
    session: Session,
    fleet: list[Device],
    enrol: Callable[[Device], DeviceIdentity],
    make_device: Callable[..., Device],
    other_school: School,
    sbm: User,
    head: User,
    school_wifi: None,
) -> None:
    """P-TROLLEY-2: each report in a batch is judged by its own school's list, read once."""
    session.add(SchoolNetwork(school_id=other_school.id, ssid="ELM-STAFF"))
    elm = make_device(in_school=other_school, asset_tag="ELM-0001", serial="ELM1")
    devices_said = [
        (fleet[0], "OAKFIELD-STAFF"),
        (fleet[1], "Costa-Guest"),
        (fleet[2], "ELM-STAFF"),  # another school's Wi-Fi is not this school's
        (elm, "ELM-STAFF"),
    ]
    batch = [
        (identity := enrol(device), network_report(identity, NOW, ssid=ssid))
        for device, ssid in devices_said
    ]
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM school_networks" in statement:
            reads.append(statement)

    engine = session.get_bind().engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        commands.record_reports(session, batch, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    session.commit()
    rows = [devices.network_of(session, device) for device, _ssid in devices_said]
    assert [row.off_site if row else None for row in rows] == [False, True, True, False]
    assert len(reads) == 1
    told = {title for _user, title in _told(session, sbm, head)}
    assert told == {f"{fleet[n].asset_tag} seen outside school" for n in (1, 2)}
