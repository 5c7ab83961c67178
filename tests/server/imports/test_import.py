"""Importing the register: every bad row named, all or nothing, re-import updates (P-REG-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.devices.models import Device, DeviceEvent, DeviceStatus, Platform
from server.imports import services
from server.schools.models import Location, LocationKind, School
from tests.server.conftest import new_device
from tests.server.imports.conftest import HEADINGS, counts, device, ipad, make_csv, problems

Run = Callable[..., tuple[Any, Any]]


def test_a_clean_file_is_imported_with_every_fact(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """P-REG-1: tag, serial, make/model, platform, place, purchase facts and warranty kept."""
    data = make_csv(
        [
            ipad("OAK-001", "dmpxk2q1jf8j", Notes="Cracked corner"),
            ipad(
                "OAK-002",
                "PF3ABCDE",
                **{
                    "Make/Model": "Lenovo 300e Chromebook Gen 3",
                    "Purchase Date": "1 Sept 2021",
                    "Cost (£)": "265",
                    "Room": "Year 4 trolley",
                    "Warranty": "",
                },
            ),
        ]
    )
    plan, result = run_import(data)
    assert plan.ok, problems(plan)
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    first = device(session, school, "OAK-001")
    assert (first.serial, first.make, first.model) == (
        "DMPXK2Q1JF8J",
        "Apple",
        "iPad (9th generation)",
    )
    assert first.platform is Platform.IPADOS  # guessed from the model
    assert first.purchase_date == date(2021, 9, 1) and first.warranty_until == date(2024, 9, 1)
    assert first.purchase_cost_pence == 32900 and first.supplier == "XMA"
    assert first.home_location_id == first.current_location_id == places["classroom"].id
    assert first.notes == "Cracked corner" and first.status is DeviceStatus.IN_SERVICE
    second = device(session, school, "OAK-002")
    assert second.platform is Platform.CHROMEOS and second.make == "Lenovo"
    assert second.purchase_cost_pence == 26500 and second.home_location_id == places["trolley"].id
    events = session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == first.id)).all()
    assert [(e.kind, e.summary) for e in events] == [
        ("created", "Added to the register from register.csv")
    ]
    entry = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "devices.imported")
    ).one()
    assert entry.details["new"] == 2 and entry.school_id == school.id


def test_every_bad_row_is_named_by_row_and_column(
    session: Session,
    school: School,
    other_school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    """P-REG-1: the preview lists every problem with its row number, column and reason."""
    make_device(asset_tag="OLD-1", serial="DMPXK2Q1OLD1")
    make_device(asset_tag="OLD-2", serial="DMPXK2Q1OLD2")
    make_device(in_school=other_school, asset_tag="ELM-1", serial="ELMWOODSER01")
    rows = [
        ipad("OK-1", "SERIALOK0001"),  # row 2: fine
        ipad("DUP-1", "SERIALDUP001"),  # row 3
        ipad("DUP-1", "SERIALDUP002"),  # row 4: tag already on row 3
        ipad("SER-1", "SERIALDUP001"),  # row 5: serial already on row 3
        ipad("OLD-2", "DMPXK2Q1OLD1"),  # row 6: that serial is OLD-1's in the register
        ipad("NEW-2", "ELMWOODSER01"),  # row 7: fine (another school's serial is no bar)
        ipad("", "SERIALNOTAG1"),  # row 8: no asset tag
        ipad("NEW-3", "SERIALNEW003", **{"Cost (£)": "01/09/2021"}),  # row 9: date as cost
        ipad("NEW-4", "SERIALNEW004", **{"Purchase Date": "£329.00"}),  # row 10: money as date
        ipad("NEW-5", "SERIALNEW005", **{"Purchase Date": "31/02/2021"}),  # row 11
        ipad("NEW-6", "SERIALNEW006", Room="Year 5 classroom"),  # row 12: unknown place
        ipad("NEW-7", "SERIALNEW007", **{"Cost (£)": "lots"}),  # row 13
        ipad("NEW-8", "SERIALNEW008", **{"Make/Model": ""}),  # row 14: no make or model
        ipad('=HYPERLINK("http://x")', "SERIALNEW009"),  # row 15: formula for a tag
        ipad("NEW-10", "01/09/2021"),  # row 16: date in the serial column
    ]
    before = counts(session, school)
    plan, result = run_import(make_csv(rows))
    assert result is None and not plan.ok
    found = problems(plan)
    expected = [
        (4, "Asset No.", "Asset tag DUP-1 is also on row 3 of this file."),
        (5, "Serial Number", "Serial number SERIALDUP001 is also on row 3 of this file."),
        (
            6,
            "Serial Number",
            "Serial number DMPXK2Q1OLD1 belongs to OLD-1 in the register, not to OLD-2.",
        ),
        (8, "Asset No.", "The asset tag is empty; every device needs one."),
        (9, "Cost (£)", "This looks like a date, not a cost: are the columns in the right order?"),
        (
            10,
            "Purchase Date",
            "This looks like an amount of money, not a purchase date: are the columns in the "
            "right order?",
        ),
        (11, "Purchase Date", "This is not a real date: February 2021 has 28 days, not 31."),
        (13, "Cost (£)", "Write the cost like £329.00."),
        (14, "Make/Model", "The make is empty; every device needs one."),
        (
            15,
            "Asset No.",
            "This cell holds a spreadsheet formula, not a value. Trolley never runs formulas: "
            "type the value itself.",
        ),
        (
            16,
            "Serial Number",
            "This looks like a date, not a serial number: are the columns in the right order?",
        ),
    ]
    for problem in expected:
        assert problem in found, problem
    (unknown,) = [p for p in plan.problems if p.row == 12]
    assert unknown.column == "F" and "“Year 5 classroom” is not in Places yet" in unknown.message
    assert "as a room in Main site › Main building" in unknown.message
    assert plan.missing_places == {"Year 5 classroom": [12]}
    assert 2 not in plan.bad_rows and 3 not in plan.bad_rows  # the first of a pair is fine
    assert plan.bad_rows == [4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    assert counts(session, school) == before  # nothing half-imported
    assert not [p for p in plan.problems if p.row == 7]  # another school's serial says nothing


def test_one_bad_row_means_nothing_is_imported(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """P-REG-1: all or nothing — 99 good rows and one bad one import nothing."""
    rows = [ipad(f"T-{i:03d}", f"SERIAL{i:06d}") for i in range(99)]
    rows.append(ipad("T-BAD", "SERIALBAD001", **{"Purchase Date": "sometime"}))
    before = counts(session, school)
    plan, result = run_import(make_csv(rows))
    assert result is None and plan.bad_rows == [101]
    assert problems(plan) == [
        (101, "Purchase Date", "Write the date like 01/09/2021 or 1 Sept 2021.")
    ]
    assert counts(session, school) == before


def test_reimporting_updates_and_never_duplicates(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """P-REG-1: the same file again changes nothing; an edited file updates only what changed."""
    rows = [ipad(f"T-{i}", f"SERIAL{i:06d}") for i in range(5)]
    run_import(make_csv(rows))
    after_first = counts(session, school)
    plan, result = run_import(make_csv(rows))
    assert plan.summary == {"new": 0, "updated": 0, "unchanged": 5}
    assert (result.created, result.updated, result.unchanged) == (0, 0, 5)
    assert counts(session, school) == after_first  # no events, no activity entry either
    rows[2] = ipad("T-2", "SERIAL000002", **{"Cost (£)": "£349.99", "Supplier": "Stone"})
    plan, result = run_import(make_csv(rows))
    assert (result.created, result.updated, result.unchanged) == (0, 1, 4)
    changed = device(session, school, "T-2")
    assert changed.purchase_cost_pence == 34999 and changed.supplier == "Stone"
    edit = session.scalars(
        select(DeviceEvent).where(DeviceEvent.device_id == changed.id, DeviceEvent.kind == "edited")
    ).one()
    assert edit.details["changes"]["purchase_cost_pence"] == [32900, 34999]
    assert counts(session, school)[0] == 5


def test_a_device_is_matched_by_serial_when_its_tag_changed(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    old = make_device(asset_tag="OLD-TAG", serial="DMPXK2Q1JF8J", make="Apple", model="iPad")
    data = make_csv([ipad("NEW-TAG", "DMPXK2Q1JF8J")])
    plan, result = run_import(data)
    assert result is None and plan.retag_offers[0].current_tag == "OLD-TAG"
    plan, result = run_import(data, retag=["NEW-TAG"])  # the person chose “Re-tag”
    assert plan.ok and (result.created, result.updated) == (0, 1)
    session.refresh(old)
    assert old.asset_tag == "NEW-TAG" and counts(session, school)[0] == 1


def test_columns_the_file_lacks_keep_the_register_values(
    session: Session, school: School, make_device: Callable[..., Device], run_import: Run
) -> None:
    kept = make_device(asset_tag="K-1", serial="DMPXK2Q1JF8J", supplier="XMA", notes="Spare")
    data = make_csv(
        [["K-1", "DMPXK2Q1JF8J", "Apple", "iPad (10th generation)"]],
        ["Asset Tag", "S/N", "Make", "Model"],
    )
    plan, _result = run_import(data)
    assert plan.ok and plan.summary["unchanged"] == 1, problems(plan)
    session.refresh(kept)
    assert (kept.supplier, kept.notes, kept.platform) == ("XMA", "Spare", Platform.IPADOS)


def test_formulas_in_text_cells_are_kept_as_text_and_never_run(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """Bad input: =HYPERLINK(...) in a notes cell is stored as text, with a note to say so."""
    formula = '=HYPERLINK("http://evil.example","Click")'
    plan, result = run_import(
        make_csv([ipad("F-1", "DMPXK2Q1JF8J", Notes=formula, Supplier="@SUM(1+1)")])
    )
    assert plan.ok and result.created == 1
    stored = device(session, school, "F-1")
    assert stored.notes == formula and stored.supplier == "@SUM(1+1)"
    assert [(w.row, w.heading) for w in plan.warnings] == [(2, "Supplier"), (2, "Notes")]


@pytest.mark.parametrize("cell", ["=1+1", "+44", "@A1"])
def test_formulas_where_a_value_is_needed_are_refused(
    session: Session, school: School, run_import: Run, cell: str
) -> None:
    data = make_csv(
        [["T-1", "DMPXK2Q1JF8J", "Apple iPad", cell]], ["Asset", "Serial", "Device", "Price"]
    )
    plan, _ = run_import(data)
    assert problems(plan) == [
        (
            2,
            "Price",
            "This cell holds a spreadsheet formula, not a value. Trolley never runs formulas: "
            "type the value itself.",
        )
    ]


def test_windows_1252_pound_sign_is_imported_as_money(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """Bad input: a £ saved by Excel in Windows-1252 reads as £, not as a broken character."""
    data = make_csv([ipad("W-1", "DMPXK2Q1JF8J", **{"Cost (£)": "£1,299.50"})], encoding="cp1252")
    plan, _result = run_import(data)
    assert plan.ok and plan.encoding == "Windows-1252"
    assert device(session, school, "W-1").purchase_cost_pence == 129950


def test_missing_places_can_be_added_as_rooms(
    session: Session, school: School, places: dict[str, Location], sbm: User, run_import: Run
) -> None:
    data = make_csv(
        [
            ipad("P-1", "DMPXK2Q1JF8J", Room="Year 5 classroom"),
            ipad("P-2", "DMPXK2Q1JF8K", Room="year 5  classroom"),
        ]
    )
    plan, result = run_import(data, actor=sbm, create_locations=True)
    assert plan.ok, problems(plan)
    assert result.places_created == ["Year 5 classroom"]
    room = session.scalars(select(Location).where(Location.name == "Year 5 classroom")).one()
    assert room.kind is LocationKind.ROOM and room.parent_id == places["building"].id
    assert {device(session, school, t).home_location_id for t in ("P-1", "P-2")} == {room.id}


def test_new_rooms_go_under_a_chosen_parent(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    data = make_csv([ipad("P-1", "DMPXK2Q1JF8J", Room="Music room")])
    plan, _ = run_import(data, create_locations=True, location_parent_id=places["site"].id)
    assert plan.ok
    room = session.scalars(select(Location).where(Location.name == "Music room")).one()
    assert room.parent_id == places["site"].id
    plan, _ = run_import(
        make_csv([ipad("P-2", "DMPXK2Q1JF8K", Room="Art room")]),
        create_locations=True,
        location_parent_id=places["trolley"].id,
    )
    assert (1, None, "New rooms can only go in a site or a building.") in problems(plan)


def test_a_school_with_no_places_gets_a_site_for_new_rooms(
    session: Session, school: School, run_import: Run
) -> None:
    plan, _result = run_import(
        make_csv([ipad("P-1", "DMPXK2Q1JF8J", Room="Hall")]), create_locations=True
    )
    assert plan.ok and plan.places_parent == "a new site named after the school"
    hall = session.scalars(select(Location).where(Location.name == "Hall")).one()
    assert hall.parent is not None and hall.parent.name == school.name


def test_a_full_safe_is_refused(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """P-TROLLEY-3: a safe's capacity holds for imports too."""
    rows = [ipad(f"S-{i}", f"DMPXK2Q1JF8{i}", Room="Office safe") for i in range(3)]
    plan, _ = run_import(make_csv(rows))
    assert problems(plan) == [
        (4, "Room", "Office safe holds 2 devices and this file would put more there.")
    ]


