"""Register forms: typed in the way school staff write money and dates."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from server.devices.models import DeviceStatus, Platform
from server.devices.services.parsing import parse_money, parse_uk_date


def _parsed(parser: Any) -> Any:
    def check(_form: FlaskForm, field: Any) -> None:
        if field.data:
            try:
                parser(field.data)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc

    return check


class DeviceForm(FlaskForm):
    asset_tag = StringField("Asset tag", validators=[DataRequired(), Length(max=32)])
    serial = StringField("Serial number", validators=[DataRequired(), Length(max=64)])
    platform = SelectField(
        "Platform",
        choices=[
            SelectChoice("ipados", "iPad"),
            SelectChoice("chromeos", "Chromebook"),
            SelectChoice("linux", "Linux kiosk"),
            SelectChoice("other", "Other"),
        ],
    )
    make = StringField("Make", validators=[DataRequired(), Length(max=64)])
    model = StringField("Model", validators=[DataRequired(), Length(max=120)])
    os_version = StringField("Operating system", validators=[Optional(), Length(max=64)])
    purchase_date = StringField(
        "Purchase date",
        validators=[Optional(), _parsed(parse_uk_date)],
        description="For example 01/09/2021",
    )
    cost = StringField(
        "Cost", validators=[Optional(), _parsed(parse_money)], description="For example £329.00"
    )
    supplier = StringField("Supplier", validators=[Optional(), Length(max=120)])
    warranty_until = StringField("Warranty ends", validators=[Optional(), _parsed(parse_uk_date)])
    home_location_id = SelectField("Lives in", coerce=str, validators=[Optional()])
    home_slot = IntegerField("Slot", validators=[Optional(), NumberRange(1, 200)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])

    def values(self) -> dict[str, Any]:
        """The form as typed values for the register service."""
        return {
            "asset_tag": (self.asset_tag.data or "").strip(),
            "serial": (self.serial.data or "").strip(),
            "platform": Platform(self.platform.data),
            "make": (self.make.data or "").strip(),
            "model": (self.model.data or "").strip(),
            "os_version": (self.os_version.data or "").strip() or None,
            "purchase_date": parse_uk_date(self.purchase_date.data)
            if self.purchase_date.data
            else None,
            "purchase_cost_pence": parse_money(self.cost.data) if self.cost.data else None,
            "supplier": (self.supplier.data or "").strip() or None,
            "warranty_until": parse_uk_date(self.warranty_until.data)
            if self.warranty_until.data
            else None,
            "notes": (self.notes.data or "").strip() or None,
        }


class StatusForm(FlaskForm):
    status = SelectField(
        "New status", choices=[SelectChoice(s.value, s.label) for s in DeviceStatus]
    )
    reason = StringField("Why", validators=[DataRequired(), Length(max=500)])


class MoveForm(FlaskForm):
    location_id = SelectField("New home", coerce=str, validators=[DataRequired()])
    slot = IntegerField("Slot", validators=[Optional(), NumberRange(1, 200)])
    reason = StringField("Why", validators=[DataRequired(), Length(max=500)])


class DecisionForm(FlaskForm):
    reason = StringField("Reason (needed to decline)", validators=[Optional(), Length(max=500)])
