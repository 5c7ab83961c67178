"""Random GDPR spot checks: a fair draw from a recorded seed, and findings tell the teacher."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audits import services
from server.audits.models import SpotCheckItem
from server.auth.models import Role, User
from server.devices.models import Device, DeviceStatus
from server.devices.services import add_event
from server.errors import NotFound, ValidationFailed
from server.notifications.models import Notification
from tests.server.audits.conftest import NOW, Fleet


def _drawn(session: Session, check_id: int) -> list[int]:
    return list(
        session.scalars(
            select(SpotCheckItem.device_id)
            .where(SpotCheckItem.spot_check_id == check_id)
            .order_by(SpotCheckItem.position)
        )
    )


def test_the_draw_repeats_from_its_seed(session: Session, lead: User, fleet: Fleet) -> None:
    """P-PHOTO-3: the seed is recorded, so the draw can be repeated and shown to be fair."""
    fleet.y3_devices[0].status = DeviceStatus.IN_REPAIR  # only devices in service are drawn
    session.commit()
    check = services.draw_spot_check(session, lead, size=3, now=NOW)
    population = sorted(d.id for d in fleet.all if d.status is DeviceStatus.IN_SERVICE)
    assert check.population == population and check.population_size == 6
    assert _drawn(session, check.id) == random.Random(check.seed).sample(population, 3)
    assert services.verify_draw(session, check)
    again = services.draw_spot_check(session, lead, size=3, seed=check.seed, now=NOW)
    assert _drawn(session, again.id) == _drawn(session, check.id)
    other = services.draw_spot_check(session, lead, size=3, seed=check.seed + 1, now=NOW)
    assert other.seed != check.seed
    # Someone editing the record afterwards shows: the draw no longer repeats.
    first = session.scalar(
        select(SpotCheckItem).where(SpotCheckItem.spot_check_id == check.id).limit(1)
    )
    assert first is not None
    spare = next(i for i in population if i not in _drawn(session, check.id))
    first.device_id = spare
    session.commit()
    assert not services.verify_draw(session, check)


def test_bad_sample_sizes_and_seeds_are_refused(session: Session, lead: User, fleet: Fleet) -> None:
    for size in (0, 8, 101):
        with pytest.raises(ValidationFailed):
            services.draw_spot_check(session, lead, size=size)
    with pytest.raises(ValidationFailed, match="whole number"):
        services.draw_spot_check(session, lead, size=1, seed=-1)
    with pytest.raises(ValidationFailed, match="whole number"):
        services.draw_spot_check(session, lead, size=1, seed=2**63)


def _sample_of(session: Session, lead: User, device: Device) -> int:
    """A spot check whose sample is exactly `device` (the other devices are out of service)."""
    others = session.scalars(
        select(Device).where(Device.school_id == lead.school_id, Device.id != device.id)
    ).all()
    for other in others:
        other.status = DeviceStatus.IN_STOCK
    session.commit()
    return services.draw_spot_check(session, lead, size=1, now=NOW).id


def test_a_finding_tells_the_device_holder(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    """P-PHOTO-3: the checker records photos found; the class teacher (its holder) is told."""
    device = fleet.y4_devices[0]
    device.holder_id = teacher.id
    check_id = _sample_of(session, lead, device)
    item = services.record_spot_result(
        session,
        lead,
        check_id,
        device.asset_tag,
        photos_found=True,
        other_personal_data=False,
        note="Six photos from PE",
        now=NOW,
    )
    assert item.finding and item.notified_user_id == teacher.id
    notice = session.scalar(select(Notification).where(Notification.kind == "audit.spot_check"))
    assert notice is not None and notice.user_id == teacher.id
    assert "found photos on Y4-1" in notice.body and "who has it now" in notice.body
    # Recording it again does not tell them twice.
    services.record_spot_result(
        session, lead, check_id, device.asset_tag, photos_found=True, other_personal_data=True
    )
    told = session.scalars(select(Notification).where(Notification.kind == "audit.spot_check"))
    assert len(told.all()) == 1
    check = services.get_spot_check(session, lead.school_id, check_id)
    assert check.completed_at is not None


def test_without_a_holder_whoever_took_it_out_last_is_told(
    session: Session, lead: User, teacher: User, fleet: Fleet
) -> None:
    device = fleet.y4_devices[1]
    event = add_event(session, device, kind="loan_out", summary="Taken out", actor=teacher)
    event.at = NOW - timedelta(days=1)
    check_id = _sample_of(session, lead, device)
    item = services.record_spot_result(
        session, lead, check_id, "Y4-2", photos_found=False, other_personal_data=True, now=NOW
    )
    assert item.notified_user_id == teacher.id


def test_otherwise_the_trolleys_usual_teacher_or_the_computing_lead_is_told(
    session: Session,
    lead: User,
    teacher: User,
    fleet: Fleet,
    make_user: Callable[..., User],
) -> None:
    device = fleet.y3_devices[0]
    check_id = _sample_of(session, lead, device)
    item = services.record_spot_result(
        session, lead, check_id, "Y3-1", photos_found=True, other_personal_data=False, now=NOW
    )
    assert item.notified_user_id == lead.id  # nobody else is known: the computing lead
    loans = pytest.importorskip("server.loans.models", reason="the loans domain is not installed")
    other_teacher = make_user(Role.TEACHER)
    for n, who in enumerate((teacher, teacher, other_teacher)):
        session.add(
            loans.Loan(
                school_id=lead.school_id,
                teacher_id=who.id,
                trolley_id=fleet.y3.id,
                started_at=NOW - timedelta(days=n + 1),
                due_at=NOW - timedelta(days=n),
            )
        )
    session.commit()
    people, why = services.class_teacher(session, device, NOW)
    assert [p.id for p in people] == [teacher.id] and why == "who usually uses its trolley"


def test_results_only_for_devices_in_the_sample(session: Session, lead: User, fleet: Fleet) -> None:
    check_id = _sample_of(session, lead, fleet.y4_devices[0])
    with pytest.raises(NotFound, match="was not drawn"):
        services.record_spot_result(
            session, lead, check_id, "Y4-2", photos_found=False, other_personal_data=False
        )
    with pytest.raises(NotFound, match="No such spot check"):
        services.record_spot_result(
            session, lead, 999999, "Y4-1", photos_found=False, other_personal_data=False
        )


def _draw_and_record(client: Any, token: str, fleet: Fleet, **fields: str) -> str:
    """Draw a check through the page, record one drawn device's result; the drawn page."""
    drawn = client.post("/spot-checks", data={"csrf_token": token, **fields}, follow_redirects=True)
    page: str = drawn.get_data(as_text=True)
    assert drawn.status_code == 200, page
    tag = next(d.asset_tag for d in fleet.all if f">{d.asset_tag}</a>" in page)
    saved = client.post(
        f"{drawn.request.path}/items/{tag}",
        data={"csrf_token": token, "photos_found": "no", "other_personal_data": "no"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert f"{tag}: result recorded." in saved
    return page


def test_the_spot_check_pages(client: object, session: Session, lead: User, fleet: Fleet) -> None:
    from flask.testing import FlaskClient

    from tests.server.conftest import csrf_token, log_in_as

    assert isinstance(client, FlaskClient)
    log_in_as(client, lead)
    token = csrf_token(client, "/spot-checks")
    bad = client.post("/spot-checks", data={"csrf_token": token, "size": "0"})
    assert bad.status_code == 400 and "Between 1 and 100." in bad.get_data(as_text=True)
    page = _draw_and_record(client, token, fleet, size="2", seed="12345")
    assert "2 devices drawn at random" in page and "12345" in page and "Verified" in page


def test_the_sbm_draws_and_records_a_spot_check_but_a_teacher_cannot(
    client: object,
    session: Session,
    sbm: User,
    make_user: Callable[..., User],
    fleet: Fleet,
) -> None:
    """P-PHOTO-3: random checks are run "by the Computing Lead and the SBM" — not by teachers."""
    from flask.testing import FlaskClient

    from tests.server.conftest import csrf_token, log_in_as

    assert isinstance(client, FlaskClient)
    log_in_as(client, make_user(Role.TEACHER))
    assert client.post("/spot-checks", data={"size": "1"}).status_code in (400, 403)
    assert client.get("/spot-checks").status_code == 403
    log_in_as(client, sbm)
    page = _draw_and_record(client, csrf_token(client, "/spot-checks"), fleet, size="1")
    assert "1 device drawn at random" in page
