"""Money and dates read by the file's own convention, never silently misread (P-REG-1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from server.schools.models import Location, School
from tests.server.imports.conftest import device, ipad, make_csv, problems

Run = Callable[..., tuple[Any, Any]]


def test_decimal_comma_prices_are_not_stored_a_hundred_times_too_large(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """P-REG-1: a ';' file from a comma-decimal Excel keeps its prices: £329,00 is £329.00."""
    rows = [
        ipad("C-1", "DMPXK2Q1JF81", **{"Cost (£)": "£329,00"}),
        ipad("C-2", "DMPXK2Q1JF82", **{"Cost (£)": "329,5"}),
        ipad("C-3", "DMPXK2Q1JF83", **{"Cost (£)": "1.329,00"}),
        ipad("C-4", "DMPXK2Q1JF84", **{"Cost (£)": "1.329"}),
        ipad("C-5", "DMPXK2Q1JF85", **{"Cost (£)": "265"}),
    ]
    plan, result = run_import(make_csv(rows, delimiter=";"))
    assert plan.ok, problems(plan)
    assert result.created == 5
    pence = {tag: device(session, school, tag).purchase_cost_pence for tag in ("C-1", "C-2")}
    assert pence == {"C-1": 32900, "C-2": 32950}
    assert device(session, school, "C-3").purchase_cost_pence == 132900
    assert device(session, school, "C-4").purchase_cost_pence == 132900
    assert device(session, school, "C-5").purchase_cost_pence == 26500
    assert "decimal comma" in plan.conventions["Cost (£)"]


def test_a_column_that_mixes_decimal_marks_is_refused_naming_the_rows(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    rows = [
        ipad("M-1", "DMPXK2Q1JF81", **{"Cost (£)": "£1,329.00"}),
        ipad("M-2", "DMPXK2Q1JF82", **{"Cost (£)": "£1,099.50"}),
        ipad("M-3", "DMPXK2Q1JF83", **{"Cost (£)": "329,00"}),
    ]
    plan, result = run_import(make_csv(rows))
    assert result is None and plan.bad_rows == [4]
    (problem,) = plan.problems
    assert problem.heading == "Cost (£)"
    assert "decimal comma" in problem.message and "rows 2, 3" in problem.message


def test_an_ambiguous_amount_is_refused_showing_what_it_would_read(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """“1.329” in a file that writes pence after a point could be £1,329.00 or a typo."""
    rows = [
        ipad("A-1", "DMPXK2Q1JF81", **{"Cost (£)": "£329.00"}),
        ipad("A-2", "DMPXK2Q1JF82", **{"Cost (£)": "1.329"}),
    ]
    plan, _ = run_import(make_csv(rows))
    assert plan.bad_rows == [3]
    assert "£1,329.00" in plan.problems[0].message


def test_month_first_dates_are_read_month_first_when_the_column_says_so(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    """Snipe-IT writes 4/5/16 for 5 April 2016: one date with a day over 12 settles it."""
    rows = [
        ipad("D-1", "DMPXK2Q1JF81", **{"Purchase Date": "4/5/16", "Warranty": ""}),
        ipad("D-2", "DMPXK2Q1JF82", **{"Purchase Date": "4/13/16", "Warranty": ""}),
        ipad("D-3", "DMPXK2Q1JF83", **{"Purchase Date": "12/1/2016", "Warranty": ""}),
    ]
    plan, _result = run_import(make_csv(rows))
    assert plan.ok, problems(plan)
    assert device(session, school, "D-1").purchase_date == date(2016, 4, 5)
    assert device(session, school, "D-2").purchase_date == date(2016, 4, 13)
    assert device(session, school, "D-3").purchase_date == date(2016, 12, 1)
    assert plan.conventions["Purchase Date"] == "dates read month-first"


def test_day_first_is_reported_in_the_summary(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    rows = [ipad("D-1", "DMPXK2Q1JF81", **{"Purchase Date": "25/12/2020"})]
    plan, _ = run_import(make_csv(rows), dry_run=True)
    assert plan.conventions["Purchase Date"] == "dates read day-first"
    assert "dates read day-first" in plan.convention_summary


def test_a_column_that_contradicts_itself_names_the_rows(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    rows = [
        ipad("D-1", "DMPXK2Q1JF81", **{"Purchase Date": "25/12/2020"}),
        ipad("D-2", "DMPXK2Q1JF82", **{"Purchase Date": "26/12/2020"}),
        ipad("D-3", "DMPXK2Q1JF83", **{"Purchase Date": "12/27/2020"}),
    ]
    plan, result = run_import(make_csv(rows))
    assert result is None and plan.bad_rows == [4]
    message = plan.problems[0].message
    assert "month first" in message and "rows 2, 3" in message and "day first" in message


def test_a_single_bad_date_says_what_is_wrong_with_it(
    session: Session, school: School, places: dict[str, Location], run_import: Run
) -> None:
    rows = [
        ipad("D-1", "DMPXK2Q1JF81", **{"Purchase Date": "31/02/2021"}),
        ipad("D-2", "DMPXK2Q1JF82", **{"Purchase Date": "13/13/2021"}),
        ipad("D-3", "DMPXK2Q1JF83", **{"Purchase Date": "0/1/2021"}),
    ]
    plan, _ = run_import(make_csv(rows))
    found = {row: message for row, _heading, message in problems(plan)}
    assert "February 2021 has 28 days" in found[2]
    assert "13" in found[3] and "month" in found[3]
    assert "no day 0" in found[4]
