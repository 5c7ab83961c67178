"""Adding and correcting devices: every validation rule, serial warnings, money and dates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices import services
from server.devices.models import Device, DeviceStatus, Platform
from server.devices.services.parsing import parse_money, parse_uk_date
from server.errors import ValidationFailed
from server.schools.models import Location, School
from tests.server.devices.conftest import activity, events

IPAD = services.DeviceFields(
    asset_tag="OAK-IPAD-001",
    serial="DMPXK2ABCDEF",
    platform=Platform.IPADOS,
    make="Apple",
    model="iPad (10th generation)",
)


def fields_of(error: ValidationFailed) -> dict[str, str]:
    return {issue["field"]: issue["message"] for issue in error.details}


def refused(session: Session, actor: User, data: services.DeviceFields) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        services.create_device(session, actor, data)
    session.rollback()
    return fields_of(caught.value)


def test_a_new_device_is_in_the_register_with_its_facts(
    session: Session, sbm: User, trolley: Location
) -> None:
    """P-REG-1: tag, serial, make/model, platform, location, status and purchase facts are kept."""
    device, check = services.create_device(
        session,
        sbm,
        replace(
            IPAD,
            serial=" dmpx k2ab cdef ",
            purchase_date=date(2023, 8, 21),
            purchase_cost_pence=parse_money("£329.00"),
            supplier="XMA Ltd",
            warranty_until=date(2026, 8, 21),
            home_location_id=trolley.id,
            home_slot=4,
        ),
    )
    session.expire_all()
    stored = session.get(Device, device.id)
    assert stored is not None
    assert stored.serial == "DMPXK2ABCDEF"  # spaces out, capitals: how Apple prints it
    assert stored.purchase_cost_pence == 32900
    assert stored.home_location_id == stored.current_location_id == trolley.id
    assert stored.home_slot == 4 and stored.status is DeviceStatus.IN_SERVICE
    assert check.errors == [] and check.warnings == []
    assert [e.summary for e in events(session, stored)] == ["Added to the register"]
    [entry] = activity(session, "device.created")
    assert entry.target_id == "OAK-IPAD-001" and entry.actor_id == sbm.id


# The day after the test runs, not after it was collected: a run may pass midnight in between.
TOMORROW = object()


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"asset_tag": "OAK IPAD 1"}, "asset_tag", "letters, digits"),
        ({"asset_tag": "-OAK"}, "asset_tag", "letters, digits"),
        ({"asset_tag": "X" * 33}, "asset_tag", "1–32"),
        ({"serial": ""}, "serial", "serial number"),
        ({"serial": "S" * 65}, "serial", "64"),
        ({"make": "  "}, "make", "make"),
        ({"model": ""}, "model", "model"),
        ({"purchase_cost_pence": -1}, "purchase_cost_pence", "between £0"),
        ({"purchase_cost_pence": 10_000_001}, "purchase_cost_pence", "£100,000"),
        ({"purchase_date": TOMORROW}, "purchase_date", "future"),
        (
            {"purchase_date": date(2023, 9, 1), "warranty_until": date(2023, 8, 31)},
            "warranty_until",
            "before the purchase date",
        ),
        ({"home_slot": 3}, "home_slot", "home location"),
        ({"home_location_id": 999_999}, "home_location_id", "does not exist"),
    ],
)
def test_each_bad_detail_is_refused_against_its_field(
    session: Session, sbm: User, change: dict[str, Any], field: str, words: str
) -> None:
    """P-REG-1: nothing half-right gets into the register; each problem names its field."""
    tomorrow = date.today() + timedelta(days=1)
    change = {name: tomorrow if value is TOMORROW else value for name, value in change.items()}
    problems = refused(session, sbm, replace(IPAD, **change))
    assert field in problems and words in problems[field], problems
    assert session.query(Device).count() == 0


def test_asset_tags_and_serials_are_unique_per_school(
    session: Session,
    sbm: User,
    other_school: School,
    make_device: Callable[..., Device],
) -> None:
    """P-REG-1: a tag and a serial each name one device in a school's register."""
    make_device(asset_tag="OAK-IPAD-001", serial="FIRSTSERIAL1")
    problems = refused(session, sbm, replace(IPAD, serial="OTHERSERIAL1"))
    assert problems == {"asset_tag": "Asset tag OAK-IPAD-001 is already in the register."}
    problems = refused(session, sbm, replace(IPAD, asset_tag="OAK-IPAD-002", serial="firstserial1"))
    assert problems == {"serial": "Serial number FIRSTSERIAL1 is already in the register."}

    # Another school's tag is no obstacle.
    device, _check = services.create_device(
        session, sbm, replace(IPAD, asset_tag="ELM-001", serial="NEWSERIAL01")
    )
    assert device.school_id == sbm.school_id


def test_another_schools_serial_is_neither_revealed_nor_an_obstacle(
    session: Session,
    sbm: User,
    other_school: School,
    make_device: Callable[..., Device],
) -> None:
    """P-SEC-1 (attack: school B learnt A's serials and pre-registered them to block A's
    import): a serial another school registered is accepted and nothing says it exists."""
    make_device(in_school=other_school, asset_tag="ELM-001", serial="ELMSERIAL001")
    device, check = services.create_device(
        session, sbm, replace(IPAD, asset_tag="OAK-IPAD-002", serial="elmserial001")
    )
    assert device.serial == "ELMSERIAL001" and device.school_id == sbm.school_id
    assert check.errors == [] and all("ELMSERIAL001" not in w["message"] for w in check.warnings)
    # The same serial twice in one school is still refused.
    problems = refused(session, sbm, replace(IPAD, asset_tag="OAK-IPAD-003", serial="ELMSERIAL001"))
    assert problems == {"serial": "Serial number ELMSERIAL001 is already in the register."}
    # Only someone across the trust sees that two schools hold the serial.
    shared = services.shared_serials(session)
    assert {(s.serial, s.asset_tag) for s in shared} == {
        ("ELMSERIAL001", "ELM-001"),
        ("ELMSERIAL001", "OAK-IPAD-002"),
    }


