"""Leaver forms: opening a case, the leaver's checklist, the meeting, return and reset."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields import DateTimeLocalField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class OpenCaseForm(FlaskForm):
    leaver_id = SelectField("Who is leaving?", coerce=str, validators=[Optional()])
    leaver_name = StringField(
        "Name (only if they have no Trolley account)", validators=[Optional(), Length(max=120)]
    )
    leaver_email = EmailField(
        "E-mail (only if they have no Trolley account)", validators=[Optional(), Length(max=254)]
    )
    last_day = DateField("Last day", validators=[InputRequired("Enter their last day.")])
    line_manager_id = SelectField(
        "Line manager", coerce=str, validators=[DataRequired("Choose their line manager.")]
    )
    technician_id = SelectField(
        "Technician", coerce=str, validators=[DataRequired("Choose a technician.")]
    )
    asset_tags = StringField(
        "Other devices they have (asset tags, separated by commas)",
        validators=[Optional(), Length(max=2000)],
        description="The register and loans are checked for you; add anything they missed.",
    )


class CredentialsForm(FlaskForm):
    passcode = PasswordField("Screen passcode or PIN", validators=[Optional(), Length(max=500)])
    account_email = StringField(
        "Apple ID or Google account e-mail", validators=[Optional(), Length(max=254)]
    )
    account_password = PasswordField(
        "That account's password", validators=[Optional(), Length(max=500)]
    )


class MeetingForm(FlaskForm):
    starts_at = DateTimeLocalField(
        "Meeting time (on the last day)",
        format=LOCAL_FORMAT,
        validators=[InputRequired("Choose a time on the last day.")],
    )
    minutes = IntegerField(
        "How long (minutes)",
        default=30,
        validators=[InputRequired("Say how long."), NumberRange(min=10, max=240)],
    )
    place = StringField(
        "Where",
        validators=[DataRequired("Say where to meet."), Length(max=200)],
        description="For example: the IT office.",
    )


class ScanForm(FlaskForm):
    code = StringField(
        "Scan the label, or type the asset tag",
        validators=[DataRequired("Scan a label or type an asset tag."), Length(max=600)],
    )


class EvidenceForm(FlaskForm):
    evidence = TextAreaField(
        "What shows it was reset?",
        validators=[DataRequired("Describe the evidence."), Length(max=2000)],
        description="For example: Activation Lock removed in Apple School Manager; device "
        "erased and re-enrolled.",
    )


class KeepAccountForm(FlaskForm):
    reason = StringField(
        "Why do they keep their Trolley log-in?",
        validators=[DataRequired("Say why."), Length(min=5, max=500)],
        description="For example: stays on as a governor.",
    )


class AddDeviceForm(FlaskForm):
    asset_tag = StringField(
        "Asset tag", validators=[DataRequired("Enter an asset tag."), Length(max=32)]
    )
