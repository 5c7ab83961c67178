"""Licence forms: money and dates typed the way school staff write them (P-REG-5)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from server.devices.services.parsing import parse_money
from server.disposals.forms import UKDateField


class MoneyField(StringField):
    """An amount typed as £329.00, 329 or 1,299.99; `.pence` is the exact value."""

    def pre_validate(self, form: Any) -> None:
        if self.data and self.data.strip():
            try:
                parse_money(self.data)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc

    @property
    def pence(self) -> int | None:
        return parse_money(self.data) if self.data and self.data.strip() else None


class LicenceForm(FlaskForm):
    app_name = StringField(
        "App name", validators=[DataRequired("Enter the app's name."), Length(max=200)]
    )
    app_id = StringField(
        "App identifier",
        validators=[DataRequired("Enter the app identifier."), Length(max=255)],
        description="Bundle id (com.apple.Pages), Chrome extension id or package name",
    )
    seats = IntegerField(
        "Seats",
        validators=[
            # InputRequired, not DataRequired: 0 seats is a real answer.
            InputRequired("Enter the number of seats."),
            NumberRange(0, 100_000, "Seats are a whole number from 0 to 100,000."),
        ],
    )
    supplier = StringField("Supplier", validators=[Optional(), Length(max=120)])
    expires_on = UKDateField(
        "Expires on", validators=[Optional()], description="For example 31/08/2026"
    )
    cost = MoneyField("Cost", validators=[Optional()], description="For example £329.00")
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])

    def values(self) -> dict[str, Any]:
        """The form as typed values for the licence service."""
        return {
            "app_name": self.app_name.data or "",
            "app_id": self.app_id.data or "",
            "seats": self.seats.data,
            "supplier": self.supplier.data or "",
            "expires_on": self.expires_on.value,
            "cost_pence": self.cost.pence,
            "notes": self.notes.data or "",
        }