@pytest.mark.parametrize(
    ("platform", "serial", "warned"),
    [
        (Platform.IPADOS, "DMPXK2ABCDEF", False),  # 12 characters: older Apple serials
        (Platform.IPADOS, "H7K2LQ9WXT", False),  # 10 characters: randomised, 2021 onwards
        (Platform.IPADOS, "PF2ABCDE", True),  # a Lenovo serial on an iPad
        (Platform.IPADOS, "DMP-XK2ABCD", True),
        (Platform.CHROMEOS, "PF2ABCDE", False),
        (Platform.CHROMEOS, "NXHQEEK00112345678ABCD", False),  # 22: Acer's long serials
        (Platform.CHROMEOS, "PF2AB", True),
        (Platform.CHROMEOS, "PF2AB-CDE", True),
        (Platform.LINUX, "anything-goes 1", False),
        (Platform.OTHER, "?", False),
    ],
)
def test_serials_that_look_wrong_for_the_platform_warn_but_save(
    session: Session, sbm: User, platform: Platform, serial: str, warned: bool
) -> None:
    device, check = services.create_device(
        session, sbm, replace(IPAD, platform=platform, serial=serial)
    )
    assert device.id is not None and check.errors == []
    assert bool(check.warnings) is warned
    if warned:
        assert check.warnings[0]["field"] == "serial"
        assert "please check it" in check.warnings[0]["message"]


def test_money_is_held_exactly_in_pence() -> None:
    """P-REG-1: purchase costs as typed in a spreadsheet, with no floating-point drift."""
    assert parse_money("£329.00") == 32900
    assert parse_money("329") == 32900
    assert parse_money("£1,299.99") == 129999
    assert parse_money("0.29") == 29  # float arithmetic would give 28
    assert parse_money(" £ 4.5 ") == 450
    assert parse_money("GBP 12.10") == 1210
    for bad in ("", "£", "12.345", "£-3", "3,29.0.0", "12abc", "1e3"):
        with pytest.raises(ValueError, match="not an amount of money"):
            parse_money(bad)


def test_dates_are_read_day_first_as_written_in_the_uk() -> None:
    assert parse_uk_date("01/09/2021") == date(2021, 9, 1)
    assert parse_uk_date("1/9/21") == date(2021, 9, 1)
    assert parse_uk_date("1.9.2021") == date(2021, 9, 1)
    assert parse_uk_date("1 Sept 2021") == date(2021, 9, 1)
    assert parse_uk_date("21st August 2023") == date(2023, 8, 21)
    assert parse_uk_date("2021-09-01") == date(2021, 9, 1)
    with pytest.raises(ValueError, match="not a real date"):
        parse_uk_date("31/02/2021")
    for bad in ("next Tuesday", "09/2021", "1 Smarch 2021", ""):
        with pytest.raises(ValueError, match="not a date like"):
            parse_uk_date(bad)


def test_editing_changes_only_the_details_and_keeps_old_and_new(
    session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    """P-REG-1: corrections are recorded in the device's history with what they replaced."""
    device = make_device(model="iPad 9", supplier=None)
    services.update_device(
        session,
        sbm,
        device,
        {"model": "iPad (9th generation)", "supplier": "XMA Ltd", "make": "Apple"},
    )
    [edit] = events(session, device, "edited")
    assert edit.details == {
        "changes": {"model": ["iPad 9", "iPad (9th generation)"], "supplier": [None, "XMA Ltd"]}
    }
    assert "model" in edit.summary and "supplier" in edit.summary and "make" not in edit.summary
    assert edit.actor_id == sbm.id
    [entry] = activity(session, "device.edited")
    assert entry.details["changes"]["model"] == ["iPad 9", "iPad (9th generation)"]

    # Saving the same values again is not a change.
    services.update_device(session, sbm, device, {"model": "iPad (9th generation)"})
    assert len(events(session, device, "edited")) == 1


@pytest.mark.parametrize("name", ["status", "home_location_id", "home_slot", "school_id"])
def test_home_and_status_are_not_edited_as_details(
    session: Session, sbm: User, make_device: Callable[..., Device], name: str
) -> None:
    """P-REG-2: where a device lives changes only through a move the SBM sees."""
    device = make_device()
    with pytest.raises(ValidationFailed) as caught:
        services.update_device(session, sbm, device, {name: 1})
    assert fields_of(caught.value) == {name: "not editable here"}


def test_an_edit_is_checked_like_a_new_device(
    session: Session, sbm: User, make_device: Callable[..., Device]
) -> None:
    first = make_device(asset_tag="OAK-1")
    second = make_device(asset_tag="OAK-2", purchase_date=date(2023, 9, 1))
    for changes, field in [
        ({"asset_tag": "OAK-1"}, "asset_tag"),
        ({"serial": first.serial}, "serial"),
        ({"warranty_until": date(2023, 1, 1)}, "warranty_until"),
        ({"model": None}, "model"),
        ({"serial": ""}, "serial"),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            services.update_device(session, sbm, second, changes)
        session.rollback()
        assert field in fields_of(caught.value), changes
    session.expire_all()
    assert session.get(Device, second.id).asset_tag == "OAK-2"  # type: ignore[union-attr]
    # Its own tag and serial are not duplicates of itself.
    services.update_device(session, sbm, second, {"asset_tag": "OAK-2", "serial": second.serial})