def test_slots_must_exist_and_be_free(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    make_device(asset_tag="HOLDER", serial="HOLDER000001", home=places["trolley"], home_slot=3)
    headings = ["Asset", "Serial", "Device", "Location", "Slot"]
    rows = [
        ["S-1", "DMPXK2Q1JF81", "Apple iPad", "Year 4 trolley", "3"],
        ["S-2", "DMPXK2Q1JF82", "Apple iPad", "Year 4 trolley", "31"],
        ["S-3", "DMPXK2Q1JF83", "Apple iPad", "Year 4 classroom", "1"],
        ["S-4", "DMPXK2Q1JF84", "Apple iPad", "Year 4 trolley", "4"],
        ["S-5", "DMPXK2Q1JF85", "Apple iPad", "Year 4 trolley", "4"],
        ["S-6", "DMPXK2Q1JF86", "Apple iPad", "Year 4 trolley", "four"],
    ]
    plan, _ = run_import(make_csv(rows, headings))
    assert problems(plan) == [
        (2, "Slot", "Slot 3 in Year 4 trolley is HOLDER's; free it first."),
        (3, "Slot", "Slots in Year 4 trolley run from 1 to 30."),
        (4, "Slot", "Year 4 classroom has no numbered slots."),
        (6, "Slot", "Slot 4 in Year 4 trolley is also given on row 5."),
        (7, "Slot", "Write the slot as a number from 1."),
    ]


def test_only_the_sbm_moves_existing_devices_by_import(
    session: Session,
    school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    make_user: Callable[..., User],
    run_import: Run,
) -> None:
    """P-REG-2: a technician's import cannot change where a device lives; the SBM's can."""
    existing = make_device(asset_tag="M-1", serial="DMPXK2Q1JF8J", home=places["classroom"])
    data = make_csv(
        [ipad("M-1", "DMPXK2Q1JF8J", Room="School office"), ipad("M-2", "DMPXK2Q1JF8K")]
    )
    technician = make_user(Role.TECHNICIAN)
    plan, result = run_import(data, actor=technician)
    assert result is None and [p.row for p in plan.problems] == [2]
    assert "Only the school business manager" in plan.problems[0].message
    plan, result = run_import(data, actor=make_user(Role.SBM))
    assert plan.ok and (result.created, result.updated) == (1, 1)
    session.refresh(existing)
    assert existing.home_location_id == places["office"].id
    moved = session.scalars(
        select(DeviceEvent).where(DeviceEvent.device_id == existing.id, DeviceEvent.kind == "moved")
    ).one()
    assert moved.details["changes"]["home_location_id"] == [
        places["classroom"].id,
        places["office"].id,
    ]


def test_status_is_set_for_new_devices_only(
    session: Session,
    school: School,
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    make_device(asset_tag="ST-1", serial="DMPXK2Q1JF81", make="Apple", model="iPad")
    headings = ["Asset", "Serial", "Make", "Model", "Status"]
    rows = [
        ["ST-1", "DMPXK2Q1JF81", "Apple", "iPad", "In repair"],
        ["ST-2", "DMPXK2Q1JF82", "Apple", "iPad", "in_stock"],
        ["ST-3", "DMPXK2Q1JF83", "Apple", "iPad", "Disposed"],
        ["ST-4", "DMPXK2Q1JF84", "Apple", "iPad", "Broken"],
    ]
    plan, _ = run_import(make_csv(rows, headings))
    assert [(p.row, p.message.split(";")[0].split(":")[0]) for p in plan.problems] == [
        (4, "A disposed device cannot be added to the register."),
        (5, "Write one of"),
    ]
    assert (
        plan.warnings[0].row == 2
        and "does not change a device's status" in plan.warnings[0].message
    )
    plan, result = run_import(make_csv(rows[:2], headings))
    assert result.created == 1 and result.unchanged == 1
    assert device(session, school, "ST-1").status is DeviceStatus.IN_SERVICE
    assert device(session, school, "ST-2").status is DeviceStatus.IN_STOCK


def test_disposed_devices_are_not_changed_by_import(
    session: Session, school: School, make_device: Callable[..., Device], run_import: Run
) -> None:
    make_device(asset_tag="GONE-1", serial="DMPXK2Q1JF8J", status=DeviceStatus.DISPOSED)
    plan, _ = run_import(make_csv([ipad("GONE-1", "DMPXK2Q1JF8J", Room="")]))
    assert problems(plan) == [
        (2, "Asset No.", "GONE-1 has been disposed of; an import cannot change it.")
    ]


def test_mapping_must_name_the_asset_tag_and_serial(
    session: Session, school: School, run_import: Run
) -> None:
    data = make_csv([["T-1", "iPad"]], ["Kit", "Thing"])
    plan, _ = run_import(data)
    assert [p.message for p in plan.problems] == [
        "No column holds the asset tag: choose one.",
        "No column holds the serial number: choose one.",
        "No column holds the make: choose “Make” or “Make/Model”.",
        "No column holds the model: choose “Model” or “Make/Model”.",
    ]
    plan, _result = run_import(data, mapping=["asset_tag", "make_model"])
    assert {p.message for p in plan.problems} == {"No column holds the serial number: choose one."}
    plan, _ = run_import(
        make_csv([["T-1", "S", "iPad"]], ["A", "B", "C"]), mapping=["serial", "serial", "model"]
    )
    assert "“Serial number” is chosen for 2 columns; choose one." in [
        p.message for p in plan.problems
    ]


def test_a_row_split_by_a_comma_is_reported(
    session: Session, school: School, run_import: Run
) -> None:
    data = make_csv(
        [["T-1", "DMPXK2Q1JF8J", "Apple", "iPad", "9th gen"]], ["Asset", "Serial", "Make", "Model"]
    )
    plan, _ = run_import(data)
    assert (
        plan.problems[0].row == 2 and "5 cells but there are 4 headings" in plan.problems[0].message
    )


def test_blank_rows_are_skipped(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    data = make_csv([ipad("B-1", "DMPXK2Q1JF81"), [""] * 9, [], ipad("B-2", "DMPXK2Q1JF82")])
    plan, result = run_import(data)
    assert plan.ok and result.created == 2 and plan.rows_read == 2


def test_dry_run_changes_nothing(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    before = counts(session, school)
    plan, result = run_import(make_csv([ipad("D-1", "DMPXK2Q1JF8J")]), dry_run=True)
    assert plan.ok and plan.summary["new"] == 1 and result is None
    assert counts(session, school) == before


def test_same_tag_in_another_school_is_a_different_device(
    session: Session,
    school: School,
    other_school: School,
    places: dict[str, Location],
    make_device: Callable[..., Device],
    run_import: Run,
) -> None:
    """Every query is scoped: another school's OAK-1 is neither matched nor changed."""
    theirs = make_device(in_school=other_school, asset_tag="OAK-1", serial="ELMWOOD00001")
    plan, result = run_import(make_csv([ipad("OAK-1", "DMPXK2Q1JF8J")]))
    assert plan.ok and result.created == 1
    session.refresh(theirs)
    assert theirs.serial == "ELMWOOD00001" and theirs.school_id == other_school.id


def test_progress_is_reported(
    session: Session, school: School, places: dict[str, Location]
) -> None:
    seen: list[tuple[str, int, int]] = []
    rows = [ipad(f"T-{i}", f"SERIAL{i:06d}") for i in range(2_500)]
    services.import_file(
        session,
        school.id,
        make_csv(rows),
        actor=None,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    assert ("checking", 1_000, 2_500) in seen and ("checking", 2_500, 2_500) in seen
    assert seen[-1] == ("importing", 2_500, 2_500)


def test_checking_and_importing_do_not_query_per_row(
    session: Session, school: School, places: dict[str, Location]
) -> None:
    """Thousands of rows are checked against data loaded once and written in batches."""
    statements: list[str] = []
    bind = session.get_bind()

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    rows = [ipad(f"T-{i}", f"SERIAL{i:06d}") for i in range(2_000)]
    event.listen(bind, "before_cursor_execute", count)
    try:
        plan, result = services.import_file(session, school.id, make_csv(rows), actor=None)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert plan.ok and result.created == 2_000
    assert len(statements) < 60, len(statements)
    # and again: 2,000 unchanged devices are recognised without touching them
    statements.clear()
    event.listen(bind, "before_cursor_execute", count)
    try:
        plan, result = services.import_file(session, school.id, make_csv(rows), actor=None)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert result.unchanged == 2_000 and len(statements) < 20, len(statements)


def test_headings_only_file_imports_nothing(
    session: Session, school: School, run_import: Run
) -> None:
    plan, result = run_import(make_csv([], HEADINGS))
    assert plan.ok and result is not None and result.created == 0
    assert (
        session.scalars(
            select(ActivityEntry).where(ActivityEntry.action == "devices.imported")
        ).all()
        == []
    )


def test_a_clash_at_write_time_rolls_everything_back(
    session: Session,
    school: School,
    places: dict[str, Location],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the register changes between the check and the write, nothing is half-imported."""
    from server.errors import Conflict
    from server.imports.services import writing

    checked = writing.preview

    def then_a_device_arrives(*args: Any, **kwargs: Any) -> Any:
        """The school's own device with the file's serial arrives just after the check."""
        plan = checked(*args, **kwargs)
        session.add(new_device(school.id, "LATE-1", "DMPXK2Q1JF82"))
        session.flush()
        return plan

    monkeypatch.setattr(writing, "preview", then_a_device_arrives)
    before = counts(session, school)
    rows = [ipad("R-1", "DMPXK2Q1JF81"), ipad("R-2", "DMPXK2Q1JF82")]
    with pytest.raises(Conflict, match="nothing was imported"):
        services.import_file(session, school.id, make_csv(rows), actor=None)
    assert counts(session, school) == before


def test_places_are_found_by_name_or_by_path(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    from server.schools.services import add_location

    annexe = add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.BUILDING,
        name="Annexe",
        parent=places["site"],
    )
    add_location(
        session,
        actor=None,
        school_id=school.id,
        kind=LocationKind.ROOM,
        name="Year 4 classroom",
        parent=annexe,
    )
    session.commit()
    rows = [
        ipad("L-1", "DMPXK2Q1JF81", Room="Year 4 classroom"),
        ipad("L-2", "DMPXK2Q1JF82", Room="Main building › Year 4 classroom"),
        ipad("L-3", "DMPXK2Q1JF83", Room="Annexe > year 4 CLASSROOM"),
        ipad("L-4", "DMPXK2Q1JF84", Room="Nowhere › Year 4 classroom"),
    ]
    plan, _ = run_import(make_csv(rows))
    assert [(p.row, p.message) for p in plan.problems] == [
        (
            2,
            "More than one place is called that (Main site › Annexe › Year 4 classroom; "
            "Main site › Main building › Year 4 classroom): write the full path.",
        ),
        (5, "There is no place at that path in Places."),
    ]
    plan, result = run_import(make_csv(rows[1:3]))
    assert plan.ok and result.created == 2
    assert device(session, school, "L-2").home_location_id == places["classroom"].id
    assert device(session, school, "L-3").home_location.parent_id == annexe.id
