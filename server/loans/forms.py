"""Loan forms: due time, lesson times, home loans, decisions and damage (CSRF from FlaskForm)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional

from server.loans.services import HISTORY_MONTHS_RANGE, WEEKDAYS

DAY_CHOICES = [SelectChoice("", "Every day")] + [
    SelectChoice(str(n), name) for n, name in enumerate(WEEKDAYS[:5])
]


class DueForm(FlaskForm):
    due = TimeField("Back by", validators=[DataRequired(message="Choose a time.")])


class QuickForm(FlaskForm):
    """One tap on the device page; `transfer` says "yes, take it over"."""

    transfer = BooleanField("Take it over", validators=[Optional()])


class PeriodRow(Form):
    name = StringField("Lesson", validators=[Optional(), Length(max=64)])
    starts = TimeField("Starts", validators=[Optional()])
    ends = TimeField("Ends", validators=[Optional()])
    weekday = SelectField("Day", choices=DAY_CHOICES, validators=[Optional()])


class PeriodsForm(FlaskForm):
    periods = FieldList(FormField(PeriodRow), min_entries=12, max_entries=40)
    day_ends = TimeField("The school day ends at", validators=[DataRequired()])
    history_months = IntegerField(
        "Keep loan history for (months)",
        validators=[Optional(), NumberRange(*HISTORY_MONTHS_RANGE)],
        description="Older loans, scans and their entries on device timelines are deleted "
        "each night: personal data is kept no longer than necessary. Damage reports and the "
        "activity trail are kept.",
    )


class HomeLoanForm(FlaskForm):
    asset_tags = StringField(
        "Asset tag(s)",
        validators=[DataRequired(message="Name the device."), Length(max=200)],
        description="Separate several with commas, for example OAK-IPAD-031, OAK-IPAD-032",
    )
    return_by = DateField("Back in school by", validators=[DataRequired()])
    reason = TextAreaField(
        "Why it needs to go home",
        validators=[DataRequired(message="Say why."), Length(max=500)],
    )

    def tags(self) -> list[str]:
        return [t.strip() for t in (self.asset_tags.data or "").split(",") if t.strip()]


class DecisionForm(FlaskForm):
    decision = HiddenField(validators=[AnyOf(["approve", "decline"])])
    note = StringField("Note (needed to decline)", validators=[Optional(), Length(max=500)])


class ResolveForm(FlaskForm):
    note = StringField(
        "What was done", validators=[DataRequired(message="Say what was done."), Length(max=500)]
    )


class ByHandForm(FlaskForm):
    """A person's check of a device's photos by hand: what is left, and what they saw."""

    photos_left = IntegerField(
        "Photos left afterwards",
        validators=[Optional(), NumberRange(min=0, max=1_000_000)],
        description="Leave it empty if you could not count them, and say why.",
    )
    saw = StringField("What you saw", validators=[Optional(), Length(max=500)])


class LessonEndForm(FlaskForm):
    """Whether devices still out are asked to wipe their photos at each lesson's end."""

    wipe_at_lesson_end = BooleanField(
        "Ask devices still out to wipe their photos at the end of each lesson",
        validators=[Optional()],
    )
