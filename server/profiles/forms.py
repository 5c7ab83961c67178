"""Forms for profiles, assignments, device groups and filter exceptions (CSRF via FlaskForm)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

YAML_MAX = 200_000


class ConfirmForm(FlaskForm):
    """Nothing but the CSRF token (remove, archive)."""


class NewProfileForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    start_from = SelectField("Start from", choices=[], validate_choice=True)
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)])


class VersionForm(FlaskForm):
    yaml_text = TextAreaField("Profile", validators=[DataRequired(), Length(max=YAML_MAX)])
    note = StringField("What changed and why", validators=[Optional(), Length(max=500)])


class SettingsForm(FlaskForm):
    """The settings editor's own fields; the settings themselves are checked by the loader."""

    note = StringField("What changed and why", validators=[Optional(), Length(max=500)])


class AssignForm(FlaskForm):
    target = SelectField("Assign to", choices=[], validate_choice=True)
    asset_tag = StringField(
        "Asset tag (when assigning to one device)", validators=[Optional(), Length(max=32)]
    )


class GroupForm(FlaskForm):
    name = StringField("Group name", validators=[DataRequired(), Length(max=120)])


class GroupDevicesForm(FlaskForm):
    asset_tags = TextAreaField(
        "Asset tags (one per line, or separated by commas)",
        validators=[DataRequired(), Length(max=20_000)],
    )


class ExceptionForm(FlaskForm):
    urls = TextAreaField(
        "Web addresses to unblock (one per line, starting https://)",
        validators=[DataRequired(), Length(max=5_000)],
    )
    reason = TextAreaField(
        "Why the class needs them", validators=[DataRequired(), Length(min=10, max=1000)]
    )
    class_label = StringField(
        "Class (for example Year 4 Oak)", validators=[DataRequired(), Length(max=64)]
    )
    target = SelectField("Devices", choices=[], validate_choice=True)
    asset_tag = StringField(
        "Asset tag (when it is one device)", validators=[Optional(), Length(max=32)]
    )
    starts_at = DateTimeLocalField("From", validators=[DataRequired()])
    ends_at = DateTimeLocalField("Until", validators=[DataRequired()])


class DecisionForm(FlaskForm):
    note = StringField("Note to the teacher", validators=[Optional(), Length(max=500)])
