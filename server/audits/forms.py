"""Audit forms: start, scan, the condition checklist, sign-off, photo checks and spot checks."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from server.audits.models import CONDITION_CHECKS
from server.audits.services import MAX_SAMPLE

YES_NO = [SelectChoice("no", "No"), SelectChoice("yes", "Yes")]


class StartForm(FlaskForm):
    term_id = SelectField("Term", coerce=int, validators=[InputRequired("Choose the term.")])
    scope = RadioField(
        "What to audit",
        choices=[
            SelectChoice("school", "The whole school"),
            SelectChoice("places", "Only the places I tick below"),
        ],
        default="school",
        validators=[InputRequired("Choose the whole school or some places.")],
    )
    location_ids = SelectMultipleField(
        "Places (the places inside them are included)",
        coerce=int,
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
        validators=[Optional()],
    )


class ScanForm(FlaskForm):
    code = StringField(
        "Scan or type an asset tag",
        validators=[DataRequired("Scan a label or type its asset tag."), Length(max=512)],
    )
    location_id = SelectField(
        "Where are you scanning?", coerce=int, validators=[InputRequired("Choose where you are.")]
    )


class ConditionForm(FlaskForm):
    """Every box starts ticked: untick what is wrong (P-AUDIT-2)."""

    case_on = BooleanField(CONDITION_CHECKS["case_on"][0], default=True)
    screen_intact = BooleanField(CONDITION_CHECKS["screen_intact"][0], default=True)
    charger = BooleanField(CONDITION_CHECKS["charger"][0], default=True)
    label_readable = BooleanField(CONDITION_CHECKS["label_readable"][0], default=True)
    powers_on = BooleanField(CONDITION_CHECKS["powers_on"][0], default=True)
    note = StringField("What is wrong? (optional)", validators=[Optional(), Length(max=500)])


class NoteForm(FlaskForm):
    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=1000)])


class SpotCheckForm(FlaskForm):
    size = IntegerField(
        "How many devices to check",
        default=5,
        validators=[
            InputRequired("Say how many devices to check."),
            NumberRange(min=1, max=MAX_SAMPLE, message=f"Between 1 and {MAX_SAMPLE}."),
        ],
    )
    seed = StringField(
        "Seed (leave empty for a new random draw)",
        validators=[Optional(), Regexp(r"^\d{1,19}$", message="A seed is a whole number.")],
        description="Enter an earlier check's seed to show the same devices are drawn again.",
    )


class SpotResultForm(FlaskForm):
    photos_found = RadioField(
        "Photos found?",
        choices=YES_NO,
        validators=[InputRequired("Say whether photos were found.")],
    )
    other_personal_data = RadioField(
        "Other personal data found?",
        choices=YES_NO,
        validators=[InputRequired("Say whether other personal data was found.")],
    )
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)])
