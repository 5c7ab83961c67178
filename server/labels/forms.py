"""The label sheet chooser: which devices and places, which sheet, where to start."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from server.labels.services import LAYOUT_NAMES


class LabelForm(FlaskForm):
    """Read from the address bar: printing labels changes nothing, so it is a GET form."""

    class Meta:
        csrf = False

    tags = TextAreaField(
        "Asset tags",
        validators=[Optional(), Length(max=40_000)],
        description="One per line, or separated by commas or spaces.",
    )
    home = SelectField("Devices that live in", choices=[], validate_choice=False)
    every = BooleanField("Every device in the register")
    places = SelectMultipleField(
        "Labels for places",
        coerce=int,
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    layout = SelectField(
        "Label sheet",
        choices=[SelectChoice(k, v) for k, v in LAYOUT_NAMES.items()],
        default="L7160",
    )
    start = IntegerField(
        "Start at label",
        default=1,
        validators=[Optional(), NumberRange(1, 21)],
        description="On a part-used sheet, the first unused label, counting along each row.",
    )
