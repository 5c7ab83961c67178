"""Money as staff type it, read one way everywhere, and shown with thousands separators."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import User
from server.devices.models import Device
from server.devices.services.parsing import format_pounds, parse_money
from server.schools.models import Location
from tests.server.conftest import csrf_token, log_in_as


@pytest.mark.parametrize(
    ("typed", "pence"),
    [
        ("£1,329.00", 132900),
        ("1329", 132900),
        ("1.329,00", 132900),
        ("329,00", 32900),
        ("£329,5", 32950),
        ("329.5", 32950),
        ("1,329", 132900),
        ("GBP 1 329.00", 132900),
        ("£1,329,000.00", 132900000),
    ],
)
def test_amounts_in_either_convention_are_read_exactly(typed: str, pence: int) -> None:
    assert parse_money(typed) == pence


@pytest.mark.parametrize("typed", ["£1,2.3", "1,23,4.00", "lots", "1.2.3,4", "£", "-5", "1,5.00"])
def test_anything_that_is_not_money_is_refused(typed: str) -> None:
    """The device form saved “£1,2.3” as £12.30; now it is refused."""
    with pytest.raises(ValueError, match="not an amount of money"):
        parse_money(typed)


def test_an_ambiguous_amount_is_refused_saying_what_it_would_read() -> None:
    with pytest.raises(ValueError) as caught:
        parse_money("1.329")
    assert "£1,329.00" in str(caught.value) and "£1.33" in str(caught.value)
    assert parse_money("1.329", decimal=",") == 132900
    with pytest.raises(ValueError, match=r"£1,329\.00"):
        parse_money("1,329", decimal=",")


def test_pounds_are_shown_with_thousands_separators() -> None:
    assert format_pounds(132900) == "£1,329.00"
    assert format_pounds(5) == "£0.05"
    assert format_pounds(None) == "—"


def test_the_device_page_and_form_show_large_costs_with_separators(
    client: FlaskClient,
    session: Session,
    sbm: User,
    trolley: Location,
    make_device: Callable[..., Device],
) -> None:
    device = make_device(purchase_cost_pence=132900)
    log_in_as(client, sbm)
    page = client.get(f"/devices/{device.asset_tag}").get_data(as_text=True)
    assert "£1,329.00" in page and "£1329.00" not in page
    form = client.get(f"/devices/{device.asset_tag}/edit").get_data(as_text=True)
    assert 'value="£1,329.00"' in form
    token = csrf_token(client, "/devices/new")
    refused = client.post(
        "/devices/new",
        data={
            "csrf_token": token,
            "asset_tag": "M-1",
            "serial": "DMPXK2Q1JF81",
            "platform": "ipados",
            "make": "Apple",
            "model": "iPad",
            "cost": "£1,2.3",
        },
    )
    assert refused.status_code == 400
    assert "not an amount of money" in refused.get_data(as_text=True)
