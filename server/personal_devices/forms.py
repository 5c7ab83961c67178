"""Forms for the staff personal devices register (P-REG-6)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from server.disposals.forms import UKDateField


class EntryForm(FlaskForm):
    owner_id = SelectField("Member of staff", coerce=str, validators=[Optional()])
    owner_name = StringField(
        "Or their name, if they have no Trolley account", validators=[Optional(), Length(max=120)]
    )
    make = StringField("Make", validators=[DataRequired("Enter the make."), Length(max=64)])
    model = StringField("Model", validators=[DataRequired("Enter the model."), Length(max=120)])
    serial = StringField(
        "Serial number", validators=[DataRequired("Enter the serial number."), Length(max=64)]
    )
    noted_on = UKDateField("Date noted", validators=[Optional()], description="Today if left empty")
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)])

    def values(self) -> dict[str, Any]:
        """The form as typed values for the register service."""
        values: dict[str, Any] = {
            "owner_id": int(self.owner_id.data) if self.owner_id.data else None,
            "owner_name": self.owner_name.data or "",
            "make": self.make.data or "",
            "model": self.model.data or "",
            "serial": self.serial.data or "",
            "notes": self.notes.data or "",
        }
        if self.noted_on.value is not None:
            values["noted_on"] = self.noted_on.value
        return values


class RemoveForm(FlaskForm):
    reason = StringField(
        "Why is it being removed?",
        validators=[DataRequired("Say why, for example 'member of staff left'."), Length(max=500)],
    )
    removed_on = UKDateField("Date removed", validators=[Optional()], description="Today if empty")
