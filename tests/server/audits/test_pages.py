"""The audit pages: start, scan without scripts, condition, sign-off, report, CSV, home cards."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audits.models import Audit, AuditItem, AuditState
from server.auth.models import User
from server.devices.models import Device, DeviceStatus
from server.schools.models import Term
from tests.server.audits.conftest import Fleet
from tests.server.conftest import csrf_token, log_in_as, post_confirmed


def _audit(session: Session) -> Audit:
    audit = session.scalars(select(Audit).order_by(Audit.id.desc())).first()
    assert audit is not None
    session.refresh(audit)
    return audit


def test_the_computing_lead_runs_an_audit_through_the_pages(
    client: FlaskClient, session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    """P-AUDIT-1 / P-AUDIT-2: start, scan, condition, sign off, report, CSV and follow-ups."""
    log_in_as(client, lead)
    page = client.get("/audits").get_data(as_text=True)
    assert "Start an audit" in page and "Autumn 2025/26" in page
    assert '<title id="register-places-title">Devices by status in each place</title>' in page
    assert "Year 4 trolley: 4; Year 3 trolley: 3" in page  # the chart's description
    token = csrf_token(client, "/audits")
    term = re.search(r'<option selected value="(\d+)">', page) or re.search(
        r'<option value="(\d+)" selected>', page
    )
    assert term is not None
    started = client.post(
        "/audits", data={"csrf_token": token, "term_id": term.group(1), "scope": "school"}
    )
    assert started.status_code == 302 and "/scan" in started.headers["Location"]
    audit = _audit(session)
    scan_page = client.get(f"/audits/{audit.id}/scan").get_data(as_text=True)
    assert "Scan or type an asset tag" in scan_page and "0 / 7" in scan_page
    assert "0 / 4 — Year 4 trolley" in scan_page

    log_in_as(client, teacher)  # anyone on the staff can help scan
    token = csrf_token(client, f"/audits/{audit.id}/scan")
    done = client.post(
        f"/audits/{audit.id}/scan",
        data={"csrf_token": token, "code": "Y4-1", "location_id": fleet.y4.id},
        follow_redirects=True,
    )
    body = done.get_data(as_text=True)
    assert "Y4-1 verified in Year 4 trolley." in body and "Condition of" in body
    moved = client.post(
        f"/audits/{audit.id}/scan",
        data={"csrf_token": token, "code": "Y4-2", "location_id": fleet.y3.id},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "misplaced" in moved
    checked = client.post(
        f"/audits/{audit.id}/items/Y4-1/condition",
        data={"csrf_token": token, "case_on": "y", "charger": "y", "note": "Cracked corner"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Y4-1: damage noted (screen damaged, label unreadable, does not power on)." in checked
    assert client.get(f"/audits/{audit.id}").status_code == 403  # teachers read no reports

    log_in_as(client, lead)
    report = client.get(f"/audits/{audit.id}").get_data(as_text=True)
    assert 'role="img"' in report and '<title id="audit-states-title">' in report
    assert "2 / 4" in report and "Sign off the audit" in report
    token = csrf_token(client, f"/audits/{audit.id}")
    signed = post_confirmed(
        client, f"/audits/{audit.id}/close", {"csrf_token": token, "note": "All three trolleys"}
    )
    closed = client.get(signed.headers["Location"]).get_data(as_text=True)
    assert "signed off and locked" in closed and "Sign-off note:" in closed
    late = client.post(
        f"/audits/{audit.id}/scan",
        data={"csrf_token": token, "code": "Y4-3", "location_id": fleet.y4.id},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "so your scan of Y4-3 was not recorded" in late
    raised = post_confirmed(client, f"/audits/{audit.id}/follow-ups", {"csrf_token": token})
    follow = client.get(raised.headers["Location"]).get_data(as_text=True)
    assert "1 device sent for repair" in follow
    damaged = session.get(Device, fleet.y4_devices[0].id)
    assert damaged is not None
    session.refresh(damaged)
    assert damaged.status is DeviceStatus.IN_REPAIR
    csv = client.get(f"/audits/{audit.id}/report.csv")
    assert csv.mimetype == "text/csv" and "attachment" in csv.headers["Content-Disposition"]
    assert csv.data.startswith(b"\xef\xbb\xbfAsset tag,Model,")
    device_page = client.get("/devices/Y4-2").get_data(as_text=True)
    assert "Termly audits" in device_page and "Misplaced in Year 3 trolley" in device_page


def test_starting_needs_a_place_when_places_are_chosen(
    client: FlaskClient, session: Session, lead: User, fleet: Fleet, terms: dict[str, Term]
) -> None:
    log_in_as(client, lead)
    token = csrf_token(client, "/audits")
    refused = client.post(
        "/audits", data={"csrf_token": token, "term_id": terms["Spring"].id, "scope": "places"}
    )
    assert refused.status_code == 400
    assert "Tick at least one place" in refused.get_data(as_text=True)
    assert session.scalar(select(Audit.id)) is None


def test_the_sbm_countersigns_from_the_report(
    client: FlaskClient, session: Session, lead: User, sbm: User, fleet: Fleet
) -> None:
    from server.audits import services

    audit = services.start_audit(session, lead)
    services.close_audit(session, lead, audit.id)
    log_in_as(client, sbm)
    home = client.get("/").get_data(as_text=True)
    assert "Waiting for your countersignature" in home
    token = csrf_token(client, f"/audits/{audit.id}")
    signed = client.post(
        f"/audits/{audit.id}/countersign",
        data={"csrf_token": token, "note": "Checked against the asset register"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Countersigned. Thank you." in signed
    assert "Countersignature note:</strong> Checked against the asset register" in signed


def test_home_pages_show_the_overdue_audit_to_the_lead_and_the_head(
    client: FlaskClient, lead: User, head: User, teacher: User, fleet: Fleet
) -> None:
    """P-AUDIT-1: the last term's audit was never done: the lead and the head see it."""
    for user in (lead, head):
        log_in_as(client, user)
        home = client.get("/").get_data(as_text=True)
        assert "Overdue: the Summer 2025/26 audit was due by" in home, user.role
    log_in_as(client, teacher)
    assert "Overdue" not in client.get("/").get_data(as_text=True)


def test_the_scan_page_invites_staff_while_an_audit_is_open(
    client: FlaskClient, session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    from server.audits import services

    log_in_as(client, teacher)
    assert "Help scan" not in client.get("/").get_data(as_text=True)
    audit = services.start_audit(session, lead)
    home = client.get("/").get_data(as_text=True)
    assert "Help scan" in home and f"/audits/{audit.id}/scan" in home
    item = session.scalar(select(AuditItem).where(AuditItem.audit_id == audit.id))
    assert item is not None and item.state is AuditState.MISSING


def test_unknown_audits_are_a_plain_404(client: FlaskClient, lead: User, fleet: Fleet) -> None:
    log_in_as(client, lead)
    for path in ("/audits/999999", "/audits/999999/scan", "/audits/999999/report.csv"):
        response = client.get(path)
        assert response.status_code == 404 and "No such audit" in response.get_data(as_text=True)
