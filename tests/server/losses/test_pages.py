"""The loss pages: a teacher reports, the head assesses and decides, the record shows it all."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device, DeviceStatus
from server.losses import services
from server.losses.models import Decision, LossReport
from tests.server.conftest import csrf_token, log_in_as


def _local(minutes_ago: int) -> str:
    """A time as a date-and-time box sends it, on London's clocks."""
    from zoneinfo import ZoneInfo

    moment = utcnow() - timedelta(minutes=minutes_ago)
    return moment.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M")


def _report_form(client: FlaskClient, device: Device, **changes: str) -> dict[str, str]:
    data = {
        "csrf_token": csrf_token(client, f"/losses/new?asset_tag={device.asset_tag}"),
        "asset_tag": device.asset_tag,
        "kind": "lost",
        "last_seen_at": _local(90),
        "last_seen_where": "Year 4 classroom",
        "circumstances": "Missing from slot 12 after the lesson.",
        "police_reference": "",
    }
    data.update(changes)
    return data


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_a_teacher_reports_a_loss_from_the_device_page(
    session: Session,
    client: FlaskClient,
    teacher: User,
    head: User,
    device: Device,
) -> None:
    """P-LOSS-1: from the device page to a report the headteacher is told about at once."""
    log_in_as(client, teacher)
    page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert f'href="/losses/new?asset_tag={device.asset_tag}"' in page
    form = client.get(f"/losses/new?asset_tag={device.asset_tag}").get_data(as_text=True)
    assert f'value="{device.asset_tag}"' in form
    response = client.post("/losses/new", data=_report_form(client, device))
    assert response.status_code == 302
    loss = session.scalars(select(LossReport)).one()
    assert response.headers["Location"] == f"/losses/{loss.id}"
    page = _text(client.get(f"/losses/{loss.id}").get_data(as_text=True))
    assert "the headteacher has been told" in page
    assert "Lost mode not possible: device not enrolled" in page
    assert f"{head.name}, in Trolley" in page and "head@oakfield.example" in page
    assert "Waiting to send" in page
    assert "Breach assessment" not in page  # the head's part is the head's
    session.refresh(device)
    assert device.status is DeviceStatus.LOST
    again = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert f'href="/losses/{loss.id}"' in again


def test_bad_reports_get_clear_messages_and_write_nothing(
    session: Session,
    client: FlaskClient,
    teacher: User,
    head: User,
    device: Device,
    make_device: Callable[..., Device],
    report: Callable[..., LossReport],
) -> None:
    log_in_as(client, teacher)
    missing = client.post("/losses/new", data=_report_form(client, device, circumstances=""))
    assert missing.status_code == 400
    assert "Say what happened, as far as you know." in missing.get_data(as_text=True)
    future = client.post("/losses/new", data=_report_form(client, device, last_seen_at=_local(-90)))
    assert future.status_code == 400 and "cannot be in the future" in future.get_data(as_text=True)
    gone = make_device(status=DeviceStatus.DISPOSED)
    disposed = client.post("/losses/new", data=_report_form(client, gone))
    assert disposed.status_code == 400 and "was disposed of" in disposed.get_data(as_text=True)
    assert session.scalars(select(LossReport)).all() == []
    report(device)
    twice = client.post("/losses/new", data=_report_form(client, device))
    assert twice.status_code == 409
    assert "already has an open loss report" in twice.get_data(as_text=True)


def test_the_head_sees_the_countdown_assesses_decides_and_prints_the_record(
    session: Session,
    client: FlaskClient,
    head: User,
    device: Device,
    report: Callable[..., LossReport],
) -> None:
    """P-LOSS-2: countdown on the home page; assessment and decision; every step in the record."""
    loss = report(device, now=utcnow() - timedelta(minutes=10))
    log_in_as(client, head)
    home = client.get("/").get_data(as_text=True)
    assert f'href="/losses/{loss.id}"' in home and "data-deadline=" in home
    assert "71 h 49 min left" in home or "71 h 50 min left" in home
    page = client.get(f"/losses/{loss.id}").get_data(as_text=True)
    assert "3 photos, reported" in page and "Breach assessment" in page
    token = csrf_token(client, f"/losses/{loss.id}")
    assessed = client.post(
        f"/losses/{loss.id}/assessment",
        data={
            "csrf_token": token,
            "personal_data": "Three photos of pupils' work.",
            "risk": "unlikely",
            "risk_notes": "Passcode on; photos show work, not faces.",
        },
    )
    assert assessed.status_code == 302
    empty = client.post(
        f"/losses/{loss.id}/decision",
        data={"csrf_token": token, "decision": "no_report", "justification": "  "},
    )
    assert empty.status_code == 400
    assert "Write down why you decided this" in empty.get_data(as_text=True)
    session.refresh(loss)
    assert loss.decision is None
    closing = client.post(
        f"/losses/{loss.id}/close", data={"csrf_token": token, "outcome": "found"}
    )
    assert closing.status_code == 400
    assert "cannot close without a decision" in closing.get_data(as_text=True)
    decided = client.post(
        f"/losses/{loss.id}/decision",
        data={
            "csrf_token": token,
            "decision": "no_report",
            "justification": "Locked with a passcode; no faces in the photos.",
        },
    )
    assert decided.status_code == 302
    future = client.post(
        f"/losses/{loss.id}/awareness",
        data={"csrf_token": token, "aware_at": _local(-60), "reason": "Typed wrong"},
    )
    assert future.status_code == 400
    assert "cannot be in the future" in future.get_data(as_text=True)
    record = _text(client.get(f"/losses/{loss.id}/record").get_data(as_text=True))
    for step in (
        "Reported lost by",
        "Told Headteacher Person in Trolley",
        "E-mail to head@oakfield.example queued",
        "Breach assessment: unlikely to result in a risk to people",
        "Decision: not reportable to the ICO",
    ):
        assert step in record, step
    assert record.count(" on ") >= 5  # each step has its time
    session.refresh(loss)
    assert loss.decision is Decision.NO_REPORT


def test_governors_read_an_anonymised_loss_log(
    client: FlaskClient,
    make_user: Callable[..., User],
    device: Device,
    report: Callable[..., LossReport],
    teacher: User,
) -> None:
    report(device)
    governor = make_user(Role.GOVERNOR)
    log_in_as(client, governor)
    home = client.get("/").get_data(as_text=True)
    assert "Loss log" in home and "Report a lost or stolen device" not in home
    page = _text(client.get("/losses/log").get_data(as_text=True))
    assert device.model in page and "Decision pending" in page
    assert device.asset_tag not in page and teacher.name not in page
    assert client.get("/losses").status_code == 403


def test_the_head_sets_the_data_protection_officer(
    session: Session, client: FlaskClient, head: User
) -> None:
    log_in_as(client, head)
    token = csrf_token(client, "/losses/settings")
    bad = client.post("/losses/settings", data={"csrf_token": token, "dpo_email": "not an address"})
    assert bad.status_code == 400 and "e-mail address" in bad.get_data(as_text=True)
    good = client.post(
        "/losses/settings", data={"csrf_token": token, "dpo_email": "dpo@trust.example"}
    )
    assert good.status_code == 302
    assert services.dpo_email(session, head.school_id) == "dpo@trust.example"
