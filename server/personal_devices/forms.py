"""Forms for staff personal devices: the register, photo use and reports (P-REG-6, P-PHOTO-4)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from server.disposals.forms import UKDateField
from server.personal_devices.models import PhotoDayState, ReportKind

CONFIRMED_STATES = (PhotoDayState.MOVED_AND_DELETED, PhotoDayState.NOT_USED)


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


class AuthoriseForm(FlaskForm):
    starts_on = UKDateField("First day", validators=[DataRequired("Enter the first day.")])
    ends_on = UKDateField("Last day", validators=[DataRequired("Enter the last day.")])
    purpose = StringField(
        "What for", validators=[Optional(), Length(max=500)], description="For example the trip"
    )


class WithdrawForm(FlaskForm):
    reason = StringField(
        "Why is photo use withdrawn?",
        validators=[DataRequired("Say why."), Length(max=500)],
    )


class ConfirmForm(FlaskForm):
    state = SelectField(
        "What happened to the day's photos",
        choices=[SelectChoice(s.value, s.label) for s in CONFIRMED_STATES],
        validators=[DataRequired()],
    )
    day = UKDateField("Day", validators=[Optional()], description="Today if empty")


class ReportForm(FlaskForm):
    kind = SelectField(
        "What happened to the device",
        choices=[SelectChoice(k.value, k.label) for k in ReportKind],
        validators=[DataRequired()],
    )
    happened_on = UKDateField("When", validators=[DataRequired("Enter the day it happened.")])
    details = TextAreaField(
        "What happened, as far as you know",
        validators=[DataRequired("Say what happened."), Length(max=4000)],
    )
